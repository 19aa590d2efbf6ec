//! The RFC's measure of static caches: cycles per alloc+free through a static cache against the
//! same cache created dynamically (the shell's `staticbench`). Their on-target tests are in
//! `static_setup`.

use core::hint::black_box;
use core::sync::atomic::{AtomicPtr, Ordering};

use slab::{Gfp, KmemCache, KmemCacheArgs, SlabFlags};

use crate::memory::kmalloc::{KernelPlatform, slab};
use crate::memory::static_cache::KmemCacheOpaque;

/// Cycles per alloc+free pair through a static cache and through the same cache created
/// dynamically (its address loaded from a global variable, as `static struct kmem_cache
/// *cachep` in Linux), in one run, best of `rounds`.
#[derive(Clone, Copy, Debug)]
pub struct StaticBench {
    /// Pairs per round.
    pub pairs: u64,
    /// TSC cycles per pair, static cache.
    pub static_cycles: u64,
    /// TSC cycles per pair, dynamic cache.
    pub dynamic_cycles: u64,
}

static BENCH_STATIC: KmemCacheOpaque = KmemCacheOpaque::new();
static BENCH_DYNAMIC: AtomicPtr<KmemCache<KernelPlatform>> = AtomicPtr::new(core::ptr::null_mut());

#[inline(never)]
fn static_pair() {
    // SAFETY: set up by `static_bench` before any call.
    let c = unsafe { BENCH_STATIC.to_kmem_cache() };
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated, not used again.
        let _ = unsafe { c.free(black_box(o)) };
    }
}

#[inline(never)]
fn dynamic_pair() {
    // SAFETY: set by `static_bench` to a cache that is never destroyed, before any call.
    let c = unsafe { &*BENCH_DYNAMIC.load(Ordering::Relaxed) };
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated, not used again.
        let _ = unsafe { c.free(black_box(o)) };
    }
}

/// Runs the comparison (sets the two 64-byte caches up on first use).
pub fn static_bench(pairs: u64, rounds: usize) -> StaticBench {
    let flags = SlabFlags::SLAB_NO_MERGE;
    if BENCH_DYNAMIC.load(Ordering::Relaxed).is_null() {
        let _ = BENCH_STATIC.setup("bench-static-64", 64, 8, flags, None);
        let c = slab()
            .kmem_cache_create("bench-dynamic-64", 64, KmemCacheArgs::default(), flags)
            .expect("cache")
            .leak();
        BENCH_DYNAMIC.store(core::ptr::from_ref(c).cast_mut(), Ordering::Relaxed);
    }
    let time = |pair: fn()| {
        pair();
        let _pin = crate::cpu::PreemptGuard::new();
        let start = crate::time::rdtsc();
        for _ in 0..pairs {
            pair();
        }
        (crate::time::rdtsc() - start) / pairs
    };
    let (mut s, mut d) = (u64::MAX, u64::MAX);
    for _ in 0..rounds {
        s = s.min(time(static_pair));
        d = d.min(time(dynamic_pair));
    }
    StaticBench {
        pairs,
        static_cycles: s,
        dynamic_cycles: d,
    }
}
