//! The deferred free queue lab (docs/labs/05-free-queue.md): `kmem_free_q_add` queues an
//! object without freeing it, `kmem_free_up_q` frees the queue after the lock, in order, and
//! both refuse what would corrupt the queue. Checked from what a user of the slab allocator
//! can see: a cache's objects in use, the queue's length, the reports. `cargo lab grade freeq`
//! runs these with its own pristine copy of this file.
//!
//! Each test uses a private cache (`SLAB_NO_MERGE`) from one kernel thread pinned to the
//! calling CPU, so that nothing else allocates from it and its counts are exact.

use alloc::vec::Vec;
use core::ptr::NonNull;

use slab::{Gfp, KmemCache, KmemCacheArgs, KmemFreeQHead, SlabErrorKind, SlabFlags};

use crate::memory::kmalloc::{KernelPlatform, slab};
use crate::sync::SpinLock;

type Cache = KmemCache<KernelPlatform>;
type Queue = KmemFreeQHead<'static, KernelPlatform>;

/// Where the student's code is.
const FILE: &str = "kernel/crates/slab/src/free_q.rs";

/// Runs `f` on a fresh private cache of 64-byte objects, in a kernel thread pinned to the
/// calling CPU; `f` frees (or queues and frees up) what it allocates.
fn on_a_fresh_cache(name: &'static str, f: impl FnOnce(&'static Cache) + Send + 'static) {
    crate::sched::spawn_on(crate::cpu::current_id(), "lab-freeq", move || {
        let cache = slab()
            .kmem_cache_create(name, 64, KmemCacheArgs::default(), SlabFlags::SLAB_NO_MERGE)
            .expect("the lab's cache");
        // SAFETY: the cache is destroyed below, after `f` returned and nothing of it is used.
        let c: &'static Cache = unsafe { cache.as_ref_unchecked() };
        f(c);
        // SAFETY: the cache is ours alone, and `f` freed every object it allocated.
        unsafe { slab().kmem_cache_destroy(cache) }
            .expect("every object of the lab's cache was freed (by kmem_free_up_q)");
    })
    .expect("a thread for the test")
    .join();
}

/// Objects of `c` in use, once its sheaves are flushed back to the slabs.
fn in_use(c: &Cache) -> usize {
    c.shrink();
    c.slabinfo().active_objs
}

fn alloc_n(c: &Cache, n: usize) -> Vec<NonNull<u8>> {
    (0..n)
        .map(|_| c.alloc(Gfp::KERNEL).expect("memory"))
        .collect()
}

/// Queues `objs` of `c` on the queue under `lock`, as a kernel path tearing a structure down
/// under its lock would.
fn queue_all(lock: &SpinLock<Queue>, c: &'static Cache, objs: &[NonNull<u8>]) {
    let mut q = lock.lock();
    for &o in objs {
        // SAFETY: allocated from `c`, given up here.
        let added = unsafe { slab().kmem_free_q_add(&mut q, Some(c), o) };
        assert!(
            added.is_ok(),
            "kmem_free_q_add refused an object of a 64-byte cache: {added:?} ({FILE})"
        );
    }
}

#[crate::ktest]
fn queued_objects_stay_allocated_until_freed_up() {
    on_a_fresh_cache("lab-freeq-defer", |c| {
        let base = in_use(c);
        let objs = alloc_n(c, 100);
        let lock = SpinLock::new(Queue::new());
        queue_all(&lock, c, &objs);
        let mut q = core::mem::take(&mut *lock.lock());
        assert_eq!(
            (q.len(), in_use(c)),
            (100, base + 100),
            "after 100 kmem_free_q_add the queue should hold 100 objects and all 100 should \
             still be allocated (queued, not freed): kmem_free_q_add in {FILE} links the \
             object into the queue and must not free it"
        );
        let r = slab().kmem_free_up_q(&mut q);
        assert_eq!(
            (r.freed, r.reports.len(), q.len(), in_use(c)),
            (100, 0, 0, base),
            "kmem_free_up_q should free the 100 queued objects (freed = 100, no report), leave \
             the queue empty and the cache's objects in use back where they were: \
             kmem_free_up_q in {FILE}"
        );
    });
}

#[crate::ktest]
fn objects_are_freed_in_the_order_queued() {
    on_a_fresh_cache("lab-freeq-order", |c| {
        let objs = alloc_n(c, 5);
        let mut q = Queue::new();
        for &o in &objs {
            // SAFETY: from `c`, given up.
            unsafe { slab().kmem_free_q_add(&mut q, Some(c), o) }.expect("queued");
        }
        assert_eq!(slab().kmem_free_up_q(&mut q).freed, 5, "5 objects freed up");
        // The main sheaf is a stack: the object freed last is allocated first.
        let again = alloc_n(c, 5);
        let mut expected = objs.clone();
        expected.reverse();
        assert_eq!(
            again, expected,
            "objects queued A, B, C, D, E must be freed in that order (so the main sheaf, a \
             stack, hands them out again E, D, C, B, A): link each new node after the last \
             (head.last) and walk from head.first ({FILE})"
        );
        for o in again {
            // SAFETY: from `c`, not used afterwards.
            unsafe { c.free(o) }.expect("freed");
        }
    });
}

