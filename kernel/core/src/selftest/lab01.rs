//! Lab 01, "watching the slab allocator" (docs/labs/01-watching-the-slab-allocator.md), graded
//! through the student's predictions: each test measures a number on the running kernel and
//! compares it with the student's prediction in `lab01/predictions.rs`. `cargo lab grade 01`
//! runs these tests with its own pristine copy of this file; the student edits only the
//! predictions.
//!
//! Every measurement is on a private cache (`SLAB_NO_MERGE`: no other code allocates from it)
//! in one kernel thread pinned to one CPU (threads never migrate), so the numbers do not
//! depend on background activity.

mod predictions;

use alloc::vec::Vec;
use slab::{Gfp, KmemCacheArgs, SlabFlags, Stat};

use crate::memory::kmalloc::{KernelPlatform, slab};

/// Runs `f` in a kernel thread pinned to the calling CPU and returns its result.
fn on_one_cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    crate::sched::spawn_on(crate::cpu::current_id(), "lab01", f)
        .expect("a thread for the lab's measurement")
        .join()
}

/// Compares a prediction with the measured value, failing in the student's terms.
fn check(name: &str, predicted: Option<usize>, measured: usize, what: &str, hint: &str) {
    let file = "kernel/core/src/selftest/lab01/predictions.rs";
    match predicted {
        None => panic!(
            "no prediction yet: set {name} in {file} to Some(N), N being the number of {what}. Hint: {hint}"
        ),
        // The measured number itself is not shown: the student can see it at the `sheaf>`
        // prompt, after working out why the prediction was off.
        Some(p) => assert!(
            p == measured,
            "your prediction {name} = {p} is too {}: {name} is the number of {what}. Hint: {hint}",
            if p < measured { "low" } else { "high" }
        ),
    }
}

/// A fresh private cache of `size`-byte objects, with sheaves unless `debug`.
fn with_cache<T>(
    name: &str,
    size: usize,
    debug: bool,
    f: impl FnOnce(&slab::KmemCache<KernelPlatform>) -> T,
) -> T {
    let flags = if debug {
        SlabFlags::SLAB_NO_MERGE | SlabFlags::SLAB_CONSISTENCY_CHECKS
    } else {
        SlabFlags::SLAB_NO_MERGE
    };
    let cache = slab()
        .kmem_cache_create(name, size, KmemCacheArgs::default(), flags)
        .expect("the lab's cache");
    let result = f(&cache);
    // SAFETY: the cache is ours alone, and `f` freed every object it allocated.
    unsafe { slab().kmem_cache_destroy(cache) }.expect("every lab object was freed");
    result
}

/// Allocates `n` objects of `cache` and returns them as addresses.
fn alloc_n(cache: &slab::KmemCache<KernelPlatform>, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| cache.alloc(Gfp::KERNEL).expect("memory").as_ptr() as usize)
        .collect()
}

/// Frees the objects `alloc_n` gave, in allocation order.
fn free_all(cache: &slab::KmemCache<KernelPlatform>, objs: Vec<usize>) {
    for o in objs {
        let o = core::ptr::NonNull::new(o as *mut u8).expect("an object");
        // SAFETY: an object of `cache` from `alloc_n`, freed once.
        unsafe { cache.free(o) }.expect("a good free");
    }
}

#[crate::ktest]
fn objects_per_slab() {
    let (measured, declared) = on_one_cpu(|| {
        with_cache("lab01-opl", 200, false, |cache| {
            let objs = alloc_n(cache, 1);
            let info = cache.slabinfo();
            free_all(cache, objs);
            (info.num_objs / info.num_slabs, cache.objs_per_slab())
        })
    });
    assert_eq!(
        measured, declared,
        "slabinfo agrees with the cache's layout"
    );
    check(
        "OBJS_PER_SLAB",
        predictions::OBJS_PER_SLAB,
        measured,
        "objects in one slab of a 200-byte cache",
        "a slab is one or more pages; `slabinfo` shows objper and pages per slab, and \
         kernel/crates/slab/src/layout.rs computes them",
    );
}

#[crate::ktest]
fn slabs_for_1000_objects() {
    let measured = on_one_cpu(|| {
        with_cache("lab01-1000", 200, false, |cache| {
            let objs = alloc_n(cache, 1000);
            let slabs = cache.slabinfo().num_slabs;
            free_all(cache, objs);
            slabs
        })
    });
    check(
        "SLABS_FOR_1000",
        predictions::SLABS_FOR_1000,
        measured,
        "slabs a fresh 200-byte cache has after 1,000 allocations on one CPU",
        "an allocation pops the CPU's main sheaf; when it is empty, a whole sheaf is refilled \
         from the slabs (sheaf_refill in `slabinfo -s`), so more objects leave the slabs than \
         were asked for",
    );
}

#[crate::ktest]
fn sheaf_capacity_of_a_300_byte_cache() {
    let (capacity, refilled) = on_one_cpu(|| {
        with_cache("lab01-300", 300, false, |cache| {
            let objs = alloc_n(cache, 1);
            let refilled = cache.stat(Stat::SheafRefill) as usize;
            free_all(cache, objs);
            (cache.sheaf_capacity(), refilled)
        })
    });
    assert_eq!(
        refilled, capacity,
        "the first allocation fills the CPU's sheaf to its capacity"
    );
    check(
        "SHEAF_CAPACITY_300",
        predictions::SHEAF_CAPACITY_300,
        capacity,
        "objects in a full sheaf of a 300-byte cache",
        "default_sheaf_capacity gives a first number, and round_sheaf_capacity rounds it so \
         that the sheaf itself fills a kmalloc size class (kernel/crates/slab/src/layout.rs)",
    );
}

#[crate::ktest]
fn objects_cached_after_freeing_all() {
    let measured = on_one_cpu(|| {
        with_cache("lab01-cached", 200, false, |cache| {
            let objs = alloc_n(cache, 1000);
            free_all(cache, objs);
            cache.slabinfo().active_objs
        })
    });
    check(
        "CACHED_AFTER_FREE",
        predictions::CACHED_AFTER_FREE,
        measured,
        "objects of a 200-byte cache still in sheaves and the barn after 1,000 objects \
         allocated and freed on one CPU (slabinfo's active objects)",
        "a free pushes onto the main sheaf; a full one is exchanged with the spare, or put \
         into the node's barn, which holds a limited number of full sheaves (barn_put_fail, \
         sheaf_flush); kernel/crates/slab/src/barn.rs",
    );
}

#[crate::ktest]
fn empty_slabs_kept_after_freeing_all() {
    let (kept, before, freed) = on_one_cpu(|| {
        with_cache("lab01-kept", 200, true, |cache| {
            let objs = alloc_n(cache, 1000);
            let before = cache.slabinfo().num_slabs;
            free_all(cache, objs);
            let kept = cache.slabinfo().num_slabs;
            (kept, before, cache.stat(Stat::FreeSlab) as usize)
        })
    });
    assert_eq!(
        before - kept,
        freed,
        "free_slab counts the slabs given back"
    );
    check(
        "EMPTY_SLABS_KEPT",
        predictions::EMPTY_SLABS_KEPT,
        kept,
        "empty slabs a 200-byte cache without sheaves keeps when all its objects are freed; \
         free_slab counts only the slabs emptied after those",
        "min_partial in kernel/crates/slab/src/layout.rs",
    );
}
