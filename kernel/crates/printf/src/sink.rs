//! The output side: a byte stream decoded, lossily, into the `core::fmt::Write` text sink.
//!
//! The engine produces bytes (a C string can hold anything), but `core::fmt::Write` takes
//! `&str`. [`Sink`] decodes the stream as UTF-8, exactly as `String::from_utf8_lossy` would
//! decode all of it at once: valid text passes through, each invalid sequence becomes U+FFFD.
//! A character may be cut between two pieces (a `%s` argument delivered in chunks, a literal
//! byte followed by a `%c`), so the sink keeps up to 3 bytes of an unfinished character until
//! the next piece tells whether it completes.

use core::fmt::Write;

/// U+FFFD REPLACEMENT CHARACTER, written for each invalid UTF-8 sequence.
const REPLACEMENT: &str = "\u{FFFD}";

/// The longest UTF-8 sequence.
const MAX_UTF8: usize = 4;

/// A lossy UTF-8 decoder in front of a `core::fmt::Write`, counting what it writes.
pub(crate) struct Sink<'a> {
    /// Where the text goes.
    out: &'a mut dyn Write,
    /// `out` returned an error: write nothing more, but keep counting (vsnprintf's return is
    /// the length the whole output would have).
    failed: bool,
    /// Bytes of text written (or that would have been, after a failure).
    count: usize,
    /// The start of a character not yet complete: a lead byte and its continuation bytes so
    /// far, never a whole character.
    pending: [u8; MAX_UTF8],
    /// How many bytes of `pending` are used (0 to 3).
    pending_len: usize,
}

impl<'a> Sink<'a> {
    /// A sink writing into `out`.
    pub(crate) fn new(out: &'a mut dyn Write) -> Self {
        Self {
            out,
            failed: false,
            count: 0,
            pending: [0; MAX_UTF8],
            pending_len: 0,
        }
    }

    /// Writes valid text and counts it.
    fn text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.count = self.count.saturating_add(s.len());
        if !self.failed && self.out.write_str(s).is_err() {
            self.failed = true;
        }
    }

    /// Appends bytes to the stream.
    pub(crate) fn bytes(&mut self, mut bytes: &[u8]) {
        // First finish (or give up on) a character cut at the end of the previous piece, one
        // byte at a time.
        while self.pending_len > 0 {
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            bytes = rest;
            let Some(slot) = self.pending.get_mut(self.pending_len) else {
                // Cannot happen (a 4-byte prefix is always decided), but never panic.
                self.pending_len = 0;
                self.text(REPLACEMENT);
                continue;
            };
            *slot = byte;
            self.pending_len += 1;
            let pending = self.pending;
            let held = pending.get(..self.pending_len).unwrap_or(&[]);
            match core::str::from_utf8(held) {
                Ok(s) => {
                    self.pending_len = 0;
                    self.text(s);
                }
                // Still a valid beginning: wait for more.
                Err(e) if e.error_len().is_none() => {}
                Err(e) => {
                    // The held bytes were a valid beginning, so the invalid sequence is them
                    // (`error_len` of them); what follows (the new byte) is decoded afresh.
                    self.pending_len = 0;
                    self.text(REPLACEMENT);
                    let invalid = e.error_len().unwrap_or(held.len());
                    self.decode(held.get(invalid..).unwrap_or(&[]));
                }
            }
        }
        self.decode(bytes);
    }

    /// Decodes `bytes` with nothing pending; an unfinished character at the end is held.
    fn decode(&mut self, mut bytes: &[u8]) {
        loop {
            match core::str::from_utf8(bytes) {
                Ok(s) => {
                    self.text(s);
                    return;
                }
                Err(e) => {
                    let (valid, rest) = bytes.split_at(e.valid_up_to());
                    if let Ok(s) = core::str::from_utf8(valid) {
                        self.text(s);
                    }
                    match e.error_len() {
                        Some(invalid) => {
                            self.text(REPLACEMENT);
                            bytes = rest.get(invalid..).unwrap_or(&[]);
                        }
                        None => {
                            // An unfinished character: at most 3 bytes.
                            let n = rest.len().min(MAX_UTF8 - 1);
                            if let (Some(dst), Some(src)) =
                                (self.pending.get_mut(..n), rest.get(..n))
                            {
                                dst.copy_from_slice(src);
                            }
                            self.pending_len = n;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream (an unfinished character becomes U+FFFD) and returns the number of
    /// bytes of text written.
    pub(crate) fn finish(mut self) -> usize {
        if self.pending_len > 0 {
            self.pending_len = 0;
            self.text(REPLACEMENT);
        }
        self.count
    }
}
