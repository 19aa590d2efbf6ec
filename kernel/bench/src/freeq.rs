//! The deferred free queue on the real machine: the lock hold time of freeing objects under a
//! spin lock, directly and through the queue (the shell's `freeqbench`), and an on-target test
//! with several CPUs queueing under one lock.

use alloc::vec::Vec;
use core::ptr::NonNull;

use slab::{Gfp, KmemCache, KmemCacheArgs, KmemFreeQHead, SlabFlags};

use crate::BenchError;
use kcore::memory::kmalloc::{KernelPlatform, slab, with_reserve};
use kcore::sync::SpinLock;
use kcore::time::rdtsc;

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
/// and a private cache with [`SlabFlags::SLAB_DEBUG_FLAGS`]. On an error (memory out, Ctrl-C)
/// every object is freed and both caches destroyed; a queue that does not free what it was
/// given ([`BenchError::FreeQueue`]) leaves those objects, and their cache, allocated.
pub fn bench(n: usize) -> Result<[FreeQRow; 3], BenchError> {
    let s = slab();
    let args = KmemCacheArgs::default();
    // The caches' structures may come from the reserve: `kmem_cache_create` allocates them
    // infallibly.
    let plain =
        with_reserve(|| s.kmem_cache_create("freeq-plain", 64, args, SlabFlags::SLAB_NO_MERGE))
            .map_err(|_| BenchError::OutOfMemory)?;
    let debug = match with_reserve(|| {
        s.kmem_cache_create("freeq-debug", 64, args, SlabFlags::SLAB_DEBUG_FLAGS)
    }) {
        Ok(debug) => debug,
        Err(_) => {
            // SAFETY: nothing of the cache was allocated; nobody else uses it.
            let _ = with_reserve(|| unsafe { s.kmem_cache_destroy(plain) });
            return Err(BenchError::OutOfMemory);
        }
    };
    let kmalloc64 = s.kmalloc_cache(64).expect("a kmalloc-64 cache");
    let kinds = [
        ("kmalloc-64", None, kmalloc64.is_debug()),
        ("cache, plain", Some(&*plain), plain.is_debug()),
        ("cache, debug flags", Some(&*debug), debug.is_debug()),
    ];
    // One array of `n` pointers, reserved once (it is the bulk of what the bench needs besides
    // the objects: 8 MiB for a million).
    let mut objs: Vec<NonNull<u8>> = Vec::new();
    let rows = objs
        .try_reserve_exact(n)
        .map_err(|_| BenchError::OutOfMemory)
        .and_then(|()| {
            let mut rows = [FreeQRow {
                what: "",
                debug: false,
                direct: 0,
                queued: 0,
                free_up: 0,
            }; 3];
            for (row, (what, cache, is_debug)) in rows.iter_mut().zip(kinds) {
                let (direct, queued, free_up) = measure(cache, n, &mut objs)?;
                *row = FreeQRow {
                    what,
                    debug: is_debug,
                    direct,
                    queued,
                    free_up,
                };
            }
            Ok(rows)
        });
    drop(objs);
    // kmalloc-64's `n` objects are free: their slabs go back.
    crate::shrink_kmalloc_caches([64]);
    // SAFETY: every object of both caches was freed by `measure`, whatever it returned, or
    // (a queue that did not free what it was given: `BenchError::FreeQueue`) is left allocated
    // and never used again, and destroy keeps the cache with a report instead of freeing it.
    with_reserve(|| unsafe {
        let _ = s.kmem_cache_destroy(plain);
        let _ = s.kmem_cache_destroy(debug);
    });
    rows
}

/// Frees one object of `cache` (kmalloc for `None`).
///
/// # Safety
/// `o` is a live object of `cache` (or of kmalloc), freed once and not used afterwards.
unsafe fn free_one(cache: Option<&KmemCache<KernelPlatform>>, o: NonNull<u8>) {
    // SAFETY: the caller's contract.
    let _ = unsafe {
        match cache {
            Some(c) => c.free(o),
            None => slab().kfree(o.as_ptr()),
        }
    };
}

/// Fills `objs` (empty, with room for `n`) with `n` objects of `cache` (kmalloc(64) for
/// `None`); on an error frees those it got and leaves `objs` empty.
fn alloc_n(
    cache: Option<&KmemCache<KernelPlatform>>,
    n: usize,
    objs: &mut Vec<NonNull<u8>>,
) -> Result<(), BenchError> {
    for i in 0..n {
        let o = if i % 1024 == 0 && kcore::console::interrupted() {
            Err(BenchError::Interrupted)
        } else {
            match cache {
                Some(c) => c.alloc(Gfp::KERNEL),
                None => slab().kmalloc(64, Gfp::KERNEL),
            }
            .ok_or(BenchError::OutOfMemory)
        };
        match o {
            // Within the capacity reserved: no allocation.
            Ok(o) => objs.push(o),
            Err(e) => {
                for o in objs.drain(..) {
                    // SAFETY: allocated above from `cache`, each once.
                    unsafe { free_one(cache, o) };
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// (direct, queued, free_up) cycles for `n` objects, each the fewest of [`RUNS`] runs; `objs`
/// is the caller's array with room for `n`, left empty.
fn measure(
    cache: Option<&KmemCache<KernelPlatform>>,
    n: usize,
    objs: &mut Vec<NonNull<u8>>,
) -> Result<(u64, u64, u64), BenchError> {
    let s = slab();
    let (mut direct, mut queued, mut free_up) = (u64::MAX, u64::MAX, u64::MAX);
    for _ in 0..RUNS {
        alloc_n(cache, n, objs)?;
        let lock = SpinLock::new(&mut *objs);
        let mut guard = lock.lock();
        let start = rdtsc();
        for o in guard.drain(..) {
            // SAFETY: allocated by `alloc_n` from `cache`, each once.
            unsafe { free_one(cache, o) };
        }
        direct = direct.min(rdtsc() - start);
        drop(guard);

        alloc_n(cache, n, objs)?;
        let lock = SpinLock::new(&mut *objs);
        let mut q = KmemFreeQHead::new();
        let mut guard = lock.lock();
        let start = rdtsc();
        for o in guard.drain(..) {
            // SAFETY: as above, given up to the queue.
            let _ = unsafe { s.kmem_free_q_add(&mut q, cache, o) };
        }
        queued = queued.min(rdtsc() - start);
        drop(guard);
        let start = rdtsc();
        let r = s.kmem_free_up_q(&mut q);
        free_up = free_up.min(rdtsc() - start);
        if (r.freed, r.reports.len()) != (n, 0) {
            // Whatever the queue did not free stays allocated: a leak, not a crash.
            return Err(BenchError::FreeQueue {
                queued: n,
                freed: r.freed,
                reports: r.reports.len(),
            });
        }
    }
    Ok((direct, queued, free_up))
}

#[kcore::ktest]
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
    kcore::sched::run_on_each_cpu("ktest-freeq", &|| {
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
    let cpus = kcore::cpu::online().count();
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
