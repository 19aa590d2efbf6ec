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

/// A structure with an embedded `rcu_head`, as `kfree_rcu(ptr, rcu)` wants.
#[repr(C)]
struct Node {
    value: u64,
    rcu: crate::sync::rcu::RcuHead,
}

/// Allocates a [`Node`] from `cache` (whose objects must be at least that large).
fn new_node(cache: &slab::KmemCache<crate::memory::kmalloc::KernelPlatform>) -> *mut Node {
    let p = cache.alloc(Gfp::KERNEL).expect("memory").cast::<Node>();
    // SAFETY: a fresh object of at least `size_of::<Node>()` bytes, suitably aligned.
    unsafe {
        p.as_ptr().write(Node {
            value: 0x5eaf,
            rcu: crate::sync::rcu::RcuHead::new(),
        })
    };
    p.as_ptr()
}

#[crate::ktest]
fn kfree_rcu_with_an_embedded_head_frees_through_sheaves_or_its_own_head() {
    // A plain cache (its objects go through the `rcu_free` sheaves) and a debug one (no
    // sheaves: each object is queued on its own head, with no allocation).
    for (name, flags) in [
        ("ktest-kfree-rcu-head", SlabFlags::SLAB_NO_MERGE),
        ("ktest-kfree-rcu-head-dbg", SlabFlags::SLAB_DEBUG_FLAGS),
    ] {
        let cache = slab()
            .kmem_cache_create(
                name,
                core::mem::size_of::<Node>(),
                KmemCacheArgs::default(),
                flags,
            )
            .expect("cache");
        let baseline = cache.slabinfo();
        for _ in 0..100 {
            let node = new_node(&cache);
            // SAFETY: the node is ours and nobody uses it afterwards; its `rcu` field is free.
            unsafe { crate::kfree_rcu!(node, rcu) };
        }
        slab().kvfree_rcu_barrier();
        cache.shrink();
        assert_eq!(cache.slabinfo(), baseline, "{name}: every node was freed");
        assert_eq!(cache.reports().1, 0, "{name}: no report");
        // SAFETY: nothing of the cache is live.
        unsafe { slab().kmem_cache_destroy(cache) }.expect("empty cache");
    }
}
