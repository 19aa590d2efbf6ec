//! kmalloc's set-up: the boot options that shape the slab allocator.
//!
//! The allocator itself runs in the core ([`kcore::memory::kmalloc`]: the slab crate on real
//! pages and CPUs, and `kmalloc` as the global allocator); this module reads the command line
//! and starts it.

use alloc::vec::Vec;
use slab::{SlabFlags, SlabOptions};

/// Creates the kmalloc caches with the boot options: `slub_debug[=FZPU]` turns debugging on for
/// every cache, `slab_nomerge` keeps caches from merging, `slab_nohardened` turns off the free
/// checks that are on by default (every free checked against the object's page owner: its
/// cache and an object boundary; for measuring what they cost). `slab_hardened`, which asked
/// for them before they were the default, is accepted and changes nothing. Needs the command
/// line, the page allocator and ACPI.
pub fn init() {
    let debug = match crate::cmdline::get("slub_debug") {
        Some(options) => {
            let parsed = parse_slub_debug(options);
            parsed.warn();
            parsed.flags
        }
        None => SlabFlags::empty(),
    };
    let nomerge = crate::cmdline::get("slab_nomerge").is_some();
    let nohardened = crate::cmdline::get("slab_nohardened").is_some();
    if crate::cmdline::get("slab_hardened").is_some() {
        log::info!(
            "slab_hardened: the free checks are on by default (slab_nohardened turns them off)"
        );
    }
    kcore::memory::kmalloc::init(SlabOptions {
        debug,
        nomerge,
        nohardened,
    });
}

/// What a `slub_debug=` value asks for, and what of it Sheaf cannot do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlubDebug<'a> {
    /// The debug flags to set on every cache.
    pub flags: SlabFlags,
    /// Letters Linux does not know either (warned about as Linux does, then skipped).
    pub unknown: Vec<char>,
    /// Letters Linux knows but Sheaf does not implement (`T` trace, `A` failslab, `O` skip
    /// caches whose order would grow): warned about and skipped.
    pub unsupported: Vec<char>,
    /// A cache list after the letters (`slub_debug=FZ,kmalloc-64`): Sheaf debugs every cache,
    /// so it is warned about and the flags apply to all.
    pub caches: Option<&'a str>,
}

impl SlubDebug<'_> {
    /// Logs one warning per letter that was skipped and for an ignored cache list.
    pub fn warn(&self) {
        for c in &self.unknown {
            log::warn!("slub_debug option '{c}' unknown. skipped");
        }
        for c in &self.unsupported {
            log::warn!("slub_debug option '{c}' is not supported by Sheaf. skipped");
        }
        if let Some(caches) = self.caches {
            log::warn!(
                "slub_debug: per-cache lists are not supported by Sheaf; debugging every cache, \
                 not only `{caches}`"
            );
        }
    }
}

/// Parses Linux's `slub_debug=` value: letters (any case) `F` consistency checks, `Z` red zones,
/// `P` poisoning, `U` caller tracking, `-` no debugging; a bare `slub_debug` means all of them.
/// Unknown and unsupported letters and a cache list are reported in the result, not applied.
pub fn parse_slub_debug(options: &str) -> SlubDebug<'_> {
    let (letters, caches) = match options.split_once(',') {
        Some((letters, caches)) => (letters, Some(caches)),
        None => (options, None),
    };
    let mut parsed = SlubDebug {
        flags: SlabFlags::empty(),
        unknown: Vec::new(),
        unsupported: Vec::new(),
        caches,
    };
    if letters.is_empty() {
        parsed.flags = SlabFlags::SLAB_DEBUG_FLAGS;
        return parsed;
    }
    for c in letters.chars() {
        match c.to_ascii_uppercase() {
            'F' => parsed.flags |= SlabFlags::SLAB_CONSISTENCY_CHECKS,
            'Z' => parsed.flags |= SlabFlags::SLAB_RED_ZONE,
            'P' => parsed.flags |= SlabFlags::SLAB_POISON,
            'U' => parsed.flags |= SlabFlags::SLAB_STORE_USER,
            '-' => parsed.flags = SlabFlags::empty(),
            'T' | 'A' | 'O' => parsed.unsupported.push(c),
            _ => parsed.unknown.push(c),
        }
    }
    parsed
}

#[crate::ktest]
fn slub_debug_letters_select_the_checks() {
    assert_eq!(parse_slub_debug("").flags, SlabFlags::SLAB_DEBUG_FLAGS);
    assert_eq!(
        parse_slub_debug("ZP").flags,
        SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON
    );
    assert_eq!(parse_slub_debug("u").flags, SlabFlags::SLAB_STORE_USER);
    assert_eq!(parse_slub_debug("-").flags, SlabFlags::empty());
}

#[crate::ktest]
fn slub_debug_reports_the_letters_it_skips() {
    // Issue #9: `slub_debug=XYZ` was accepted silently. X and Y are unknown (warned, skipped);
    // Z still turns red zones on.
    let parsed = parse_slub_debug("XYZ");
    assert_eq!(parsed.flags, SlabFlags::SLAB_RED_ZONE);
    assert_eq!(parsed.unknown, ['X', 'Y']);
    assert!(parsed.unsupported.is_empty() && parsed.caches.is_none());
    // Letters Linux knows but Sheaf does not implement are reported apart.
    let parsed = parse_slub_debug("FT");
    assert_eq!(parsed.flags, SlabFlags::SLAB_CONSISTENCY_CHECKS);
    assert_eq!(parsed.unsupported, ['T']);
    assert!(parsed.unknown.is_empty());
    // A cache list is not read as more letters.
    let parsed = parse_slub_debug("P,kmalloc-64,dentry");
    assert_eq!(parsed.flags, SlabFlags::SLAB_POISON);
    assert_eq!(parsed.caches, Some("kmalloc-64,dentry"));
    assert!(parsed.unknown.is_empty(), "{:?}", parsed.unknown);
}
