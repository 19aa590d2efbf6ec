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
    for word in unknown(text) {
        log::warn!("unknown kernel command line parameter `{word}`: ignored");
    }
}

/// Every parameter the kernel reads (Linux registers them with `__setup`; Sheaf lists them
/// here, so that a typo is reported instead of silently ignored). A module that reads a new
/// parameter with [`get`] adds it here.
pub const PARAMETERS: &[&str] = &[
    "ktest",
    "ktest.only",
    "slub_debug",
    "slab_nomerge",
    "slab_hardened",
    "slab_nohardened",
    "loglevel",
    "debug",
    "quiet",
];

/// The words of `text` whose key is not one of [`PARAMETERS`], in order.
fn unknown(text: &str) -> impl Iterator<Item = &str> {
    text.split_ascii_whitespace().filter(|word| {
        let key = word.split_once('=').map_or(*word, |(key, _)| key);
        !PARAMETERS.contains(&key)
    })
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
fn unknown_parameters_are_found() {
    // (`quiet`, once an example of an unknown word here, is read since printk's log level.)
    let line = "slub_debug=FZ slab_nomerge ktest=run slub_debgu=P splash=1 quiet loglevel=3";
    assert_eq!(
        unknown(line).collect::<alloc::vec::Vec<_>>(),
        ["slub_debgu=P", "splash=1"]
    );
    assert_eq!(unknown("slub_debug ktest.only=a,b").count(), 0);
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
