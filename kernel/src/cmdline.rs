//! The kernel command line: `key=value` and bare `flag` words from the initramfs `cmdline` file.
//!
//! The bootloader passes no command line, so the launcher writes one into the initramfs
//! (`cargo run -- --append "..."`), as Linux bootloaders pass theirs. The test runner uses it
//! to ask for `ktest=list` or `ktest=run ktest.only=...`.

use spin::Once;

static CMDLINE: Once<&'static str> = Once::new();

/// Reads `cmdline` from the initramfs (empty when absent or not UTF-8).
pub fn init() {
    let text = crate::initramfs::file("cmdline")
        .and_then(|bytes| core::str::from_utf8(bytes).ok())
        .unwrap_or("")
        .trim();
    CMDLINE.call_once(|| text);
    if !text.is_empty() {
        log::info!("command line: {text}");
    }
}

/// The whole command line.
pub fn text() -> &'static str {
    CMDLINE.get().copied().unwrap_or("")
}

/// The value of `key`: `Some("v")` for `key=v`, `Some("")` for a bare `key`, `None` if absent.
/// The last occurrence wins, as on Linux.
pub fn get(key: &str) -> Option<&'static str> {
    lookup(text(), key)
}

fn lookup<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_ascii_whitespace()
        .rev()
        .find_map(|word| match word.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if word == key => Some(""),
            _ => None,
        })
}

#[crate::ktest]
fn parses_words_and_values() {
    let line = "quiet ktest=run ktest.only=a::b,c  log=debug log=info";
    assert_eq!(lookup(line, "quiet"), Some(""));
    assert_eq!(lookup(line, "ktest"), Some("run"));
    assert_eq!(lookup(line, "ktest.only"), Some("a::b,c"));
    assert_eq!(
        lookup(line, "log"),
        Some("info"),
        "the last occurrence wins"
    );
    assert_eq!(lookup(line, "missing"), None);
    assert_eq!(lookup(line, "ktes"), None, "keys match whole words only");
}
