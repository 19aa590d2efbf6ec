//! `kfree_rcu`: objects come back only after a grace period, through `rcu_free` sheaves.

mod common;

use std::collections::HashSet;

use common::*;
use slab::{Gfp, SlabErrorKind, SlabFlags, Stat};

#[test]
fn kfree_rcu_objects_wait_for_the_grace_period_then_are_reused() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a.kmem_cache_create("rcu", 64, args(), no_merge()).unwrap();
    let cap = c.sheaf_capacity();
    // Two and a half sheaves' worth: two full `rcu_free` sheaves go to RCU, half of one waits.
    let n = 2 * cap + cap / 2;
    let old: Vec<_> = (0..n).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    for &o in &old {
        // SAFETY: ours, not used afterwards.
        unsafe { c.free_rcu(o) };
    }
    assert_eq!(c.stat(Stat::FreeRcuSheaf), n as u64);
    assert_eq!(p.rcu_callbacks_pending(), 2, "one callback per full sheaf");
    let old: HashSet<usize> = old.iter().map(|o| o.as_ptr() as usize).collect();
    // Before the grace period none of them is handed out again.
    let fresh: Vec<_> = (0..n).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    assert!(
        fresh.iter().all(|f| !old.contains(&(f.as_ptr() as usize))),
        "an object freed with kfree_rcu came back before its grace period"
    );
    for f in fresh {
        // SAFETY: ours.
        unsafe { c.free(f) }.unwrap();
    }
    // After it, the two full sheaves are in the barn: their objects are served again.
    let full_before = c.barn_counts(0).0;
    p.synchronize_rcu();
    assert_eq!(p.rcu_callbacks_pending(), 0);
    assert_eq!(
        c.barn_counts(0).0,
        full_before + 2,
        "both rcu_free sheaves went to the barn"
    );
    // Take everything the sheaves and the barn hold, and more.
    let again: Vec<_> = (0..8 * cap)
        .map(|_| c.alloc(Gfp::KERNEL).unwrap())
        .collect();
    let reused = again
        .iter()
        .filter(|o| old.contains(&(o.as_ptr() as usize)))
        .count();
    assert_eq!(
        reused,
        2 * cap,
        "the objects of both full sheaves came back, those of the half-full one did not"
    );
    for o in again {
        // SAFETY: ours.
        unsafe { c.free(o) }.unwrap();
    }
    // Destroy hands in the half-full sheaf and waits for it: nothing is left over.
    // SAFETY: no other user; every object is freed (some through kfree_rcu).
    unsafe { a.kmem_cache_destroy(c) }.expect("no object remains");
}

#[test]
fn kfree_rcu_on_a_debug_cache_goes_object_by_object_and_keeps_its_checks() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("rcu-debug", 48, args(), SlabFlags::SLAB_POISON)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours; then (deliberately) freed a second time.
    unsafe {
        c.free_rcu(o);
        c.free_rcu(o);
    }
    assert_eq!(
        c.stat(Stat::FreeRcuSheafFail),
        2,
        "no sheaves in debug caches"
    );
    assert_eq!(p.rcu_callbacks_pending(), 2);
    assert_eq!(
        c.slabinfo().active_objs,
        1,
        "still allocated during the grace period"
    );
    p.synchronize_rcu();
    assert_eq!(c.slabinfo().active_objs, 0);
    let (reports, _) = c.reports();
    assert_eq!(
        reports.last().map(|r| r.kind.clone()),
        Some(SlabErrorKind::DoubleFree)
    );
}

