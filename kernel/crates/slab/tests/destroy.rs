//! Asynchronous destroy (issue #10 §3, the Linux RFC "asynchronously destroy caches with
//! outstanding objects"): a cache whose objects are still in `kfree_rcu` flight is destroyed at
//! once, without a report; a work item waits for RCU, tries again and frees it.

mod common;

use std::sync::Arc;

use common::*;
use slab::host::HostPlatform;
use slab::{DestroyError, Gfp, KmemCache, KmemCacheHandle, SlabAllocator, SlabFlags};

/// Allocates `n` objects of `c` and frees them with `kfree_rcu`.
fn free_rcu_n(c: &KmemCache<HostPlatform>, n: usize) {
    for _ in 0..n {
        let o = c.alloc(Gfp::KERNEL).unwrap();
        // SAFETY: ours, not used afterwards.
        unsafe { c.free_rcu(o) };
    }
}

#[test]
fn objects_in_kfree_rcu_flight_do_not_hold_up_destroy() {
    let (p, _cpu, a) = setup(1, 1);
    let pages = p.pages_in_use();
    let c = a
        .kmem_cache_create("dcache", 64, args(), no_merge())
        .unwrap();
    let n = 2 * c.sheaf_capacity() + 5;
    free_rcu_n(&c, n);
    // SAFETY: nobody uses the cache afterwards.
    unsafe { a.kmem_cache_destroy(c) }.expect("returns at once");
    assert_eq!(p.error_count(), 0, "no warning");
    assert!(
        a.find_cache("dcache").is_none(),
        "gone from the list at once"
    );
    assert_eq!(a.destroy_pending(), [("dcache".into(), n)]);
    assert!(!a.caches().iter().any(|(c, _)| c.name() == "dcache"));
    // The name can be used again at once, while the old instance waits.
    let again = a
        .kmem_cache_create("dcache", 64, args(), no_merge())
        .unwrap();
    assert!(std::ptr::eq(a.find_cache("dcache").unwrap(), &*again));
    // The work item waits for the grace period, then frees the old cache.
    assert_eq!(p.run_work(), 1);
    assert!(a.destroy_pending().is_empty());
    assert_eq!(
        p.error_count(),
        0,
        "every object came back: nothing to report"
    );
    // SAFETY: nobody uses it.
    unsafe { a.kmem_cache_destroy(again) }.expect("empty");
    assert_eq!(p.pages_in_use(), pages, "every page of both caches is back");
}

#[test]
fn a_real_leak_is_still_reported_after_the_retry() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("leaky", 64, args(), no_merge())
        .unwrap();
    let leaked: Vec<usize> = (0..3)
        .map(|_| c.alloc(Gfp::KERNEL).unwrap().as_ptr() as usize)
        .collect();
    free_rcu_n(&c, 10);
    // SAFETY: the reference is used only while the (leaked, so kept) cache lives.
    let kept = unsafe { c.as_ref_unchecked() };
    // SAFETY: nobody uses the cache afterwards (but its leaked objects stay valid).
    unsafe { a.kmem_cache_destroy(c) }.expect("returns at once");
    assert_eq!(p.error_count(), 0, "not yet: they might be in flight");
    p.run_work();
    assert!(a.destroy_pending().is_empty());
    let (reports, total) = kept.reports();
    assert_eq!(total, 3, "one report per leaked object: {reports:?}");
    let mut named: Vec<usize> = reports.iter().map(|r| r.object).collect();
    named.sort_unstable();
    let mut want = leaked.clone();
    want.sort_unstable();
    assert_eq!(named, want, "each address is named");
    assert_eq!(p.error_count(), 3);
    // The cache was kept: its objects are still valid memory, and can even be freed.
    for o in leaked {
        // SAFETY: a live object of the kept cache.
        unsafe { kept.free(std::ptr::NonNull::new(o as *mut u8).unwrap()) }.unwrap();
    }
}

#[test]
fn a_typesafe_by_rcu_cache_is_released_a_grace_period_later() {
    let (p, _cpu, a) = setup(1, 1);
    let pages = p.pages_in_use();
    let c = a
        .kmem_cache_create("typesafe", 128, args(), SlabFlags::SLAB_TYPESAFE_BY_RCU)
        .unwrap();
    free_rcu_n(&c, 40);
    // SAFETY: nobody uses the cache afterwards.
    unsafe { a.kmem_cache_destroy(c) }.expect("returns at once");
    p.run_work();
    assert!(
        p.rcu_callbacks_pending() > 0,
        "the cache is released only after one more grace period"
    );
    assert!(
        p.pages_in_use() > pages,
        "its slabs stay readable until then"
    );
    p.synchronize_rcu();
    assert_eq!(p.rcu_callbacks_pending(), 0);
    assert_eq!(p.pages_in_use(), pages);
}

#[test]
fn destroying_a_cache_twice_is_reported() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("twice", 64, args(), no_merge())
        .unwrap();
    free_rcu_n(&c, 20);
    // SAFETY: only compared, and used while the cache is pending (alive).
    let stale = unsafe { c.as_ref_unchecked() };
    // SAFETY: nobody uses the cache afterwards.
    unsafe { a.kmem_cache_destroy(c) }.expect("returns at once");
    // SAFETY: a second handle for a cache being destroyed: refused, nothing touched.
    let again = unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(stale)) };
    assert_eq!(
        again,
        Err(DestroyError::AlreadyDestroyed {
            name: "twice".into()
        })
    );
    p.run_work();
    // SAFETY: the cache is freed now: the handle is only compared with the lists.
    let gone = unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(stale)) };
    assert_eq!(gone, Err(DestroyError::NotACache));
}

#[test]
fn destroy_from_inside_a_work_item() {
    let (p, _cpu, a) = setup(1, 1);
    let a: Arc<SlabAllocator<HostPlatform>> = Arc::new(a);
    let c = a
        .kmem_cache_create("inner", 64, args(), no_merge())
        .unwrap();
    free_rcu_n(&c, 30);
    // SAFETY: moved into the work item, which is the last user.
    let c: &'static KmemCache<HostPlatform> = unsafe { std::mem::transmute(c.leak()) };
    let a2 = a.clone();
    slab::Platform::queue_work(
        &p,
        Box::new(move || {
            // SAFETY: the work item is the cache's last user.
            unsafe { a2.kmem_cache_destroy(KmemCacheHandle::from_ref(c)) }.expect("destroyed");
        }),
    );
    // The first work item destroys the cache and queues the second, which frees it.
    assert_eq!(p.run_work(), 2);
    assert!(a.destroy_pending().is_empty());
    assert_eq!(p.error_count(), 0);
}

#[test]
fn caches_destroyed_concurrently_on_several_cpus_all_go() {
    let (p, _cpu, a) = setup(4, 1);
    let pages = p.pages_in_use();
    std::thread::scope(|s| {
        for _ in 0..3 {
            let (a, p) = (&a, &p);
            s.spawn(move || {
                let _cpu = p.register_cpu();
                for _ in 0..20 {
                    // The same name every time: each is free again as soon as it is destroyed.
                    let c = a
                        .kmem_cache_create("storm", 96, args(), no_merge())
                        .unwrap();
                    free_rcu_n(&c, 50);
                    // SAFETY: this thread was the cache's only user.
                    unsafe { a.kmem_cache_destroy(c) }.expect("returns at once");
                }
            });
        }
    });
    assert_eq!(a.destroy_pending().len(), 60);
    p.run_work();
    assert!(a.destroy_pending().is_empty());
    assert_eq!(p.error_count(), 0);
    assert_eq!(p.pages_in_use(), pages);
}
