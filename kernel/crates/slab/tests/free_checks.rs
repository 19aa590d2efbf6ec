//! The free checks on by default (issue #18): every free checks that the pointer is an object
//! of the cache (`kmem_cache_free`) or of a slab (`kfree`), at an object boundary, and drops a
//! bad one with a report; `kfree_rcu` checks its pointer as `kfree` does, and the object freed
//! last again, before it waits for its grace period. (`hostile.rs` has `kmem_cache_free` of
//! another cache's object, of a pointer inside an object and of heap memory.)

mod common;

use std::collections::HashSet;
use std::ptr::NonNull;

use common::{args, setup, with_options};
use slab::host::HostPlatform;
use slab::{Gfp, KmemCache, SlabAllocator, SlabErrorKind, SlabFlags, SlabOptions};

/// Allocates `n` objects of `size` bytes with kmalloc and says whether `bad` is among them,
/// then frees them.
fn kmalloc_hands_out(a: &SlabAllocator<HostPlatform>, size: usize, n: usize, bad: usize) -> bool {
    let objs: Vec<_> = (0..n)
        .map(|_| a.kmalloc(size, Gfp::KERNEL).unwrap())
        .collect();
    let found = objs.iter().any(|o| o.as_ptr() as usize == bad);
    for o in objs {
        // SAFETY: ours.
        unsafe { a.kfree(o.as_ptr()) }.unwrap();
    }
    found
}

#[test]
fn kfree_of_a_pointer_inside_an_object_is_dropped() {
    let (_p, _cpu, a) = setup(1, 1);
    let o = a.kmalloc(64, Gfp::KERNEL).unwrap();
    // SAFETY: only the address is used.
    let inside = unsafe { o.as_ptr().add(8) };
    // SAFETY: refused before anything is written.
    let r = unsafe { a.kfree(inside) }.expect_err("dropped");
    assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary);
    assert!(!kmalloc_hands_out(&a, 64, 300, inside as usize));
    // SAFETY: ours.
    unsafe { a.kfree(o.as_ptr()) }.expect("the object itself is freed");
}

#[test]
fn kfree_of_a_slab_s_unused_tail_is_dropped() {
    // kmalloc-96: 42 objects in a page, then 64 unused bytes, the first of which is a multiple
    // of 96 from the page's start: an object boundary but for the count.
    let (_p, _cpu, a) = setup(1, 1);
    let c = a.kmalloc_cache(96).unwrap();
    assert_eq!((c.objs_per_slab(), c.slab_size()), (42, 4096));
    let o = a.kmalloc(96, Gfp::KERNEL).unwrap();
    let tail = (o.as_ptr() as usize & !4095) + 42 * 96;
    // SAFETY: refused before anything is written.
    let r = unsafe { a.kfree(tail as *mut u8) }.expect_err("dropped");
    assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary);
    assert!(!kmalloc_hands_out(&a, 96, 300, tail));
    // SAFETY: ours.
    unsafe { a.kfree(o.as_ptr()) }.unwrap();
}

#[test]
fn kfree_of_memory_of_no_slab_is_dropped() {
    let (_p, _cpu, a) = setup(1, 1);
    let boxed = Box::new([0u64; 8]);
    let heap = NonNull::from(&*boxed).cast::<u8>().as_ptr();
    // SAFETY: refused before anything is written.
    let r = unsafe { a.kfree(heap) }.expect_err("dropped");
    assert_eq!(r.kind, SlabErrorKind::NotSlabPage);
    let large = a.kmalloc(20_000, Gfp::KERNEL).unwrap();
    // SAFETY: refused before anything is written.
    let r = unsafe { a.kfree(large.as_ptr().add(4096)) }.expect_err("dropped");
    assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary);
    // SAFETY: ours.
    unsafe { a.kfree(large.as_ptr()) }.unwrap();
}

#[test]
fn kfree_rcu_of_a_pointer_inside_an_object_is_dropped() {
    let (_p, _cpu, a) = setup(1, 1);
    let o = a.kmalloc(64, Gfp::KERNEL).unwrap();
    // SAFETY: only the address is used.
    let inside = unsafe { o.as_ptr().add(8) };
    // SAFETY: refused before it is queued.
    let r = unsafe { a.kfree_rcu(inside) }.expect_err("dropped");
    assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary);
    a.kvfree_rcu_barrier();
    assert!(!kmalloc_hands_out(&a, 64, 300, inside as usize));
    // SAFETY: ours.
    unsafe { a.kfree_rcu(o.as_ptr()) }.expect("the object itself");
}

