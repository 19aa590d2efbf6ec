//! On-target tests of RCU's core interface that need raw memory: an `rcu_head` embedded in a
//! static, queued while the page allocator has nothing left.

use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use slab::Gfp;

use crate::memory::kmalloc::slab;
use crate::memory::page_alloc;
use crate::sync::rcu::{RcuHead, call_rcu_head};

#[crate::ktest]
fn call_rcu_and_kfree_rcu_with_an_embedded_head_work_after_memory_is_exhausted() {
    static HEAD: RcuHead = RcuHead::new();
    static RAN: AtomicBool = AtomicBool::new(false);
    /// The callback: records that it ran.
    ///
    /// # Safety
    /// None needed: it only stores a flag.
    unsafe fn done(_: NonNull<RcuHead>) {
        RAN.store(true, Ordering::Release);
    }
    // Background work that allocates must not run while memory is exhausted below (the
    // kernel's Rust allocations panic when they fail): let earlier tests' RCU callbacks and
    // cache destroys finish first.
    crate::sync::rcu::rcu_barrier();
    while !slab().destroy_pending().is_empty() {
        crate::sched::yield_now();
    }
    // An object of a cache without sheaves: `kfree_rcu` must queue it on its own head.
    let debug = slab()
        .kmem_cache_create(
            "ktest-oom-kfree-rcu",
            32,
            slab::KmemCacheArgs::default(),
            slab::SlabFlags::SLAB_DEBUG_FLAGS,
        )
        .expect("cache");
    let obj = debug.alloc(Gfp::KERNEL).expect("memory");
    // Take every page, largest blocks first (the list of them is allocated beforehand).
    let total = page_alloc::stats().total as usize;
    let mut taken = Vec::with_capacity(total);
    let mut objects = Vec::with_capacity(1 << 16);
    for order in (0..=page_alloc::MAX_ORDER).rev() {
        while let Ok(block) = page_alloc::alloc_pages(order, None) {
            taken.push((block, order));
        }
    }
    assert!(
        page_alloc::alloc_pages(0, None).is_err(),
        "the page allocator is exhausted"
    );
    // Then what the slab caches still hold: now no allocation of any small size can succeed
    // (a `call_rcu` that boxed its callback would fail here).
    for size in [8usize, 16, 32, 64, 96, 128, 192, 256] {
        while objects.len() < objects.capacity()
            && let Some(p) = slab().kmalloc(size, Gfp::ATOMIC)
        {
            objects.push(p);
        }
    }
    assert!(
        slab().kmalloc(32, Gfp::ATOMIC).is_none(),
        "kmalloc is exhausted"
    );
    // SAFETY: the head is a static nobody else uses, and `done` may run at any time.
    unsafe { call_rcu_head(NonNull::from(&HEAD), done) };
    // SAFETY: ours; the head is the object's first 16 bytes, used for nothing else.
    unsafe { crate::memory::kmalloc::kvfree_call_rcu(obj.cast::<RcuHead>(), obj) };
    let deadline = crate::time::uptime_us() + 10_000_000;
    while !RAN.load(Ordering::Acquire) || debug.slabinfo().active_objs != 0 {
        assert!(
            crate::time::uptime_us() < deadline,
            "the callbacks did not run within 10 s"
        );
        crate::sched::yield_now();
    }
    for p in objects {
        // SAFETY: allocated above, never used.
        unsafe { slab().kfree(p.as_ptr()) }.expect("free");
    }
    for (block, order) in taken {
        // SAFETY: allocated above, never used.
        unsafe { page_alloc::free_pages(block, order) }.expect("give back");
    }
    // SAFETY: nothing of the cache is live any more.
    unsafe { slab().kmem_cache_destroy(debug) }.expect("the object was freed");
}
