//! On-target tests of `kfree_rcu` at scale and of `kvfree_rcu_barrier`, on every CPU.

use alloc::vec::Vec;
use slab::{Gfp, KmemCacheArgs, SlabFlags};

use crate::memory::kmalloc::slab;

/// Frees `per_cpu` objects of `cache` with `kfree_rcu` on every online CPU, each on its CPU.
fn kfree_rcu_on_every_cpu(
    cache: &'static slab::KmemCache<crate::memory::kmalloc::KernelPlatform>,
    per_cpu: usize,
) {
    let threads: Vec<_> = crate::cpu::online()
        .map(|c| {
            crate::sched::spawn_on(c.id, "ktest-kfree-rcu", move || {
                for _ in 0..per_cpu {
                    let o = cache.alloc(Gfp::KERNEL).expect("memory");
                    // SAFETY: just allocated, not used afterwards.
                    unsafe { cache.free_rcu(o) };
                }
            })
            .expect("thread")
        })
        .collect();
    for t in threads {
        t.join();
    }
}

#[crate::ktest]
fn kvfree_rcu_barrier_returns_only_after_every_earlier_kfree_rcu_object_is_back() {
    let handle = slab()
        .kmem_cache_create(
            "ktest-kvfree",
            64,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    // SAFETY: every thread using this reference is joined before the cache is destroyed.
    let cache = unsafe { handle.as_ref_unchecked() };
    let baseline = cache.slabinfo();
    // On each CPU a full `rcu_free` sheaf (queued at once) and a partly filled one, which
    // nothing but the barrier hands to RCU.
    let per_cpu = cache.sheaf_capacity() + 7;
    kfree_rcu_on_every_cpu(cache, per_cpu);
    slab().kvfree_rcu_barrier();
    // Every object is free now: a shrink hands nothing more to RCU and frees every slab.
    cache.shrink();
    assert_eq!(
        cache.slabinfo(),
        baseline,
        "every object is back, every slab freed"
    );
    // SAFETY: nothing of the cache is live, nobody else uses it.
    unsafe { slab().kmem_cache_destroy(handle) }.expect("empty cache");
}

#[crate::ktest]
fn kfree_rcu_of_100000_objects_from_every_cpu_frees_them_all() {
    let handle = slab()
        .kmem_cache_create(
            "ktest-kfree-100k",
            96,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    // SAFETY: as above.
    let cache = unsafe { handle.as_ref_unchecked() };
    let baseline = cache.slabinfo();
    let cpus = crate::cpu::online().count();
    kfree_rcu_on_every_cpu(cache, 100_000 / cpus);
    slab().kvfree_rcu_barrier();
    cache.shrink();
    assert_eq!(cache.slabinfo(), baseline, "counts back to baseline");
    // SAFETY: as above.
    unsafe { slab().kmem_cache_destroy(handle) }.expect("empty cache");
}
