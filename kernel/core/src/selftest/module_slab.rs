//! On-target test of the slab exports for modules (`kernel/entry/export/slab.rs`): the C
//! module `slabtest` (`modules/c/slabtest.c`, a checked-in fixture) runs slub_kunit-style cases
//! of every slab function of `include/sheaf/module.h` in its `init_module`, bad arguments and
//! deliberate corruption of debug caches included; here its output is checked, the reports
//! counted, and the kernel's allocator used afterwards.

use alloc::string::String;
use alloc::vec::Vec;

use crate::memory::kmalloc::{slab, slab_errors};
use crate::module::{self, ModuleFile};

static SLABTEST: &[u8] = include_bytes!("../../../crates/modload/tests/fixtures/slabtest.ko");

/// The cases `slabtest` prints `slabtest: ok CASE` for.
const CASES: [&str; 17] = [
    "kmalloc",
    "kzalloc",
    "kcalloc",
    "kmalloc_array",
    "krealloc",
    "ksize",
    "red_zone",
    "poison",
    "double_free",
    "bulk",
    "zalloc",
    "ctor",
    "size",
    "shrink",
    "usercopy",
    "bad_args",
    // (the last line)
    "0 failures",
];

/// The cases that corrupt memory on purpose, each of which must be reported.
const CORRUPTIONS: usize = 3;

/// Runs `f` with the console captured (the first 16 KiB); returns what it printed.
fn captured<R>(f: impl FnOnce() -> R) -> (R, String) {
    crate::console::capture_start();
    let r = f();
    let mut out = String::with_capacity(16 * 1024);
    crate::console::capture_stop(&mut out);
    (r, out)
}

#[crate::ktest]
fn the_slabtest_module_passes_every_case_and_the_kernel_goes_on() {
    let file = ModuleFile::trusted(SLABTEST).expect("a fixture in the image's read-only data");
    let errors = slab_errors();
    let (r, out) = captured(|| module::load(file, "slabtest", &[]));
    let reported = slab_errors() - errors;
    r.unwrap_or_else(|e| panic!("slabtest's init_module failed: {e}\n{out}"));
    assert!(!out.contains("FAIL"), "{out}");
    for case in &CASES[..CASES.len() - 1] {
        let line = alloc::format!("slabtest: ok {case}\n");
        assert!(out.contains(&line), "no `{line}`:\n{out}");
    }
    assert!(out.contains("slabtest: 0 failures"), "{out}");
    assert!(
        reported >= CORRUPTIONS,
        "{reported} slab errors reported, {CORRUPTIONS} corruptions made\n{out}"
    );
    // Each refusal of a bad argument said why.
    for refusal in [
        "kmem_cache_alloc(0x0): not a cache",
        "kmem_cache_free(",
        "kfree(",
        "unknown flags 0x100000",
        "kmem_cache_create: no name",
        "kmem_cache_create: the name is not UTF-8",
    ] {
        assert!(out.contains(refusal), "no `{refusal}`:\n{out}");
    }
    let (r, out) = captured(|| module::unload("slabtest", false));
    r.unwrap_or_else(|e| panic!("slabtest unloads: {e}\n{out}"));
    assert!(out.contains("slabtest: unloaded"), "{out}");
    assert!(module::list().iter().all(|m| m.name != "slabtest"));

    // The allocator goes on: a storm of kmalloc and kfree of every size class, each object
    // written whole, and not one report.
    let errors = slab_errors();
    let mut held: Vec<(core::ptr::NonNull<u8>, usize)> = Vec::with_capacity(512);
    for round in 0..20 {
        for i in 0..512usize {
            let size = 1 + (i * 37 + round * 101) % 9000;
            let p = slab()
                .kmalloc(size, slab::Gfp::KERNEL)
                .expect("memory for the storm");
            // SAFETY: `size` bytes just allocated, ours.
            unsafe { p.as_ptr().write_bytes(i as u8, size) };
            held.push((p, size));
        }
        for (p, _) in held.drain(..) {
            // SAFETY: allocated above and not used again.
            unsafe { slab().kfree(p.as_ptr()) }.expect("kfree");
        }
    }
    assert_eq!(slab_errors(), errors, "the storm was reported");
    // And the module loads again, and passes again.
    let (r, out) = captured(|| module::load(file, "slabtest", &[]));
    r.unwrap_or_else(|e| panic!("slabtest reloads: {e}\n{out}"));
    assert!(out.contains("slabtest: 0 failures"), "{out}");
    module::unload("slabtest", false).expect("unload");
}
