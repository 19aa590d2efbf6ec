//! [`PageBuf`]: the page a sysfs `show` writes into (Linux hands `show` a `PAGE_SIZE` buffer).

use core::fmt;

// The most a sysfs file shows: a page (Linux's `PAGE_SIZE` limit on a sysfs read).
pub use consts::PAGE_SIZE;

/// A fixed page of text: `show` functions `write!` into it; what does not fit is cut off (and
/// [`truncated`](Self::truncated) says so), as Linux's `sysfs_emit` stops at the page's end.
/// Needs no allocation, so reading a file does not disturb the allocator it reports on.
pub struct PageBuf {
    buf: [u8; PAGE_SIZE],
    len: usize,
    truncated: bool,
}

impl PageBuf {
    /// An empty page.
    pub const fn new() -> Self {
        Self {
            buf: [0; PAGE_SIZE],
            len: 0,
            truncated: false,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole characters are copied in (see `write_str`).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    /// Did a write not fit?
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets what was written after the first `len` bytes (nothing if `len` is past the
    /// end), and that a write did not fit: for a `show` that lists entries and prefers to end
    /// the page at the last whole one. `len` must be a length [`len`](Self::len) returned.
    pub fn cut_to(&mut self, len: usize) {
        if len <= self.len && self.as_str().is_char_boundary(len) {
            self.len = len;
            self.truncated = false;
        }
    }

    /// Empties the page.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }
}

impl Default for PageBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for PageBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = PAGE_SIZE - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

impl fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn keeps_a_page_and_cuts_at_a_character() {
        let mut p = PageBuf::new();
        write!(p, "{}", "x".repeat(PAGE_SIZE - 1)).unwrap();
        assert!(!p.truncated());
        write!(p, "é").unwrap();
        assert!(
            p.truncated(),
            "a two-byte character does not fit in one byte"
        );
        assert_eq!(p.as_str().len(), PAGE_SIZE - 1);
        p.clear();
        writeln!(p, "64").unwrap();
        assert_eq!(p.as_str(), "64\n");
    }
}