#[crate::ktest]
fn queueing_an_object_twice_is_a_double_free_and_frees_it_once() {
    on_a_fresh_cache("lab-freeq-twice", |c| {
        let base = in_use(c);
        let objs = alloc_n(c, 3);
        let mut q = Queue::new();
        for &o in &objs {
            // SAFETY: from `c`, given up.
            unsafe { slab().kmem_free_q_add(&mut q, Some(c), o) }.expect("queued");
        }
        // SAFETY: the object is queued already: the call must see it and refuse it.
        let again = unsafe { slab().kmem_free_q_add(&mut q, Some(c), objs[1]) };
        assert!(
            matches!(&again, Err(r) if r.kind == SlabErrorKind::DoubleFree),
            "a second kmem_free_q_add of a queued object must be refused as a double free \
             (its second word is still its tag: compare it with tag(owner) before writing), \
             not {again:?} ({FILE})"
        );
        assert_eq!(q.len(), 3, "the refused add must leave the queue as it was");
        let r = slab().kmem_free_up_q(&mut q);
        assert_eq!(
            (r.freed, r.reports.len(), in_use(c)),
            (3, 0, base),
            "the three objects are then freed once each, without a report (a refused add \
             writes nothing into the object: the list is intact)"
        );
        let (_, reports) = c.reports();
        assert_eq!(reports, 1, "the double free was reported to the cache once");
    });
}

#[crate::ktest]
fn kmalloc_objects_go_back_through_kfree() {
    crate::sched::spawn_on(crate::cpu::current_id(), "lab-freeq", || {
        let a = slab();
        // Small ones from kmalloc-64 and kmalloc-256, and a large block (pages).
        let objs: Vec<NonNull<u8>> = [64, 200, 64, 8192]
            .iter()
            .map(|&n| a.kmalloc(n, Gfp::KERNEL).expect("memory"))
            .collect();
        let mut q = Queue::new();
        for &o in &objs {
            // SAFETY: from kmalloc, given up.
            let added = unsafe { a.kmem_free_q_add(&mut q, None, o) };
            assert!(
                added.is_ok(),
                "kmalloc'ed object refused: {added:?} ({FILE})"
            );
        }
        assert_eq!(
            q.len(),
            4,
            "4 kmalloc'ed objects queued with cache None: the queue should hold 4 ({FILE})"
        );
        let r = a.kmem_free_up_q(&mut q);
        assert_eq!(
            (r.freed, r.reports.len()),
            (4, 0),
            "kmem_free_up_q should free each through kfree (its tag names no cache: \
             tag ^ TAG_MIX == 0), without a report ({FILE})"
        );
    })
    .expect("a thread for the test")
    .join();
}

#[crate::ktest]
fn a_list_cut_short_is_reported_not_followed() {
    on_a_fresh_cache("lab-freeq-cut", |c| {
        let base = in_use(c);
        let objs = alloc_n(c, 3);
        let mut q = Queue::new();
        for &o in &objs {
            // SAFETY: from `c`, given up.
            unsafe { slab().kmem_free_q_add(&mut q, Some(c), o) }.expect("queued");
        }
        // A bug in the caller: it writes into the second object after queueing it, over
        // the node's `next`.
        // SAFETY: the object is allocated (queued, not freed) and 64 bytes long; the queue
        // is ours and is never walked past what kmem_free_up_q checks.
        unsafe { objs[1].as_ptr().cast::<usize>().write(0) };
        let r = slab().kmem_free_up_q(&mut q);
        let corrupted = r.reports.iter().any(|r| {
            r.kind
                == SlabErrorKind::FreeQCorrupted {
                    queued: 3,
                    reached: 2,
                }
        });
        assert!(
            r.freed == 2 && corrupted,
            "with the second node's next overwritten by 0, kmem_free_up_q should free the \
             first two, stop, and report FreeQCorrupted {{ queued: 3, reached: 2 }}; it freed \
             {} and reported {:?} ({FILE})",
            r.freed,
            r.reports
        );
        // The third object was never reached: it is still allocated, and still ours.
        assert_eq!(
            in_use(c),
            base + 1,
            "the object past the cut is still allocated"
        );
        // SAFETY: allocated from `c`, not queued any more (the queue is gone).
        unsafe { c.free(objs[2]) }.expect("freed");
    });
}

#[crate::ktest]
fn boxes_dropped_under_a_guard_wait_for_its_drop() {
    use crate::memory::free_q::{DeferFrees, queued_on_this_cpu};
    use alloc::boxed::Box;
    crate::sched::spawn_on(crate::cpu::current_id(), "lab-freeq", || {
        let before = queued_on_this_cpu();
        let guard = DeferFrees::new();
        let list: Vec<Box<[u64; 8]>> = (0..10u64).map(|i| Box::new([i; 8])).collect();
        drop(list);
        let queued = queued_on_this_cpu() - before;
        drop(guard);
        assert_eq!(
            queued, 11,
            "ten 64-byte boxes and their Vec's buffer dropped under a DeferFrees guard should \
             be queued on this CPU's free queue (kernel/core/src/memory/free_q.rs calls \
             kmem_free_q_add, in {FILE})"
        );
        assert_eq!(
            queued_on_this_cpu(),
            0,
            "the guard's drop frees the queue up (kmem_free_up_q)"
        );
    })
    .expect("a thread for the test")
    .join();
}
