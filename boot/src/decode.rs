//! `file:line` for the kernel's backtraces, as Linux's `scripts/decode_stacktrace.sh` adds
//! them: the launcher (`cargo run`) and the test runner's failure messages show each frame line
//! of the serial output with its source location(s) appended, read from the kernel ELF's
//! debug information (DWARF, with the `addr2line` crate). The logs in `target/sheaf/logs/`
//! keep the raw serial bytes.
//!
//! ```text
//! Call Trace:
//!  kernel::shell::bt+0x1c/0x40 (kernel/src/shell/mod.rs:412)
//!  kernel::shell::execute+0x3a1/0x6f0 (kernel/core/src/x.rs:10 kernel/src/shell/mod.rs:301)
//! ```
//!
//! A frame line is one `kcore::backtrace` prints: ` name+0xoff/0xlen`, perhaps with
//! ` [module]` (left alone: the module's ELF is not at hand), or ` 0xaddr` for an address
//! nothing named. Like `decode_stacktrace.sh`, `name` is looked up in the ELF's symbol table
//! (demangled as the kernel's kallsyms table is, the length telling apart functions of the
//! same name), the offset added, and the locations of that address printed in parentheses,
//! the innermost first and then the functions it was inlined into. A return address points
//! after its call, so `addr - 1` is looked up, except for the first frame of an exception's
//! trace: that one is the faulting instruction itself ([`LineDecoder`] tracks which is which).
//! Paths under the repository are shown relative to it.
//!
//! The debug information is read once per kernel ELF ([`Decoder::shared`]), and only when the
//! first frame line appears; if it cannot be read, lines are shown unchanged.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use addr2line::gimli;
use object::{Object, ObjectKind, ObjectSection, ObjectSymbol, SymbolKind};

/// The DWARF reader, over section bytes that live to the end of the process (see [`load`]).
type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// How long a partial line that may become a frame line is held back before it is shown
/// anyway (a frame line arrives whole within a few milliseconds at 115200 baud).
pub const HOLD: Duration = Duration::from_millis(50);

/// A frame line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// ` name+0xoff/0xlen`: an address inside the kernel function `name` of length `len`.
    Symbol {
        /// The (demangled) function name.
        name: &'a str,
        /// The offset in the function.
        offset: u64,
        /// The function's length.
        len: u64,
    },
    /// ` 0xaddr`: an address no symbol named.
    Address(u64),
}

/// Parses a line of the kernel's backtrace (see the module's documentation); `None` for any
/// other line, and for a module's frame (` [name]` at the end). A trailing `\r` is ignored.
pub fn parse_frame(line: &str) -> Option<Frame<'_>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let body = line.strip_prefix(' ')?;
    if body.starts_with(' ') || body.ends_with(']') {
        return None;
    }
    let hex = |s: &str| {
        let digits = s.strip_prefix("0x")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(digits, 16).ok()
    };
    if let Some(addr) = hex(body) {
        return Some(Frame::Address(addr));
    }
    let (name, rest) = body.rsplit_once('+')?;
    let (offset, len) = rest.split_once('/')?;
    if name.is_empty() {
        return None;
    }
    Some(Frame::Symbol {
        name,
        offset: hex(offset)?,
        len: hex(len)?,
    })
}

/// The kernel ELF's symbols and debug information, once read.
struct Debug {
    /// Function symbols by demangled name: their addresses and lengths (several functions
    /// may share a name, e.g. instances of a generic function).
    symbols: HashMap<String, Vec<(u64, u64)>>,
    /// What the kernel adds to the ELF's addresses: [`consts::KERNEL_BASE`] for a
    /// position-independent kernel (linked at 0), else 0.
    shift: u64,
    /// The DWARF lookups (not `Sync`: they fill caches as they go).
    context: Mutex<addr2line::Context<Reader>>,
}

/// Decodes the frame lines of one kernel ELF. Cheap to make: the ELF is read at the first
/// [`Decoder::decode`] of a frame line.
pub struct Decoder {
    elf: PathBuf,
    root: PathBuf,
    debug: OnceLock<Option<Debug>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("elf", &self.elf).finish()
    }
}

impl Decoder {
    /// A decoder for the ELF at `elf`, showing paths under `root` relative to it.
    pub fn new(elf: &Path, root: &Path) -> Self {
        Self {
            elf: elf.to_owned(),
            root: root.to_owned(),
            debug: OnceLock::new(),
        }
    }