#[test]
fn kmalloc_kfree_rcu_small_and_large() {
    let (p, _cpu, a) = setup(1, 1);
    let small = a.kmalloc(100, Gfp::KERNEL).unwrap();
    let large = a.kmalloc(64 << 10, Gfp::KERNEL).unwrap();
    let pages = p.pages_in_use();
    // SAFETY: ours, not used afterwards.
    unsafe {
        a.kfree_rcu(small.as_ptr()).unwrap();
        a.kfree_rcu(large.as_ptr()).unwrap();
    }
    assert_eq!(
        p.pages_in_use(),
        pages,
        "the large block waits for its grace period"
    );
    p.synchronize_rcu();
    assert_eq!(p.pages_in_use(), pages - 16, "then its 16 pages are free");
    // A pointer inside a large block is refused at once.
    let large = a.kmalloc(64 << 10, Gfp::KERNEL).unwrap();
    // SAFETY: deliberately not the block's start; nothing is freed.
    let r = unsafe { a.kfree_rcu(large.as_ptr().add(8)) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary);
    // SAFETY: ours.
    unsafe { a.kfree(large.as_ptr()) }.unwrap();
}

#[test]
fn dropping_the_allocator_waits_for_its_rcu_callbacks() {
    // Issue #9: the allocator was dropped with callbacks still queued that point into its
    // caches; the next grace period ran them on freed memory.
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("rcu-drop", 64, args(), no_merge())
        .unwrap();
    let cap = c.sheaf_capacity();
    for _ in 0..2 * cap {
        let o = c.alloc(Gfp::KERNEL).unwrap();
        // SAFETY: ours, not used afterwards.
        unsafe { c.free_rcu(o) };
    }
    let big = a.kmalloc(20_000, Gfp::KERNEL).unwrap();
    // SAFETY: ours, not used afterwards.
    unsafe { a.kfree_rcu(big.as_ptr()) }.unwrap();
    assert_eq!(
        p.rcu_callbacks_pending(),
        3,
        "two full sheaves and a large block"
    );
    drop(a);
    assert_eq!(
        p.rcu_callbacks_pending(),
        0,
        "the drop ran them while the caches were alive"
    );
    p.synchronize_rcu(); // nothing left to run on freed caches
}

#[test]
fn shrink_hands_a_partly_filled_rcu_free_sheaf_to_rcu() {
    // Issue #9 item 10: the objects of a partly filled `rcu_free` sheaf stayed there for
    // good in a cache that is never destroyed, whatever the grace periods and shrinks.
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("rcu-shrink", 8, args(), no_merge())
        .unwrap();
    let before = c.slabinfo();
    let n = 13;
    assert!(n < c.sheaf_capacity(), "less than a sheaf");
    for _ in 0..n {
        let o = c.alloc(Gfp::KERNEL).unwrap();
        // SAFETY: ours, not used afterwards.
        unsafe { c.free_rcu(o) };
    }
    assert_eq!(p.rcu_callbacks_pending(), 0, "the sheaf is not full");
    c.shrink();
    assert_eq!(
        c.slabinfo().active_objs,
        n,
        "still waiting for a grace period"
    );
    assert_eq!(
        p.rcu_callbacks_pending(),
        1,
        "shrink handed the sheaf to RCU"
    );
    p.synchronize_rcu();
    c.shrink();
    assert_eq!(
        c.slabinfo(),
        before,
        "the objects are back in their slabs, freed"
    );
    assert_eq!(c.slabinfo().num_slabs, 0);
    // SAFETY: no other user; nothing is allocated.
    unsafe { a.kmem_cache_destroy(c) }.expect("no object remains");
}

