//! Checks of whole slabs (issue #9 item 7): the objects of a slab freed under
//! `SLAB_CONSISTENCY_CHECKS` (Linux's `free_slab`), and `validate` (`validate_slab_cache`).

mod common;

use std::collections::HashSet;
use std::ptr::NonNull;

use common::*;
use slab::host::HostPlatform;
use slab::{Gfp, KmemCache, SlabErrorKind, SlabFlags};

const POISON_F: SlabFlags = SlabFlags::SLAB_POISON.union(SlabFlags::SLAB_CONSISTENCY_CHECKS);
const REDZONE_F: SlabFlags = SlabFlags::SLAB_RED_ZONE.union(SlabFlags::SLAB_CONSISTENCY_CHECKS);

fn kinds(c: &KmemCache<HostPlatform>) -> Vec<SlabErrorKind> {
    c.reports().0.iter().map(|r| r.kind.clone()).collect()
}

/// Allocates objects until they fill `slabs` whole slabs; returns them grouped by slab.
fn fill_slabs(c: &KmemCache<HostPlatform>, slabs: usize) -> Vec<Vec<NonNull<u8>>> {
    let mut by_slab: Vec<Vec<NonNull<u8>>> = Vec::new();
    for _ in 0..slabs * c.objs_per_slab() {
        let o = c.alloc(Gfp::KERNEL).unwrap();
        let base = o.as_ptr() as usize & !(c.slab_size() - 1);
        match by_slab
            .iter_mut()
            .find(|v| v[0].as_ptr() as usize & !(c.slab_size() - 1) == base)
        {
            Some(v) => v.push(o),
            None => by_slab.push(vec![o]),
        }
    }
    assert_eq!(by_slab.len(), slabs);
    by_slab
}

/// The cache still works, and `bad` is never handed out again.
fn bad_object_never_comes_back(c: &KmemCache<HostPlatform>, bad: usize) {
    let objs: Vec<_> = (0..3 * c.objs_per_slab())
        .map(|_| c.alloc(Gfp::KERNEL).unwrap())
        .collect();
    let set: HashSet<_> = objs.iter().map(|o| o.as_ptr() as usize).collect();
    assert_eq!(set.len(), objs.len());
    assert!(
        !set.contains(&bad),
        "the corrupted object was handed out again"
    );
    for o in objs {
        // SAFETY: ours.
        unsafe { c.free(o) }.unwrap();
    }
}

#[test]
fn write_after_free_is_reported_when_shrink_frees_the_slab() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a.kmem_cache_create("waf", 64, args(), POISON_F).unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o) }.unwrap();
    // SAFETY: deliberate write after free, into memory the slab still owns.
    unsafe { o.as_ptr().add(7).write(0) };
    let errors = p.error_count();
    assert_eq!(c.shrink(), 0, "the slab with the corrupted object is kept");
    assert_eq!(kinds(&c), [SlabErrorKind::PoisonOverwritten { offset: 7 }]);
    assert_eq!(c.reports().0[0].object, o.as_ptr() as usize);
    assert_eq!(p.error_count(), errors + 1, "sent to the platform too");
    assert_eq!(c.isolated_objects(), 1);
    let info = c.slabinfo();
    assert_eq!(
        (info.num_slabs, info.active_objs),
        (1, 1),
        "isolated, in use"
    );
    bad_object_never_comes_back(&c, o.as_ptr() as usize);
    // Kept for good: shrinking again neither frees it nor reports the object again.
    c.shrink();
    assert_eq!(c.slabinfo().num_slabs, 1);
    assert_eq!(c.reports().1, 1);
    assert!(c.validate().reports.is_empty(), "{:?}", c.validate());
}

#[test]
fn red_zone_of_a_free_object_is_checked_when_shrink_frees_the_slab() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a.kmem_cache_create("rzf", 24, args(), REDZONE_F).unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o) }.unwrap();
    // SAFETY: deliberately into the free object's right red zone, inside its slot.
    unsafe { o.as_ptr().add(24).write(0) };
    c.shrink();
    assert_eq!(
        kinds(&c),
        [SlabErrorKind::RedzoneOverwritten { offset: 24 }]
    );
    bad_object_never_comes_back(&c, o.as_ptr() as usize);
}

#[test]
fn without_consistency_checks_a_freed_slab_is_not_checked() {
    // As in Linux: `free_slab` checks the objects under SLAB_CONSISTENCY_CHECKS only.
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("waf-nof", 64, args(), SlabFlags::SLAB_POISON)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o) }.unwrap();
    // SAFETY: deliberate write after free, into memory the slab still owns.
    unsafe { o.as_ptr().add(7).write(0) };
    assert_eq!(c.shrink(), 1);
    assert_eq!(c.reports().1, 0);
}

