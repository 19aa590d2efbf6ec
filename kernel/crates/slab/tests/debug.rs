//! Stage 4: every debug detection has a test, and the allocator keeps working afterwards.

mod common;

use std::collections::HashSet;
use std::ptr::NonNull;

use common::*;
use slab::host::HostPlatform;
use slab::{Gfp, KmemCache, SlabErrorKind, SlabFlags, Track};

/// Allocates and frees a few objects to show the cache still works, and that `bad` is never
/// handed out again.
fn still_works(c: &KmemCache<HostPlatform>, bad: usize) {
    let objs: Vec<_> = (0..200).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let set: HashSet<_> = objs.iter().map(|o| o.as_ptr() as usize).collect();
    assert_eq!(set.len(), objs.len());
    assert!(!set.contains(&bad), "isolated object handed out again");
    for o in objs {
        // SAFETY: ours.
        unsafe { c.free(o).unwrap() };
    }
}

fn last_kind(c: &KmemCache<HostPlatform>) -> SlabErrorKind {
    c.reports().0.last().expect("a report").kind.clone()
}

#[test]
fn red_zone_right_overwrite() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("rz", 24, args(), SlabFlags::SLAB_RED_ZONE)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: deliberately one byte past the 24-byte object, inside the red zone.
    unsafe { o.as_ptr().add(24).write(0) };
    // SAFETY: our object (with a corrupted red zone, which the debug cache detects).
    let r = unsafe { c.free(o) }.unwrap_err();
    assert_eq!((r.cache.as_str(), r.object), ("rz", o.as_ptr() as usize));
    assert_eq!(r.kind, SlabErrorKind::RedzoneOverwritten { offset: 24 });
    assert_eq!(c.isolated_objects(), 1);
    still_works(&c, o.as_ptr() as usize);
}

#[test]
fn red_zone_left_overwrite() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("rzl", 32, args(), SlabFlags::SLAB_RED_ZONE)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: one byte before the object: the left red zone of its own slot.
    unsafe { o.as_ptr().sub(1).write(0) };
    // SAFETY: as above.
    let r = unsafe { c.free(o) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::RedzoneOverwritten { offset: -1 });
    still_works(&c, o.as_ptr() as usize);
}

#[test]
fn poison_detects_use_after_free() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("poison", 64, args(), SlabFlags::SLAB_POISON)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o).unwrap() };
    // SAFETY: the freed object's memory is still a slab; the pattern is checked.
    unsafe {
        let body = std::slice::from_raw_parts(o.as_ptr(), 64);
        assert!(body[..63].iter().all(|&b| b == 0x6b) && body[63] == 0xa5);
        o.as_ptr().add(5).write(0); // use after free
    }
    let n = c.alloc(Gfp::KERNEL).unwrap();
    assert_ne!(n, o, "the corrupted object is isolated");
    assert_eq!(
        last_kind(&c),
        SlabErrorKind::PoisonOverwritten { offset: 5 }
    );
    assert_eq!(p.error_count(), 1);
    // SAFETY: ours.
    unsafe { c.free(n).unwrap() };
    still_works(&c, o.as_ptr() as usize);
}

#[test]
fn double_free_in_debug_caches() {
    for flags in [
        SlabFlags::SLAB_CONSISTENCY_CHECKS,
        SlabFlags::SLAB_RED_ZONE,
        SlabFlags::SLAB_POISON,
    ] {
        let (_p, _cpu, a) = setup(1, 1);
        let c = a.kmem_cache_create("df", 48, args(), flags).unwrap();
        let o = c.alloc(Gfp::KERNEL).unwrap();
        let other = c.alloc(Gfp::KERNEL).unwrap();
        // SAFETY: ours.
        unsafe { c.free(o).unwrap() };
        // SAFETY: ours; makes `o` not the free-list head, so only the full check can see it.
        unsafe { c.free(other).unwrap() };
        // SAFETY: deliberate double free, detected by the debug cache.
        let r = unsafe { c.free(o) }.unwrap_err();
        assert_eq!(r.kind, SlabErrorKind::DoubleFree, "{flags:?}");
        // The object is free exactly once: it comes back once.
        let objs: Vec<_> = (0..c.objs_per_slab() * 2)
            .map(|_| c.alloc(Gfp::KERNEL).unwrap())
            .collect();
        assert_eq!(objs.iter().filter(|&&x| x == o).count(), 1);
        for x in objs {
            // SAFETY: ours.
            unsafe { c.free(x).unwrap() };
        }
    }
}

