//! The RFC's measure of static caches: cycles per alloc+free through a static cache against the
//! same cache created dynamically (the shell's `staticbench`). Their on-target tests are in
//! `static_setup`.

use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use slab::{Gfp, KmemCache, KmemCacheArgs, SlabFlags};

use crate::BenchError;
use kcore::memory::kmalloc::{KernelPlatform, slab, with_reserve};
use kcore::memory::static_cache::KmemCacheOpaque;

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
/// Set once [`BENCH_STATIC`]'s setup has returned `Ok`.
static BENCH_STATIC_READY: AtomicBool = AtomicBool::new(false);
static BENCH_DYNAMIC: AtomicPtr<KmemCache<KernelPlatform>> = AtomicPtr::new(core::ptr::null_mut());

#[inline(never)]
fn static_pair() -> bool {
    // SAFETY: set up by `static_bench` before any call (`BENCH_STATIC_READY`).
    let c = unsafe { BENCH_STATIC.to_kmem_cache() };
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated, not used again.
        let _ = unsafe { c.free(black_box(o)) };
        return true;
    }
    false
}

#[inline(never)]
fn dynamic_pair() -> bool {
    // SAFETY: set by `static_bench` to a cache that is never destroyed, before any call.
    let c = unsafe { &*BENCH_DYNAMIC.load(Ordering::Relaxed) };
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated, not used again.
        let _ = unsafe { c.free(black_box(o)) };
        return true;
    }
    false
}

/// Pairs timed between two checks for Ctrl-C.
const PAIRS_PER_CHECK: u64 = 1 << 16;

/// Runs the comparison (sets the two 64-byte caches up on first use). An error when memory is
/// out (a pair could not allocate: its figure would mean nothing) or on Ctrl-C.
pub fn static_bench(pairs: u64, rounds: usize) -> Result<StaticBench, BenchError> {
    let flags = SlabFlags::SLAB_NO_MERGE;
    // Set up on the first run that has the memory for it (the shell runs one command at a
    // time, so no two runs race here).
    // The caches' structures may come from the reserve: setup and create allocate them
    // infallibly.
    if !BENCH_STATIC_READY.load(Ordering::Acquire) {
        with_reserve(|| BENCH_STATIC.setup("bench-static-64", 64, 8, flags, None))
            .map_err(|_| BenchError::OutOfMemory)?;
        BENCH_STATIC_READY.store(true, Ordering::Release);
    }
    if BENCH_DYNAMIC.load(Ordering::Acquire).is_null() {
        let c = with_reserve(|| {
            slab().kmem_cache_create("bench-dynamic-64", 64, KmemCacheArgs::default(), flags)
        })
        .map_err(|_| BenchError::OutOfMemory)?
        .leak();
        BENCH_DYNAMIC.store(core::ptr::from_ref(c).cast_mut(), Ordering::Release);
    }
    let time = |pair: fn() -> bool| -> Result<u64, BenchError> {
        if !pair() {
            return Err(BenchError::OutOfMemory);
        }
        let mut cycles = 0;
        let mut done = 0;
        while done < pairs {
            if kcore::console::interrupted() {
                return Err(BenchError::Interrupted);
            }
            let n = PAIRS_PER_CHECK.min(pairs - done);
            let _pin = kcore::cpu::PreemptGuard::new();
            let start = kcore::time::rdtsc();
            for _ in 0..n {
                pair();
            }
            cycles += kcore::time::rdtsc() - start;
            done += n;
        }
        if !pair() {
            return Err(BenchError::OutOfMemory);
        }
        Ok(cycles / pairs.max(1))
    };
    let (mut s, mut d) = (u64::MAX, u64::MAX);
    for _ in 0..rounds {
        s = s.min(time(static_pair)?);
        d = d.min(time(dynamic_pair)?);
    }
    Ok(StaticBench {
        pairs,
        static_cycles: s,
        dynamic_cycles: d,
    })
}