#[test]
fn kvfree_rcu_barrier_returns_only_when_every_earlier_object_is_back() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("kvfree-barrier", 64, args(), no_merge())
        .unwrap();
    let k8 = a.kmalloc_cache(8).unwrap();
    let (before, k8_before) = (c.slabinfo(), k8.slabinfo());
    // Two full `rcu_free` sheaves and a partly filled one, and 13 kmalloc-8 objects.
    let n = 2 * c.sheaf_capacity() + 5;
    for _ in 0..n {
        let o = c.alloc(Gfp::KERNEL).unwrap();
        // SAFETY: ours, not used afterwards.
        unsafe { c.free_rcu(o) };
    }
    for _ in 0..13 {
        let o = a.kmalloc(8, Gfp::KERNEL).unwrap();
        // SAFETY: ours, not used afterwards.
        unsafe { a.kfree_rcu(o.as_ptr()) }.unwrap();
    }
    assert_eq!(p.rcu_callbacks_pending(), 2, "the two full sheaves");
    a.kvfree_rcu_barrier();
    assert_eq!(
        p.rcu_callbacks_pending(),
        0,
        "the barrier waited for every callback"
    );
    // Nothing is left in an `rcu_free` sheaf: the shrinks below hand nothing to RCU and find
    // every object free, so every slab goes.
    c.shrink();
    k8.shrink();
    assert_eq!(
        p.rcu_callbacks_pending(),
        0,
        "no partly filled sheaf was left behind"
    );
    assert_eq!(
        c.slabinfo(),
        before,
        "every object is back, its slabs freed"
    );
    assert_eq!(
        k8.slabinfo().active_objs,
        k8_before.active_objs,
        "the kmalloc-8 objects are back too"
    );
    // SAFETY: no other user; nothing is allocated.
    unsafe { a.kmem_cache_destroy(c) }.expect("no object remains");
}

#[test]
fn kvfree_rcu_takes_the_sheaf_path_or_gives_the_object_back() {
    let (p, _cpu, a) = setup(1, 1);
    let o = a.kmalloc(40, Gfp::KERNEL).unwrap();
    // SAFETY: only an address: an interior pointer is refused, untouched.
    let inside = unsafe { o.add(8) };
    // SAFETY: as above.
    let refused = unsafe { a.kvfree_rcu_sheaf(inside) };
    assert_eq!(refused, Err(inside));
    // SAFETY: ours, given up on `Ok`.
    let queued = unsafe { a.kvfree_rcu_sheaf(o) };
    assert_eq!(queued, Ok(()), "kmalloc-64 has sheaves");
    let big = a.kmalloc(20_000, Gfp::KERNEL).unwrap();
    // SAFETY: as above; a large block has no sheaf and comes back.
    let back = unsafe { a.kvfree_rcu_sheaf(big) };
    assert_eq!(back, Err(big));
    // SAFETY: ours.
    unsafe { a.kfree(big.as_ptr()) }.unwrap();
    a.kvfree_rcu_barrier();
    assert_eq!(p.rcu_callbacks_pending(), 0);
}

#[test]
fn object_start_finds_the_object_around_an_address() {
    let (_p, _cpu, a) = setup(1, 1);
    let o = a.kmalloc(100, Gfp::KERNEL).unwrap(); // kmalloc-128
    for off in [0usize, 1, 16, 127] {
        assert_eq!(
            a.object_start(o.as_ptr() as usize + off),
            Some(o),
            "offset {off}"
        );
    }
    let big = a.kmalloc(20_000, Gfp::KERNEL).unwrap();
    assert_eq!(a.object_start(big.as_ptr() as usize + 9_000), Some(big));
    let on_stack = 0u64;
    assert_eq!(a.object_start(&on_stack as *const u64 as usize), None);
    // SAFETY: ours.
    unsafe {
        a.kfree(o.as_ptr()).unwrap();
        a.kfree(big.as_ptr()).unwrap();
    }
}

#[test]
fn a_debug_cache_gives_kvfree_rcu_objects_back_for_their_own_head() {
    let (_p, _cpu, a) = slub_debug(SlabFlags::SLAB_RED_ZONE);
    let o = a.kmalloc(64, Gfp::KERNEL).unwrap();
    // SAFETY: ours; a debug cache has no sheaves, so it comes back untouched.
    let back = unsafe { a.kvfree_rcu_sheaf(o) };
    assert_eq!(back, Err(o));
    // SAFETY: still ours.
    unsafe { a.kfree(o.as_ptr()) }.expect("the object was left intact");
}