#[test]
fn naive_double_free_at_the_slab() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("naive", 64, args(), no_merge())
        .unwrap();
    // Empty the main sheaf so that the two frees below sit next to each other in it.
    let objs: Vec<_> = (0..c.sheaf_capacity())
        .map(|_| c.alloc(Gfp::KERNEL).unwrap())
        .collect();
    let o = objs[0];
    // SAFETY: ours.
    unsafe { c.free(o).unwrap() };
    // SAFETY: deliberate double free. The object is on top of the main sheaf: the free path
    // refuses it at once (issue #9; it used to be accepted, and the slab noticed on flush).
    let r = unsafe { c.free(o) }.expect_err("the naive double free is caught at once");
    assert_eq!(r.kind, SlabErrorKind::DoubleFree);
    c.shrink();
    let (reports, total) = c.reports();
    assert_eq!(total, 1);
    assert_eq!(reports[0].kind, SlabErrorKind::DoubleFree);
    assert_eq!(reports[0].object, o.as_ptr() as usize);
    for &x in &objs[1..] {
        // SAFETY: ours.
        unsafe { c.free(x).unwrap() };
    }
    c.shrink();
    assert_eq!(c.slabinfo().active_objs, 0);
    still_works(&c, 0);
}

#[test]
fn free_to_the_wrong_cache() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("checked", 64, args(), SlabFlags::SLAB_CONSISTENCY_CHECKS)
        .unwrap();
    let other = a
        .kmem_cache_create("other", 64, args(), no_merge())
        .unwrap();
    let o = other.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: deliberately the wrong cache: detected and the object left alone.
    let r = unsafe { c.free(o) }.unwrap_err();
    assert_eq!(
        r.kind,
        SlabErrorKind::WrongCache {
            owner: "other".into()
        }
    );
    // SAFETY: the object is still valid in its own cache.
    unsafe { other.free(o).unwrap() };
    still_works(&c, 0);
}

#[test]
fn free_not_at_object_boundary_or_not_a_slab() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("bounds", 64, args(), SlabFlags::SLAB_CONSISTENCY_CHECKS)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: deliberately inside an object: detected.
    let r = unsafe { c.free(NonNull::new(o.as_ptr().wrapping_add(8)).unwrap()) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary);
    let mut local = 0u64;
    // SAFETY: deliberately not slab memory: detected.
    let r = unsafe { c.free(NonNull::from(&mut local).cast()) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::NotSlabPage);
    let big = a.kmalloc(100_000, Gfp::KERNEL).unwrap();
    // SAFETY: a large kmalloc block is not a slab: detected.
    let r = unsafe { c.free(big) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::NotSlabPage);
    // SAFETY: kfree of a stack address: detected by the page owner lookup.
    let r = unsafe { a.kfree((&mut local as *mut u64).cast()) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::NotSlabPage);
    // SAFETY: ours.
    unsafe {
        a.kfree(big.as_ptr()).unwrap();
        c.free(o).unwrap();
    }
    assert_eq!(c.reports().1, 3);
    still_works(&c, 0);
}

#[test]
fn store_user_records_callers() {
    let (_p, _cpu, a) = setup(2, 1);
    let c = a
        .kmem_cache_create("tracked", 40, args(), SlabFlags::SLAB_STORE_USER)
        .unwrap();
    let o = c.alloc_caller(Gfp::KERNEL, 0x1234).unwrap();
    // SAFETY: `o` is an object of `c`.
    let (alloc, _) = unsafe { c.object_track(o.as_ptr()) }.unwrap();
    // The host platform's `fill_track` adds pid 1000 + CPU, its clock (0) and a stack.
    assert_eq!(
        alloc,
        Track {
            addr: 0x1234,
            handle: 1,
            cpu: 0,
            pid: 1000,
            when: 0,
        }
    );
    // SAFETY: ours.
    unsafe { c.free_caller(o, 0x5678).unwrap() };
    // SAFETY: still an object of `c` (free).
    let (alloc, free) = unsafe { c.object_track(o.as_ptr()) }.unwrap();
    assert_eq!((alloc.addr, free.addr, free.cpu), (0x1234, 0x5678, 0));
}