#[test]
fn write_after_free_is_reported_when_the_free_path_discards_the_slab() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("waf-free", 64, args(), POISON_F)
        .unwrap();
    // More slabs than `min_partial`: the last one to become empty is discarded at its free.
    let slabs = fill_slabs(&c, c.min_partial() + 2);
    let last = slabs.last().unwrap();
    let bad = last[0];
    for (i, slab) in slabs.iter().enumerate() {
        for &o in slab {
            // SAFETY: ours, freed once.
            unsafe { c.free(o) }.unwrap();
            if o == bad {
                // SAFETY: deliberate write after free, into memory the slab still owns.
                unsafe { bad.as_ptr().write(0x42) };
            }
        }
        if i < slabs.len() - 1 {
            assert_eq!(c.reports().1, 0);
        }
    }
    assert_eq!(kinds(&c), [SlabErrorKind::PoisonOverwritten { offset: 0 }]);
    assert_eq!(c.isolated_objects(), 1);
    assert_eq!(c.slabinfo().active_objs, 1);
    bad_object_never_comes_back(&c, bad.as_ptr() as usize);
}

#[test]
fn write_after_free_is_reported_when_destroy_frees_the_slab() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("waf-destroy", 64, args(), POISON_F)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o) }.unwrap();
    // SAFETY: deliberate write after free, into memory the slab still owns.
    unsafe { o.as_ptr().add(63).write(0) };
    let cache: &KmemCache<HostPlatform> = &c;
    let cache = cache as *const KmemCache<HostPlatform>;
    // SAFETY: no other user of the cache.
    let err = unsafe { a.kmem_cache_destroy(c) }.unwrap_err();
    // The slab is kept, so is the cache: the isolated object counts as remaining.
    let slab::DestroyError::ObjectsRemaining {
        objects,
        cache: kept,
        ..
    } = err
    else {
        panic!("not ObjectsRemaining")
    };
    assert_eq!(objects, [o.as_ptr() as usize]);
    assert!(std::ptr::eq(kept, cache));
    assert_eq!(
        kinds(kept),
        [
            SlabErrorKind::PoisonOverwritten { offset: 63 },
            SlabErrorKind::ObjectRemaining
        ]
    );
}

#[test]
fn validate_a_clean_cache() {
    let (p, _cpu, a) = setup(1, 1);
    let flags = POISON_F | SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_STORE_USER;
    let c = a.kmem_cache_create("clean", 40, args(), flags).unwrap();
    let v = c.validate();
    assert_eq!((v.slabs, v.objects, v.errors), (0, 0, 0));
    // Two full slabs, one partial one.
    let mut slabs = fill_slabs(&c, 3);
    for o in slabs[2].drain(3..) {
        // SAFETY: ours.
        unsafe { c.free(o) }.unwrap();
    }
    let v = c.validate();
    assert_eq!((v.slabs, v.objects), (3, 3 * c.objs_per_slab()));
    assert!(v.reports.is_empty() && v.errors == 0, "{v:?}");
    assert_eq!(p.error_count(), 0);
    // A plain cache, with objects in its sheaves ("allocated" as far as the slabs know).
    let plain = a
        .kmem_cache_create("plain", 40, args(), no_merge())
        .unwrap();
    let objs: Vec<_> = (0..100)
        .map(|_| plain.alloc(Gfp::KERNEL).unwrap())
        .collect();
    for o in objs {
        // SAFETY: ours.
        unsafe { plain.free(o) }.unwrap();
    }
    let v = plain.validate();
    let info = plain.slabinfo();
    assert_eq!((v.slabs, v.objects), (info.num_slabs, info.num_objs));
    assert_eq!(v.errors, 0, "{v:?}");
}

#[test]
fn validate_reports_a_write_after_free() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a.kmem_cache_create("v-waf", 64, args(), POISON_F).unwrap();
    let keep = c.alloc(Gfp::KERNEL).unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o) }.unwrap();
    // SAFETY: deliberate write after free, into memory the slab still owns.
    unsafe { o.as_ptr().add(9).write(1) };
    let v = c.validate();
    assert_eq!((v.slabs, v.objects, v.errors), (1, c.objs_per_slab(), 1));
    assert_eq!(v.reports.len(), 1);
    assert_eq!(
        v.reports[0].kind,
        SlabErrorKind::PoisonOverwritten { offset: 9 }
    );
    assert_eq!(v.reports[0].object, o.as_ptr() as usize);
    assert_eq!(p.error_count(), 1, "sent to the platform's report sink");
    assert_eq!(c.reports().1, 1, "and to the cache's log");
    // SAFETY: ours.
    unsafe { c.free(keep) }.unwrap();
}

