//! On-target tests of RCU's core interface that need raw memory: an `rcu_head` embedded in a
//! static, queued while the page allocator has nothing left; and the helper that exhausts
//! memory, shared with the slab allocator's tests of the same situation.

use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use slab::Gfp;
use x86_64::PhysAddr;

use crate::memory::kmalloc::slab;
use crate::memory::page_alloc;
use crate::sync::rcu::{RcuHead, call_rcu_head};

/// Lets background work that allocates finish: earlier tests' RCU callbacks and cache
/// destroys. Call it before [`exhaust`]: the kernel's infallible Rust allocations panic when
/// they fail. Tests only (the services' tests use it too).
pub fn quiesce() {
    crate::sync::rcu::rcu_barrier();
    while slab().nr_destroy_pending() != 0 {
        crate::sched::yield_now();
    }
}

/// The kmalloc sizes [`exhaust`] takes every object of.
const SMALL_SIZES: [usize; 8] = [8, 16, 32, 64, 96, 128, 192, 256];

/// Memory taken by [`exhaust`], given back by [`Exhausted::give_back`].
pub struct Exhausted {
    /// Every block of pages, largest first.
    taken: Vec<(PhysAddr, usize)>,
    /// Every small kmalloc object the caches still had.
    objects: Vec<NonNull<u8>>,
}

/// Takes every page, then every small kmalloc object left in the slab caches: afterwards no
/// allocation of any small size can succeed (a `call_rcu` that boxed its callback would
/// fail). The lists of them are allocated beforehand. Tests only, after [`quiesce`]: until
/// [`Exhausted::give_back`], every allocation fails, and an infallible one panics (the
/// services' tests use it too: owning what it took, it is safe to call).
pub fn exhaust() -> Exhausted {
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
    for size in SMALL_SIZES {
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
    Exhausted { taken, objects }
}

/// [`exhaust`], after every CPU's sheaves of the small kmalloc caches went back to their slabs
/// (`kmem_cache_shrink`), where `exhaust` takes them: then no CPU can allocate a small object,
/// not only the calling one (a thread on another CPU, such as the workqueue manager,
/// allocates through its own CPU's sheaves). Tests only, after [`quiesce`]; objects freed on
/// another CPU afterwards can still be allocated again there.
pub fn exhaust_all_cpus() -> Exhausted {
    for size in SMALL_SIZES {
        if let Some(cache) = slab().kmalloc_cache(size) {
            cache.shrink();
        }
    }
    exhaust()
}

impl Exhausted {
    /// Gives every object and page back.
    pub fn give_back(self) {
        for p in self.objects {
            // SAFETY: allocated by `exhaust`, never used.
            unsafe { slab().kfree(p.as_ptr()) }.expect("free");
        }
        for (block, order) in self.taken {
            // SAFETY: allocated by `exhaust`, never used.
            unsafe { page_alloc::free_pages(block, order) }.expect("give back");
        }
    }
}

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
    quiesce();
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
    let exhausted = exhaust();
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
    exhausted.give_back();
    // SAFETY: nothing of the cache is live any more.
    unsafe { slab().kmem_cache_destroy(debug) }.expect("the object was freed");
}
