//! The deferred free queue on the real machine: the lock hold time of freeing objects under a
//! spin lock, directly and through the queue (the shell's `freeqbench`), and an on-target test
//! with several CPUs queueing under one lock.

use alloc::vec::Vec;
use core::ptr::NonNull;

use slab::{Gfp, KmemCache, KmemCacheArgs, KmemFreeQHead, SlabFlags};

use crate::memory::kmalloc::{KernelPlatform, slab};
use crate::sync::SpinLock;
use crate::time::rdtsc;

/// One row of [`bench`]: TSC cycles to free `objects` objects of one kind.
#[derive(Debug, Clone, Copy)]
pub struct FreeQRow {
    /// What was freed: `kmalloc-64`, or a private 64-byte cache.
    pub what: &'static str,
    /// Whether its cache runs the debug checks (`slub_debug`, or debug flags of its own).
    pub debug: bool,
    /// Lock held while freeing every object directly.
    pub direct: u64,
    /// Lock held while queueing every object (`kmem_free_q_add`).
    pub queued: u64,
    /// `kmem_free_up_q` after the unlock.
    pub free_up: u64,
}

/// Fewest cycles over this many runs of each measurement (interrupts land in some).
const RUNS: usize = 5;

/// Lock hold times for freeing `n` objects under a [`SpinLock`], directly and through the
/// queue, for kmalloc-64 (in whatever debug state the kernel booted), a plain private cache
/// and a private cache with [`SlabFlags::SLAB_DEBUG_FLAGS`]. `None` when out of memory.
pub fn bench(n: usize) -> Option<Vec<FreeQRow>> {
    let s = slab();
    let args = KmemCacheArgs::default();
    let plain = s
        .kmem_cache_create("freeq-plain", 64, args, SlabFlags::SLAB_NO_MERGE)
        .ok()?;
    let debug = s
        .kmem_cache_create("freeq-debug", 64, args, SlabFlags::SLAB_DEBUG_FLAGS)
        .ok()?;
    let kmalloc64 = s.kmalloc_cache(64).expect("a kmalloc-64 cache");
    let rows = [
        ("kmalloc-64", None, kmalloc64.is_debug()),
        ("cache, plain", Some(&*plain), plain.is_debug()),
        ("cache, debug flags", Some(&*debug), debug.is_debug()),
    ]
    .into_iter()
    .map(|(what, cache, is_debug)| {
        let (direct, queued, free_up) = measure(cache, n)?;
        Some(FreeQRow {
            what,
            debug: is_debug,
            direct,
            queued,
            free_up,
        })
    })
    .collect();
    // SAFETY: every object of both caches was freed by `measure`.
    unsafe {
        let _ = s.kmem_cache_destroy(plain);
        let _ = s.kmem_cache_destroy(debug);
    }
    rows
}

/// Allocates `n` objects of `cache` (kmalloc(64) for `None`).
fn alloc_n(cache: Option<&KmemCache<KernelPlatform>>, n: usize) -> Option<Vec<NonNull<u8>>> {
    (0..n)
        .map(|_| match cache {
            Some(c) => c.alloc(Gfp::KERNEL),
            None => slab().kmalloc(64, Gfp::KERNEL),
        })
        .collect()
}

/// (direct, queued, free_up) cycles for `n` objects, each the fewest of [`RUNS`] runs.
fn measure(cache: Option<&KmemCache<KernelPlatform>>, n: usize) -> Option<(u64, u64, u64)> {
    let s = slab();
    let (mut direct, mut queued, mut free_up) = (u64::MAX, u64::MAX, u64::MAX);
    for _ in 0..RUNS {
        let lock = SpinLock::new(alloc_n(cache, n)?);
        let guard = lock.lock();
        let start = rdtsc();
        for &o in guard.iter() {
            // SAFETY: allocated above from `cache` (or kmalloc), freed once.
            let _ = unsafe {
                match cache {
                    Some(c) => c.free(o),
                    None => s.kfree(o.as_ptr()),
                }
            };
        }
        direct = direct.min(rdtsc() - start);
        drop(guard);

        let lock = SpinLock::new(alloc_n(cache, n)?);
        let mut q = KmemFreeQHead::new();
        let guard = lock.lock();
        let start = rdtsc();
        for &o in guard.iter() {
            // SAFETY: as above, given up to the queue.
            let _ = unsafe { s.kmem_free_q_add(&mut q, cache, o) };
        }
        queued = queued.min(rdtsc() - start);
        drop(guard);
        let start = rdtsc();
        let r = s.kmem_free_up_q(&mut q);
        free_up = free_up.min(rdtsc() - start);
        assert_eq!((r.freed, r.reports.len()), (n, 0), "freeqbench: a bad free");
    }
    Some((direct, queued, free_up))
}

#[crate::ktest]
fn objects_queued_under_a_lock_on_every_cpu_are_all_freed_after_it() {
    // Red zones: no sheaves, so the counts are exact as soon as the objects are freed.
    let cache = slab()
        .kmem_cache_create(
            "ktest-freeq",
            48,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_RED_ZONE,
        )
        .expect("cache");
    let c: &KmemCache<KernelPlatform> = &cache;
    let base = c.slabinfo().active_objs;
    const PER_CPU: usize = 200;
    let lock = SpinLock::new(KmemFreeQHead::new());
    crate::sched::run_on_each_cpu("ktest-freeq", &|| {
        for _ in 0..PER_CPU / 10 {
            let objs: Vec<_> = (0..10)
                .map(|_| c.alloc(Gfp::KERNEL).expect("memory"))
                .collect();
            let mut q = lock.lock();
            for o in objs {
                // SAFETY: from `c`, given up.
                unsafe { slab().kmem_free_q_add(&mut q, Some(c), o) }.expect("queued");
            }
        }
    })
    .expect("a thread per CPU");
    let cpus = crate::cpu::online().count();
    assert_eq!(
        c.slabinfo().active_objs,
        base + cpus * PER_CPU,
        "nothing freed yet"
    );
    let mut q = core::mem::take(&mut *lock.lock());
    assert_eq!(q.len(), cpus * PER_CPU);
    let r = slab().kmem_free_up_q(&mut q);
    assert_eq!((r.freed, r.reports.len()), (cpus * PER_CPU, 0));
    assert_eq!(c.slabinfo().active_objs, base, "every object back");
    // SAFETY: no object of the cache is live, nothing is queued.
    unsafe { slab().kmem_cache_destroy(cache) }.expect("an empty cache");
}