    /// The process's decoder for the ELF at `elf` (paths relative to this repository): made
    /// once per path, so its debug information is read at most once.
    pub fn shared(elf: &Path) -> Arc<Decoder> {
        static ALL: Mutex<Vec<Arc<Decoder>>> = Mutex::new(Vec::new());
        let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = all.iter().find(|d| d.elf == elf) {
            return Arc::clone(d);
        }
        let d = Arc::new(Decoder::new(elf, &crate::headers::repo_root()));
        all.push(Arc::clone(&d));
        d
    }

    /// The debug information, read on first use (`None` if it cannot be).
    fn debug(&self) -> Option<&Debug> {
        self.debug.get_or_init(|| load(&self.elf)).as_ref()
    }

    /// The source locations of `frame`, innermost first, formatted `(file:line ...)`; `None`
    /// if the ELF does not know them. `return_address`: the frame is a return address, so the
    /// call before it is looked up.
    pub fn decode(&self, frame: Frame<'_>, return_address: bool) -> Option<String> {
        let debug = self.debug()?;
        let addr = match frame {
            Frame::Symbol { name, offset, len } => {
                let candidates = debug.symbols.get(name)?;
                let mut same_len = candidates.iter().filter(|&&(_, size)| size == len);
                let (start, _) = *same_len.next()?;
                if same_len.next().is_some() {
                    // Two functions of that name and length: no telling which.
                    return None;
                }
                start.checked_add(offset)?
            }
            Frame::Address(addr) => addr.checked_sub(debug.shift)?,
        };
        let probe = if return_address {
            addr.checked_sub(1)?
        } else {
            addr
        };
        let context = debug.context.lock().unwrap_or_else(|e| e.into_inner());
        let mut frames = context.find_frames(probe).skip_all_loads().ok()?;
        let mut places = Vec::new();
        while let Ok(Some(f)) = frames.next() {
            if let Some(loc) = f.location
                && let Some(file) = loc.file
            {
                let shown = shorten(file, &self.root);
                places.push(match loc.line {
                    Some(line) => format!("{shown}:{line}"),
                    None => shown,
                });
            }
        }
        (!places.is_empty()).then(|| format!("({})", places.join(" ")))
    }
}

/// How a source path is shown: relative to `root` (the repository) if under it; the Rust
/// library's sources from `library/` (wherever the toolchain keeps them: `rustup`'s `rust-src`
/// or the `/rustc/<commit>/` of the prebuilt library); else whole.
pub fn shorten(file: &str, root: &Path) -> String {
    if let Ok(relative) = Path::new(file).strip_prefix(root) {
        return relative.display().to_string();
    }
    for marker in ["/lib/rustlib/src/rust/", "/rustc/"] {
        if let Some((_, rest)) = file.split_once(marker) {
            let rest = match marker {
                // `/rustc/<commit>/library/...`
                "/rustc/" => rest.split_once('/').map_or(rest, |(_, r)| r),
                _ => rest,
            };
            if rest.starts_with("library/") {
                return rest.to_owned();
            }
        }
    }
    file.to_owned()
}

/// Reads the symbols and DWARF of the ELF at `path`. Its bytes are kept to the end of the
/// process (leaked): a process reads a kernel ELF once ([`Decoder::shared`]) and decodes with
/// it until it exits.
fn load(path: &Path) -> Option<Debug> {
    let data: &'static [u8] = Vec::leak(std::fs::read(path).ok()?);
    let elf = object::File::parse(data).ok()?;
    let shift = if elf.kind() == ObjectKind::Dynamic {
        consts::KERNEL_BASE
    } else {
        0
    };
    let mut symbols: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for s in elf.symbols() {
        if s.kind() != SymbolKind::Text || !s.is_definition() || s.size() == 0 {
            continue;
        }
        let Ok(name) = s.name() else { continue };
        // The kernel's table demangles the same way (`crate::kallsyms`).
        let name = format!("{:#}", rustc_demangle::demangle(name));
        let entry = symbols.entry(name).or_default();
        if !entry.contains(&(s.address(), s.size())) {
            entry.push((s.address(), s.size()));
        }
    }
    let endian = if elf.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
        let bytes: &'static [u8] = match elf.section_by_name(id.name()) {
            Some(section) => match section.uncompressed_data() {
                Ok(Cow::Borrowed(bytes)) => bytes,
                Ok(Cow::Owned(bytes)) => Vec::leak(bytes),
                Err(_) => &[],
            },
            None => &[],
        };
        Ok(Reader::new(bytes, endian))
    })
    .ok()?;
    let context = addr2line::Context::from_dwarf(dwarf).ok()?;
    Some(Debug {
        symbols,
        shift,
        context: Mutex::new(context),
    })
}