#[test]
fn corrupted_free_list_is_isolated() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("fl", 64, args(), SlabFlags::SLAB_CONSISTENCY_CHECKS)
        .unwrap();
    let x = c.alloc(Gfp::KERNEL).unwrap();
    let y = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe {
        c.free(x).unwrap();
        c.free(y).unwrap();
        // Overwrite y's (hardened) free pointer, as a buffer overflow would.
        y.as_ptr()
            .add(c.layout().offset)
            .cast::<usize>()
            .write(0xdead_beef);
    }
    let z = c.alloc(Gfp::KERNEL).unwrap();
    assert_ne!(z, y);
    assert_eq!(last_kind(&c), SlabErrorKind::FreelistCorrupted);
    // SAFETY: ours.
    unsafe { c.free(z).unwrap() };
    still_works(&c, y.as_ptr() as usize);
}

#[test]
fn bulk_operations_on_a_debug_cache() {
    let (_p, _cpu, a) = setup(1, 1);
    let flags = SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON;
    let c = a.kmem_cache_create("dbgbulk", 40, args(), flags).unwrap();
    let mut v = vec![std::ptr::null_mut(); 100];
    assert!(c.alloc_bulk(Gfp::KERNEL, &mut v));
    let set: HashSet<_> = v.iter().map(|&p| p as usize).collect();
    assert_eq!(set.len(), 100);
    // SAFETY: all ours.
    unsafe { c.free_bulk(&v).unwrap() };
    assert_eq!(c.reports().1, 0);
    assert_eq!(c.slabinfo().active_objs, 0);
}

#[test]
fn slub_debug_for_all_caches_checks_kmalloc_too() {
    let (_p, _cpu, a) = slub_debug(SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON);
    let k = a.kmalloc_cache(64).unwrap();
    assert!(k.is_debug(), "kmalloc caches get the boot-time debug flags");
    assert_eq!(k.sheaf_capacity(), 0, "debug caches have no sheaves");
    let p = a.kmalloc(64, Gfp::KERNEL).unwrap();
    // SAFETY: one byte past the 64-byte object, into its red zone.
    unsafe { p.as_ptr().add(64).write(0) };
    // SAFETY: our object; the corruption is reported, not followed.
    let r = unsafe { a.kfree(p.as_ptr()) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::RedzoneOverwritten { offset: 64 });
    let c = a
        .kmem_cache_create("later", 40, args(), SlabFlags::empty())
        .unwrap();
    assert!(c.is_debug(), "caches created later get them too");
}

#[test]
fn slab_padding_overwrite_is_reported_when_the_slab_is_freed() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("pad", 40, args(), SlabFlags::SLAB_POISON)
        .unwrap();
    let used = c.objs_per_slab() * c.size();
    assert!(
        used < c.slab_size(),
        "this geometry leaves padding at the end of the slab"
    );
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // Slabs are naturally aligned blocks: the slab starts at the object's address rounded down.
    let base = o.as_ptr() as usize & !(c.slab_size() - 1);
    // SAFETY: a byte of the slab's unused tail, inside the block the cache owns.
    unsafe { ((base + used + 3) as *mut u8).write(0) };
    // SAFETY: ours, freed once.
    unsafe { c.free(o).unwrap() };
    let errors = p.error_count();
    c.shrink();
    assert_eq!(
        p.error_count(),
        errors + 1,
        "freeing the slab checked its padding"
    );
    assert_eq!(
        last_kind(&c),
        SlabErrorKind::PaddingOverwritten { offset: used + 3 }
    );
    // Untouched padding is not reported.
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o).unwrap() };
    c.shrink();
    assert_eq!(p.error_count(), errors + 1);
}

