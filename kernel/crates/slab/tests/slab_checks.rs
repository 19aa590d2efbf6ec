//! Checks of whole slabs (issue #9 item 7): `validate` (`validate_slab_cache`).

mod common;

use std::ptr::NonNull;

use common::*;
use slab::host::HostPlatform;
use slab::{Gfp, KmemCache, SlabErrorKind, SlabFlags};

const POISON_F: SlabFlags = SlabFlags::SLAB_POISON.union(SlabFlags::SLAB_CONSISTENCY_CHECKS);
const REDZONE_F: SlabFlags = SlabFlags::SLAB_RED_ZONE.union(SlabFlags::SLAB_CONSISTENCY_CHECKS);

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
        v.reports.iter().map(|r| r.kind).collect::<Vec<_>>(),
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