/// `cache`'s objects handed out by `n` allocations, freed again; panics if one comes twice.
fn distinct_objects(c: &KmemCache<HostPlatform>, n: usize) -> HashSet<usize> {
    let objs: Vec<_> = (0..n).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let set: HashSet<usize> = objs.iter().map(|o| o.as_ptr() as usize).collect();
    assert_eq!(set.len(), n, "an object was handed out twice");
    for o in objs {
        // SAFETY: ours, each once.
        unsafe { c.free(o) }.unwrap();
    }
    set
}

#[test]
fn free_rcu_of_another_cache_s_object_or_of_a_pointer_inside_one_is_dropped() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("rcu-strict", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let other = a
        .kmem_cache_create("rcu-other", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    let foreign = other.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: only the address is used.
    let inside = unsafe { o.add(8) };
    let errors = p.error_count();
    // SAFETY: both refused before they are queued.
    unsafe {
        c.free_rcu(inside);
        c.free_rcu(foreign);
    }
    assert_eq!(p.error_count(), errors + 2, "both reported");
    let kinds: Vec<_> = c.reports().0.iter().map(|r| r.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            SlabErrorKind::NotObjectBoundary,
            SlabErrorKind::WrongCache {
                owner: "rcu-other".into()
            }
        ]
    );
    a.kvfree_rcu_barrier();
    let handed = distinct_objects(&c, 300);
    assert!(!handed.contains(&(inside.as_ptr() as usize)));
    assert!(!handed.contains(&(foreign.as_ptr() as usize)));
    // SAFETY: ours.
    unsafe {
        c.free(o).unwrap();
        other.free(foreign).unwrap();
    }
}

#[test]
fn free_rcu_of_the_object_freed_last_is_dropped() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("rcu-twice", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let cap = c.sheaf_capacity();
    let objs: Vec<_> = (0..cap).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    // SAFETY: the second free of `objs[0]` is the bug under test; it is refused.
    unsafe {
        c.free_rcu(objs[0]);
        c.free_rcu(objs[0]);
    }
    assert_eq!(
        c.reports().0.last().map(|r| r.kind.clone()),
        Some(SlabErrorKind::DoubleFree)
    );
    for &o in &objs[1..] {
        // SAFETY: ours, once each: they fill the `rcu_free` sheaf.
        unsafe { c.free_rcu(o) };
    }
    // The full sheaf goes to the barn after its grace period, without meeting a slab: the
    // next allocations take its objects, each once.
    assert_eq!(
        p.rcu_callbacks_pending(),
        1,
        "the full sheaf was handed to RCU"
    );
    p.synchronize_rcu();
    distinct_objects(&c, 3 * cap);
}

#[test]
fn free_rcu_of_an_object_twice_is_caught_when_it_reaches_its_slab() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("rcu-deep", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let x = c.alloc(Gfp::KERNEL).unwrap();
    let y = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: the second free of `x` is the bug under test (not on top: `y` is between).
    unsafe {
        c.free_rcu(x);
        c.free_rcu(y);
        c.free_rcu(x);
    }
    // The partly filled sheaf goes back to the slabs, where the second `x` is caught.
    a.kvfree_rcu_barrier();
    assert_eq!(
        c.reports().0.last().map(|r| (r.kind.clone(), r.object)),
        Some((SlabErrorKind::DoubleFree, x.as_ptr() as usize))
    );
    distinct_objects(&c, 300);
}

#[test]
fn slab_nohardened_turns_the_checks_off() {
    let (_p, _cpu, a) = with_options(SlabOptions {
        nohardened: true,
        ..Default::default()
    });
    assert!(!a.hardened());
    let c = a
        .kmem_cache_create("unchecked", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    assert!(!c.flags().contains(SlabFlags::SLAB_HARDENED_FREE));
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: only the address is used.
    let inside = unsafe { o.add(8) };
    // SAFETY: the bug under test: unchecked, it goes into the sheaf...
    unsafe { c.free(inside) }.expect("not checked on the fast path");
    // ...and is caught when it reaches its slab.
    c.shrink();
    assert_eq!(
        c.reports().0.last().map(|r| r.kind.clone()),
        Some(SlabErrorKind::NotObjectBoundary)
    );
    // SAFETY: ours.
    unsafe { c.free(o) }.unwrap();
}