/// An allocator whose every cache, kmalloc's included, red-zones and tracks (`slub_debug=ZU`).
fn kmalloc_debug() -> (
    slab::host::HostPlatform,
    slab::host::CpuRegistration,
    slab::SlabAllocator<slab::host::HostPlatform>,
) {
    slub_debug(SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_STORE_USER)
}

#[test]
fn kmalloc_red_zone_catches_writes_past_the_requested_size() {
    let (_p, _cpu, a) = kmalloc_debug();
    // 13 bytes come from kmalloc-16: bytes 13..16 are red zone while the object is live.
    let p = a.kmalloc(13, Gfp::KERNEL).unwrap();
    // SAFETY: the 13 bytes asked for are ours.
    unsafe { p.as_ptr().write_bytes(0x11, 13) };
    // SAFETY: ours, written only where allowed.
    unsafe { a.kfree(p.as_ptr()) }.expect("writes inside the request are fine");

    let p = a.kmalloc(13, Gfp::KERNEL).unwrap();
    // SAFETY: one byte past the request but inside the 16-byte object (still its memory).
    unsafe { p.as_ptr().add(14).write(0) };
    // SAFETY: ours; the overflow is reported, not followed.
    let r = unsafe { a.kfree(p.as_ptr()) }.unwrap_err();
    assert_eq!(
        (r.cache.as_str(), r.object),
        ("kmalloc-16", p.as_ptr() as usize)
    );
    assert_eq!(
        r.kind,
        SlabErrorKind::KmallocRedzoneOverwritten {
            offset: 14,
            orig_size: 13
        }
    );
    let k = a.kmalloc_cache(16).unwrap();
    assert_eq!(k.isolated_objects(), 1, "the bad object is isolated");
    still_works(k, p.as_ptr() as usize);
}

#[test]
fn ksize_and_krealloc_move_the_kmalloc_red_zone() {
    let (_p, _cpu, a) = kmalloc_debug();
    // After ksize() the caller may use the whole object.
    let p = a.kmalloc(10, Gfp::KERNEL).unwrap();
    assert_eq!(a.ksize(p), Ok(16));
    // SAFETY: ksize said 16 bytes are usable.
    unsafe { p.as_ptr().write_bytes(0x22, 16) };
    // SAFETY: ours.
    unsafe { a.kfree(p.as_ptr()) }.expect("ksize widened the request");

    // krealloc within the object moves the red zone both ways.
    let p = a.kmalloc(10, Gfp::KERNEL).unwrap();
    // SAFETY: a live kmalloc object; the new size fits its 16 bytes, so it stays in place.
    let q = unsafe { a.krealloc(p.as_ptr(), 15, Gfp::KERNEL) }.unwrap();
    assert_eq!(q, p);
    // SAFETY: 15 bytes asked for now.
    unsafe { q.as_ptr().write_bytes(0x33, 15) };
    // SAFETY: as above, shrinking to 4 bytes.
    let q = unsafe { a.krealloc(q.as_ptr(), 4, Gfp::KERNEL) }.unwrap();
    assert_eq!(q, p);
    // SAFETY: byte 4 is past the new request, inside the object.
    unsafe { q.as_ptr().add(4).write(0) };
    // SAFETY: ours; the overflow is reported.
    let r = unsafe { a.kfree(q.as_ptr()) }.unwrap_err();
    assert_eq!(
        r.kind,
        SlabErrorKind::KmallocRedzoneOverwritten {
            offset: 4,
            orig_size: 4
        }
    );
}

#[test]
fn a_kmalloc_cache_used_directly_gives_whole_objects() {
    let (_p, _cpu, a) = kmalloc_debug();
    let k = a.kmalloc_cache(32).unwrap();
    let o = k.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: a whole 32-byte object of the cache.
    unsafe { o.as_ptr().write_bytes(0x44, 32) };
    // SAFETY: ours.
    unsafe { k.free(o) }.expect("no kmalloc red zone without a kmalloc request");
    assert_eq!(k.reports().1, 0);
}
