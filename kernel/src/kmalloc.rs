//! kmalloc's set-up: the boot options that shape the slab allocator.
//!
//! The allocator itself runs in the core ([`kcore::memory::kmalloc`]: the slab crate on real
//! pages and CPUs, and `kmalloc` as the global allocator); this module reads the command line
//! and starts it.

use slab::{SlabFlags, SlabOptions};

/// Creates the kmalloc caches with the boot options: `slub_debug[=FZPU]` turns debugging on for
/// every cache, `slab_nomerge` keeps caches from merging. Needs the command line, the page
/// allocator and ACPI.
pub fn init() {
    let debug = crate::cmdline::get("slub_debug").map_or(SlabFlags::empty(), parse_slub_debug);
    let nomerge = crate::cmdline::get("slab_nomerge").is_some();
    kcore::memory::kmalloc::init(SlabOptions { debug, nomerge });
}

/// The flags of Linux's `slub_debug=` letters: `F` consistency checks, `Z` red zones,
/// `P` poisoning, `U` caller tracking; a bare `slub_debug` means all of them.
pub fn parse_slub_debug(letters: &str) -> SlabFlags {
    if letters.is_empty() {
        return SlabFlags::SLAB_DEBUG_FLAGS;
    }
    letters.chars().fold(SlabFlags::empty(), |flags, c| {
        flags
            | match c.to_ascii_uppercase() {
                'F' => SlabFlags::SLAB_CONSISTENCY_CHECKS,
                'Z' => SlabFlags::SLAB_RED_ZONE,
                'P' => SlabFlags::SLAB_POISON,
                'U' => SlabFlags::SLAB_STORE_USER,
                _ => SlabFlags::empty(),
            }
    })
}

#[crate::ktest]
fn slub_debug_letters_select_the_checks() {
    assert_eq!(parse_slub_debug(""), SlabFlags::SLAB_DEBUG_FLAGS);
    assert_eq!(
        parse_slub_debug("ZP"),
        SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON
    );
    assert_eq!(parse_slub_debug("u"), SlabFlags::SLAB_STORE_USER);
    assert_eq!(parse_slub_debug("-"), SlabFlags::empty());
}