/// Decodes a stream of serial output line by line, writing it to `out`.
///
/// Lines are shown as they come; a frame line gets its locations appended. A partial line is
/// shown at once (a prompt, typed input echoed), unless it starts with a space and so may
/// become a frame line: that one is held until its end, or until [`LineDecoder::flush`]
/// (the relay calls it when no byte has come for [`HOLD`]).
pub struct LineDecoder<W: Write> {
    out: W,
    decoder: Option<Arc<Decoder>>,
    /// The current line so far.
    line: Vec<u8>,
    /// How many of its bytes are shown (if any, the line is not decoded).
    shown: usize,
    /// Which frame line comes next (see [`TraceState`]).
    state: TraceState,
}

/// What the lines so far say about the next frame line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceState {
    /// An exception was reported: its trace starts with the faulting instruction.
    exception: bool,
    /// The next frame line is the first of an exception's trace.
    faulting_next: bool,
}

impl TraceState {
    /// Takes a line into account; returns, for a frame line, whether it is a return address.
    pub fn next_line(&mut self, line: &str) -> bool {
        if line.starts_with("EXCEPTION:") {
            self.exception = true;
        } else if line.trim_end() == "Call Trace:" {
            self.faulting_next = std::mem::take(&mut self.exception);
        } else if parse_frame(line).is_some() {
            return !std::mem::take(&mut self.faulting_next);
        }
        true
    }
}

/// `line` (without its end) with the locations of its frame appended, if it is a frame line
/// that `decoder` knows; updates `state`.
pub fn decode_line<'a>(
    decoder: Option<&Decoder>,
    state: &mut TraceState,
    line: &'a str,
) -> Cow<'a, str> {
    let return_address = state.next_line(line);
    let Some(decoder) = decoder else {
        return Cow::Borrowed(line);
    };
    let Some(frame) = parse_frame(line) else {
        return Cow::Borrowed(line);
    };
    match decoder.decode(frame, return_address) {
        Some(places) => {
            let body = line.strip_suffix('\r').unwrap_or(line);
            let cr = &line[body.len()..];
            Cow::Owned(format!("{body} {places}{cr}"))
        }
        None => Cow::Borrowed(line),
    }
}

/// Decodes every line of `text` (the test runner's failure messages).
pub fn decode_text(decoder: Option<&Decoder>, text: &str) -> String {
    let mut state = TraceState::default();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        out.push_str(&decode_line(decoder, &mut state, body));
        out.push_str(end);
    }
    out
}

impl<W: Write> LineDecoder<W> {
    /// Shows the stream on `out`, decoding with `decoder` (`None`: unchanged).
    pub fn new(out: W, decoder: Option<Arc<Decoder>>) -> Self {
        Self {
            out,
            decoder,
            line: Vec::new(),
            shown: 0,
            state: TraceState::default(),
        }
    }

    /// Takes the next bytes of the stream; writes what can be shown and flushes `out`.
    pub fn push(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        for part in bytes.split_inclusive(|&b| b == b'\n') {
            self.line.extend_from_slice(part);
            if part.ends_with(b"\n") {
                let text = String::from_utf8_lossy(&self.line);
                let body = text.strip_suffix('\n').unwrap_or(&text);
                if self.shown > 0 {
                    // Its start is out already: only the trace state learns from it.
                    self.state.next_line(body);
                    self.out.write_all(&self.line[self.shown..])?;
                } else {
                    match decode_line(self.decoder.as_deref(), &mut self.state, body) {
                        Cow::Owned(decoded) => {
                            self.out.write_all(decoded.as_bytes())?;
                            self.out.write_all(b"\n")?;
                        }
                        // Unchanged: the bytes as they came (even if not UTF-8).
                        Cow::Borrowed(_) => self.out.write_all(&self.line)?,
                    }
                }
                self.line.clear();
                self.shown = 0;
            } else if self.shown > 0 || !self.line.starts_with(b" ") {
                self.show_partial()?;
            }
        }
        self.out.flush()
    }

    /// Whether a partial line is being held back.
    pub fn holding(&self) -> bool {
        self.shown < self.line.len()
    }