#[test]
fn validate_reports_a_red_zone_overwrite_of_an_allocated_object() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a.kmem_cache_create("v-rz", 24, args(), REDZONE_F).unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: one byte before the object: its left red zone, inside its slot.
    unsafe { o.as_ptr().sub(1).write(0) };
    let v = c.validate();
    assert_eq!(v.errors, 1, "{v:?}");
    assert_eq!(
        v.reports[0].kind,
        SlabErrorKind::RedzoneOverwritten { offset: -1 }
    );
    assert_eq!(v.reports[0].object, o.as_ptr() as usize);
}

/// Writes `next` as the hardened free pointer stored in the free object `obj` of `c`.
///
/// # Safety
/// `obj` is a free object of `c`.
unsafe fn forge_free_pointer(c: &KmemCache<HostPlatform>, obj: NonNull<u8>, next: usize) {
    // SAFETY: the free pointer lies inside the object's slot (caller contract).
    unsafe {
        let at = obj.as_ptr().add(c.layout().offset).cast::<usize>();
        at.write(next ^ c.random() ^ (at as usize).swap_bytes());
    }
}

#[test]
fn validate_checks_free_lists() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("v-fl", 64, args(), SlabFlags::SLAB_CONSISTENCY_CHECKS)
        .unwrap();
    let objs: Vec<_> = (0..4).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    // SAFETY: ours; `objs[3]` becomes the head of the free list, then `objs[2]`.
    unsafe {
        c.free(objs[2]).unwrap();
        c.free(objs[3]).unwrap();
    }
    assert_eq!(c.validate().errors, 0);
    // A link that ends the list early: a free object is lost (the count is wrong).
    // SAFETY: objs[3] is free.
    unsafe { forge_free_pointer(&c, objs[3], 0) };
    let v = c.validate();
    assert_eq!(
        v.reports.iter().map(|r| r.kind.clone()).collect::<Vec<_>>(),
        [SlabErrorKind::WrongObjectCount {
            inuse: 2,
            free_listed: 1
        }]
    );
    // A cycle: the head links to itself.
    // SAFETY: objs[3] is free.
    unsafe { forge_free_pointer(&c, objs[3], objs[3].as_ptr() as usize) };
    let v = c.validate();
    assert_eq!(v.errors, 1, "{v:?}");
    assert_eq!(v.reports[0].kind, SlabErrorKind::FreelistCorrupted);
    // A link out of the slab.
    // SAFETY: objs[3] is free.
    unsafe { forge_free_pointer(&c, objs[3], 0xdead_beef) };
    let v = c.validate();
    assert_eq!(v.errors, 1, "{v:?}");
    assert_eq!(v.reports[0].kind, SlabErrorKind::FreelistCorrupted);
    assert_eq!(v.reports[0].object, objs[3].as_ptr() as usize);
}

/// Linux restores the bytes it reports as corrupted (`restore_bytes`): one corruption, one
/// report, whatever checks the object later (another validate, then the shrink that frees
/// the slab). Two corruptions of one object (red zone, poison): two reports, one per check.
#[test]
fn a_corruption_is_reported_once() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("once", 64, args(), POISON_F | SlabFlags::SLAB_RED_ZONE)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o) }.unwrap();
    // SAFETY: deliberate writes after free, into the object and its right red zone, memory
    // the slab still owns.
    unsafe {
        o.as_ptr().add(3).write(0);
        o.as_ptr().add(5).write(0);
        o.as_ptr().add(64).write(0);
    }
    let v = c.validate();
    assert_eq!(v.errors, 1, "{v:?}");
    let v = c.validate();
    assert_eq!(v.errors, 1, "{v:?}");
    assert_eq!(
        kinds(&c),
        [
            SlabErrorKind::RedzoneOverwritten { offset: 64 },
            SlabErrorKind::PoisonOverwritten { offset: 3 }
        ]
    );
    let v = c.validate();
    assert_eq!(v.errors, 0, "reported again: {v:?}");
    assert_eq!(c.shrink(), 1, "the slab is freed, nothing isolated");
    assert_eq!(c.isolated_objects(), 0);
    assert_eq!(c.reports().1, 2, "one report each: {:?}", kinds(&c));
}