    /// Shows the partial line held back, if any (it will not be decoded).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.show_partial()?;
        self.out.flush()
    }

    /// Writes what of the current line is not shown yet.
    fn show_partial(&mut self) -> std::io::Result<()> {
        self.out.write_all(&self.line[self.shown..])?;
        self.shown = self.line.len();
        Ok(())
    }
}

/// Copies `source` to `out` until its end, decoding frame lines with `decoder`, and calls
/// `each` with every chunk read (raw bytes, e.g. to watch for prompts). Reads on a thread of
/// its own, so a held-back partial line is shown after [`HOLD`] without more input.
pub fn relay(
    source: impl Read + Send + 'static,
    out: impl Write,
    decoder: Option<Arc<Decoder>>,
    mut each: impl FnMut(&[u8]),
) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = thread::spawn(move || {
        let mut source = source;
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = source.read(&mut chunk) {
            if tx.send(chunk[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut lines = LineDecoder::new(out, decoder);
    loop {
        let chunk = if lines.holding() {
            match rx.recv_timeout(HOLD) {
                Ok(chunk) => chunk,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = lines.flush();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(chunk) => chunk,
                Err(_) => break,
            }
        };
        each(&chunk);
        // Output errors (a closed terminal) do not stop the reading: QEMU must not block.
        let _ = lines.push(&chunk);
    }
    let _ = lines.flush();
    let _ = reader.join();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn parses_the_frame_lines_backtrace_rs_prints() {
        assert_eq!(
            parse_frame(" kernel::shell::execute+0x3a1/0x6f0"),
            Some(Frame::Symbol {
                name: "kernel::shell::execute",
                offset: 0x3a1,
                len: 0x6f0
            })
        );
        assert_eq!(
            parse_frame(" <kcore::x::Y as core::fmt::Display>::fmt+0x1/0x20\r"),
            Some(Frame::Symbol {
                name: "<kcore::x::Y as core::fmt::Display>::fmt",
                offset: 1,
                len: 0x20
            })
        );
        assert_eq!(
            parse_frame(" 0xffffffff80001234"),
            Some(Frame::Address(0xffff_ffff_8000_1234))
        );
        // Not frames: module frames, headers, log lines, prompts, indented text.
        for line in [
            " hello_init+0x1c/0x40 [hello]",
            "Call Trace:",
            "[    0.000000] kernel+0x1/0x2",
            "sheaf> ",
            "  two+0x1/0x2",
            " words without an offset",
            " f+0x1",
            " f+1/2",
            " +0x1/0x2",
            " 0x",
        ] {
            assert_eq!(parse_frame(line), None, "{line:?}");
        }
    }

    #[test]
    fn paths_are_shown_short() {
        let root = Path::new("/work/sheaf");
        assert_eq!(
            shorten("/work/sheaf/kernel/src/shell/mod.rs", root),
            "kernel/src/shell/mod.rs"
        );
        assert_eq!(
            shorten(
                "/root/.rustup/toolchains/nightly-x/lib/rustlib/src/rust/library/core/src/ops/function.rs",
                root
            ),
            "library/core/src/ops/function.rs"
        );
        assert_eq!(
            shorten("/rustc/7df8138/library/alloc/src/boxed.rs", root),
            "library/alloc/src/boxed.rs"
        );
        assert_eq!(shorten("/elsewhere/x.rs", root), "/elsewhere/x.rs");
        assert_eq!(shorten("/work/sheafx/y.rs", root), "/work/sheafx/y.rs");
    }

    #[test]
    fn the_first_frame_of_an_exception_trace_is_no_return_address() {
        let mut state = TraceState::default();
        let kinds: Vec<bool> = [
            "Call Trace:",
            " a+0x1/0x2",
            " b+0x1/0x2",
            "EXCEPTION: page fault at address 0x0",
            "Call Trace:",
            " c+0x1/0x2",
            " d+0x1/0x2",
        ]
        .iter()
        .filter_map(|line| {
            let r = state.next_line(line);
            parse_frame(line).map(|_| r)
        })
        .collect();
        assert_eq!(kinds, [true, true, false, true]);
    }

    /// A line of a stream decoded without debug information: what the line decoder shows,
    /// and when.
    #[test]
    fn partial_lines_are_shown_at_once_unless_they_may_be_frames() {
        let mut lines = LineDecoder::new(Vec::new(), None);
        lines.push(b"boot\nshe").unwrap();
        assert_eq!(
            lines.out, b"boot\nshe",
            "a prompt is shown before its line ends"
        );
        lines.push(b"af> ").unwrap();
        lines.push(b" x").unwrap();
        assert_eq!(lines.out, b"boot\nsheaf>  x", "typed input after it too");
        lines.push(b"\n f+0x").unwrap();
        assert!(lines.holding(), "a line starting with a space waits");
        assert_eq!(lines.out, b"boot\nsheaf>  x\n");
        lines.push(b"1/0x2\r\n\xff\n").unwrap();
        assert_eq!(lines.out, b"boot\nsheaf>  x\n f+0x1/0x2\r\n\xff\n");
        lines.push(b" partial").unwrap();
        lines.flush().unwrap();
        assert!(!lines.holding());
        assert!(lines.out.ends_with(b"\xff\n partial"));
    }

    /// A function of this test binary to find in its own debug information.
    const MARKER_LINE: u32 = line!() + 2;
    #[inline(never)]
    fn marker_function(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(3)
    }

    /// The demangled name, address and length of a function symbol of the ELF at `path`.
    fn symbol(path: &Path, name: &str) -> (u64, u64) {
        let data = std::fs::read(path).expect("readable");
        let elf = object::File::parse(&*data).expect("an ELF");
        elf.symbols()
            .find(|s| {
                s.name()
                    .is_ok_and(|n| format!("{:#}", rustc_demangle::demangle(n)) == name)
            })
            .map(|s| (s.address(), s.size()))
            .expect("the symbol")
    }

    /// A frame line naming the start of a function of this test binary, and the line it
    /// starts on (give or take two).
    pub(crate) fn marker_frame() -> (String, u32) {
        assert_eq!(std::hint::black_box(marker_function(2)), 6);
        let exe = std::env::current_exe().expect("test binary");
        let name = "sheaf_boot::decode::tests::marker_function";
        let (_, len) = symbol(&exe, name);
        (format!(" {name}+0x0/{len:#x}"), MARKER_LINE)
    }

    #[test]
    fn decodes_a_function_of_this_test_binary_to_its_file_and_line() {
        let exe = std::env::current_exe().expect("test binary");
        let root = crate::headers::repo_root();
        let decoder = Decoder::new(&exe, &root);
        let (line, _) = marker_frame();
        let name = "sheaf_boot::decode::tests::marker_function";
        let (_, len) = symbol(&exe, name);
        let mut state = TraceState::default();
        // Not a return address (as an exception's first frame): the function's first line.
        state.next_line("EXCEPTION: a test");
        state.next_line("Call Trace:");
        let decoded = decode_line(Some(&decoder), &mut state, &line);
        // The locations, innermost first, end with the function's own (its first lines; an
        // inlined `black_box` may come before it), relative to the repository.
        let places = decoded
            .strip_prefix(&format!("{line} ("))
            .and_then(|p| p.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no locations: {decoded}"));
        let own = places.rsplit(' ').next().unwrap_or_default();
        assert!(
            (MARKER_LINE..MARKER_LINE + 3).any(|n| own == format!("boot/src/decode.rs:{n}")),
            "{decoded}"
        );
        // Another length is another function: nothing to say.
        let other = format!(" {name}+0x0/{:#x}", len + 1);
        assert_eq!(decode_line(Some(&decoder), &mut state, &other), other);
        // The stream shows it decoded, and the raw address form works too.
        let mut lines = LineDecoder::new(Vec::new(), Some(Arc::new(decoder)));
        // Lines arrive in pieces: the trace state still sees them whole.
        for piece in ["EXCEP", "TION: x\nCall Tr", "ace:\n"] {
            lines.push(piece.as_bytes()).unwrap();
        }
        lines.push(format!("{line}\r\n").as_bytes()).unwrap();
        let out = String::from_utf8(lines.out.clone()).unwrap();
        assert!(out.ends_with(&format!("{decoded}\r\n")), "{out}");
    }

    #[test]
    fn an_unreadable_elf_leaves_lines_unchanged() {
        let decoder = Decoder::new(Path::new("/nonexistent/kernel"), Path::new("/"));
        let text = "Call Trace:\n f+0x1/0x2\nsheaf> ";
        assert_eq!(decode_text(Some(&decoder), text), text);
        assert_eq!(decode_text(None, text), text);
    }
}
