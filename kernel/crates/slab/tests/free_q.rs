//! The deferred free queue (`kmem_free_q_add`, `kmem_free_up_q`): objects queued under a lock
//! are all freed after it, in order; too-small objects are refused untouched; double and
//! wrong-cache frees are reported.

mod common;

use std::ptr::NonNull;
use std::sync::Mutex;

use common::*;
use slab::host::HostPlatform;
use slab::{
    FREE_Q_NODE_SIZE, Gfp, KmemCache, KmemFreeQHead, SlabAllocator, SlabErrorKind, SlabFlags,
    SlabOptions,
};

/// Objects in use in `c` once its sheaves are flushed back to the slabs.
fn in_use(c: &KmemCache<HostPlatform>) -> usize {
    c.shrink();
    c.slabinfo().active_objs
}

/// Queues `objs` of `cache` (`None`: kmalloc) on `q` under `lock`, as a kernel path would.
fn queue_all<'a>(
    a: &'a SlabAllocator<HostPlatform>,
    lock: &Mutex<KmemFreeQHead<'a, HostPlatform>>,
    cache: Option<&'a KmemCache<HostPlatform>>,
    objs: &[NonNull<u8>],
) {
    let mut q = lock.lock().unwrap();
    for &o in objs {
        // SAFETY: allocated from `cache` (or kmalloc), given up here.
        unsafe { a.kmem_free_q_add(&mut q, cache, o) }.expect("queued");
    }
}

#[test]
fn every_queued_object_is_freed_after_unlock() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("fq", 48, args(), no_merge())
        .unwrap()
        .leak();
    let k = a.kmalloc_cache(64).unwrap();
    let (base_c, base_k) = (in_use(c), in_use(k));
    // Three rounds: objects freed through the queue come back from the sheaves and are
    // queued again (the node's tag must not make them look queued).
    for _ in 0..3 {
        let objs: Vec<_> = (0..1000).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
        let bufs: Vec<_> = (0..1000)
            .map(|_| a.kmalloc(64, Gfp::KERNEL).unwrap())
            .collect();
        let lock = Mutex::new(KmemFreeQHead::new());
        queue_all(&a, &lock, Some(c), &objs);
        queue_all(&a, &lock, None, &bufs);
        assert_eq!(in_use(c), base_c + 1000, "nothing freed under the lock");
        let mut q = std::mem::take(&mut *lock.lock().unwrap());
        assert_eq!(q.len(), 2000);
        let r = a.kmem_free_up_q(&mut q);
        assert_eq!((r.freed, r.reports), (2000, vec![]));
        assert!(q.is_empty());
        assert_eq!((in_use(c), in_use(k)), (base_c, base_k));
    }
}

#[test]
fn a_queue_filled_on_several_cpus_is_freed_on_another() {
    let (p, cpu0, a) = setup(4, 1);
    // Red zones: no sheaves, so every object is back on its slab once freed.
    let c = a
        .kmem_cache_create("fq-mt", 32, args(), SlabFlags::SLAB_RED_ZONE)
        .unwrap()
        .leak();
    let base = in_use(c);
    drop(cpu0);
    let lock = Mutex::new(KmemFreeQHead::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let _cpu = p.register_cpu();
                for _ in 0..100 {
                    let objs: Vec<_> = (0..10).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
                    queue_all(&a, &lock, Some(c), &objs);
                }
            });
        }
    });
    // The head moves out of the lock to a fourth CPU (it is `Send`).
    let mut q = std::mem::take(&mut *lock.lock().unwrap());
    let (freed, reports) = std::thread::scope(|s| {
        s.spawn(|| {
            let _cpu = p.register_cpu();
            let r = a.kmem_free_up_q(&mut q);
            (r.freed, r.reports.len())
        })
        .join()
        .unwrap()
    });
    assert_eq!((freed, reports), (3000, 0));
    let _cpu = p.register_cpu();
    assert_eq!(c.slabinfo().active_objs, base);
    assert_eq!(c.reports().1, 0);
}

#[test]
fn objects_are_freed_in_the_order_queued() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("fq-order", 64, args(), no_merge())
        .unwrap();
    let objs: Vec<_> = (0..5).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let mut q = KmemFreeQHead::new();
    for &o in &objs {
        // SAFETY: from `c`, given up.
        unsafe { a.kmem_free_q_add(&mut q, Some(&c), o) }.unwrap();
    }
    assert_eq!(a.kmem_free_up_q(&mut q).freed, 5);
    // The main sheaf is a stack: the object freed last comes out first.
    let again: Vec<_> = (0..5).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let mut expected = objs.clone();
    expected.reverse();
    assert_eq!(again, expected);
    for o in again {
        // SAFETY: from `c`.
        unsafe { c.free(o).unwrap() };
    }
}

#[test]
fn an_empty_queue_frees_nothing() {
    let (_p, _cpu, a) = setup(1, 1);
    let mut q = KmemFreeQHead::new();
    let r = a.kmem_free_up_q(&mut q);
    assert_eq!((r.freed, r.reports), (0, vec![]));
    // `ZERO_SIZE_PTR` is accepted and ignored, as by kfree.
    let z = a.kmalloc(0, Gfp::KERNEL).unwrap();
    // SAFETY: kmalloc(0)'s pointer.
    unsafe { a.kmem_free_q_add(&mut q, None, z) }.unwrap();
    assert!(q.is_empty());
}

#[test]
fn an_8_byte_kmalloc_object_is_refused_untouched() {
    let (_p, _cpu, a) = setup(1, 1);
    let o = a.kmalloc(8, Gfp::KERNEL).unwrap();
    // SAFETY: 8 bytes of ours.
    unsafe { o.as_ptr().cast::<u64>().write(0x0123_4567_89ab_cdef) };
    let mut q = KmemFreeQHead::new();
    // SAFETY: from kmalloc; refused, so still ours.
    let r = unsafe { a.kmem_free_q_add(&mut q, None, o) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::TooSmallForFreeQ { size: 8 });
    assert_eq!(r.object, o.as_ptr() as usize);
    assert!(
        r.to_string()
            .contains("too small for the free queue (8 bytes, a node needs 16)")
    );
    assert!(q.is_empty());
    assert_eq!(
        // SAFETY: as above.
        unsafe { o.as_ptr().cast::<u64>().read() },
        0x0123_4567_89ab_cdef
    );
    // A 12-byte cache too, by its object size.
    let c = a
        .kmem_cache_create("fq-12", 12, args(), no_merge())
        .unwrap();
    let x = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: from `c`; refused.
    let r = unsafe { a.kmem_free_q_add(&mut q, Some(&c), x) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::TooSmallForFreeQ { size: 12 });
    assert_eq!(FREE_Q_NODE_SIZE, 16);
    // SAFETY: still ours.
    unsafe {
        a.kfree(o.as_ptr()).unwrap();
        c.free(x).unwrap();
    }
}

#[test]
fn a_cache_with_a_constructor_is_refused() {
    unsafe extern "C" fn fill_0x11(p: *mut core::ffi::c_void) {
        // SAFETY: a constructor gets a whole fresh 64-byte object (the `Ctor` contract).
        unsafe { p.cast::<u8>().write_bytes(0x11, 64) };
    }
    let (_p, _cpu, a) = setup(1, 1);
    let args = slab::KmemCacheArgs {
        ctor: Some(fill_0x11),
        ..args()
    };
    let c = a
        .kmem_cache_create("fq-ctor", 64, args, no_merge())
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    let mut q = KmemFreeQHead::new();
    // SAFETY: from `c`; refused.
    let r = unsafe { a.kmem_free_q_add(&mut q, Some(&c), o) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::FreeQConstructed);
    // SAFETY: still ours.
    assert_eq!(unsafe { o.as_ptr().read() }, 0x11);
    // SAFETY: still ours.
    unsafe { c.free(o).unwrap() };
}

#[test]
fn a_double_free_through_the_queue_is_reported() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("fq-df", 64, args(), no_merge())
        .unwrap();
    let base = in_use(&c);
    let objs: Vec<_> = (0..4).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let mut q = KmemFreeQHead::new();
    for &o in &objs {
        // SAFETY: from `c`, given up.
        unsafe { a.kmem_free_q_add(&mut q, Some(&c), o) }.unwrap();
    }
    // The same objects again: the middle one and the last one, named by cache and as kmalloc.
    for (o, cache) in [(objs[1], Some(&*c)), (objs[3], Some(&*c)), (objs[2], None)] {
        // SAFETY: a double free, refused.
        let r = unsafe { a.kmem_free_q_add(&mut q, cache, o) }.unwrap_err();
        assert_eq!(r.kind, SlabErrorKind::DoubleFree, "{r}");
        assert_eq!(r.object, o.as_ptr() as usize);
    }
    assert_eq!(
        c.reports().1,
        3,
        "logged in the cache like a free's reports"
    );
    // The queue is intact: each object freed once.
    let r = a.kmem_free_up_q(&mut q);
    assert_eq!((r.freed, r.reports), (4, vec![]));
    assert_eq!(in_use(&c), base);
}

#[test]
fn a_second_free_around_the_queue_is_reported_by_the_free_checks() {
    let (_p, _cpu, a) = slub_debug(SlabFlags::SLAB_DEBUG_FLAGS);
    let c = a
        .kmem_cache_create("fq-df2", 64, args(), no_merge())
        .unwrap();
    let base = in_use(&c);
    let (x, y) = (c.alloc(Gfp::KERNEL).unwrap(), c.alloc(Gfp::KERNEL).unwrap());
    let mut q = KmemFreeQHead::new();
    // SAFETY: from `c`, given up; then freed again (the bugs under test).
    unsafe { a.kmem_free_q_add(&mut q, Some(&c), x) }.unwrap();
    assert_eq!(a.kmem_free_up_q(&mut q).freed, 1);
    // Freed through the queue, then directly: the free reports it.
    // SAFETY: the double free under test; the debug cache refuses it.
    let r = unsafe { c.free(x) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::DoubleFree);
    // Freed, then queued (with another object behind it): reported at `free_up`, whose walk
    // goes on to `y` (it read `next` before the free).
    // SAFETY: as above.
    unsafe {
        a.kmem_free_q_add(&mut q, Some(&c), x).unwrap();
        a.kmem_free_q_add(&mut q, Some(&c), y).unwrap();
    }
    let r = a.kmem_free_up_q(&mut q);
    assert_eq!(r.freed, 1);
    assert_eq!(r.reports.len(), 1);
    assert_eq!(r.reports[0].kind, SlabErrorKind::DoubleFree);
    assert_eq!(r.reports[0].object, x.as_ptr() as usize);
    // The node written into the free `x` is use after free too: found in its poison when its
    // slab is checked, and `x` is isolated (kept in use for ever).
    assert_eq!(in_use(&c), base + 1);
    assert_eq!(c.isolated_objects(), 1);
}

#[test]
fn a_wrong_cache_is_reported_at_free_up() {
    for options in [
        SlabOptions {
            debug: SlabFlags::SLAB_DEBUG_FLAGS,
            ..Default::default()
        },
        // The default free checks (`SLAB_HARDENED_FREE`).
        SlabOptions::default(),
    ] {
        let (_p, _cpu, a) = with_options(options);
        let c1 = a.kmem_cache_create("fq-a", 64, args(), no_merge()).unwrap();
        let c2 = a.kmem_cache_create("fq-b", 64, args(), no_merge()).unwrap();
        let o = c1.alloc(Gfp::KERNEL).unwrap();
        let mut q = KmemFreeQHead::new();
        // SAFETY: the wrong cache (the bug under test); the free refuses the object.
        unsafe { a.kmem_free_q_add(&mut q, Some(&c2), o) }.unwrap();
        let r = a.kmem_free_up_q(&mut q);
        assert_eq!(r.freed, 0);
        assert_eq!(
            r.reports[0].kind,
            SlabErrorKind::WrongCache {
                owner: "fq-a".into()
            },
            "{options:?}"
        );
        // SAFETY: still an allocated object of `c1`.
        unsafe { c1.free(o).unwrap() };
        assert_eq!(in_use(&c1), 0);
    }
}

#[test]
fn debug_cache_objects_go_through_the_queue_cleanly() {
    let (_p, _cpu, a) = slub_debug(SlabFlags::SLAB_DEBUG_FLAGS);
    let c = a
        .kmem_cache_create("fq-dbg", 40, args(), no_merge())
        .unwrap();
    assert!(c.is_debug());
    let k16 = a.kmalloc_cache(16).unwrap();
    let mut q = KmemFreeQHead::new();
    let objs: Vec<_> = (0..100).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    // kmalloc(10) in a red-zoned kmalloc-16: the node covers the 6 bytes past the request.
    let bufs: Vec<_> = (0..100)
        .map(|_| a.kmalloc(10, Gfp::KERNEL).unwrap())
        .collect();
    for (&o, &b) in objs.iter().zip(&bufs) {
        // SAFETY: given up.
        unsafe {
            a.kmem_free_q_add(&mut q, Some(&c), o).unwrap();
            a.kmem_free_q_add(&mut q, None, b).unwrap();
        }
    }
    let r = a.kmem_free_up_q(&mut q);
    assert_eq!((r.freed, r.reports), (200, vec![]));
    assert_eq!((in_use(&c), c.reports().1), (0, 0));
    assert_eq!(k16.reports().1, 0);
    assert_eq!(c.validate().errors, 0);
}

#[test]
fn a_large_kmalloc_block_is_queued_and_freed() {
    let (p, _cpu, a) = setup(1, 1);
    let before = p.pages_in_use();
    let big = a.kmalloc(20_000, Gfp::KERNEL).unwrap();
    let mut q = KmemFreeQHead::new();
    // SAFETY: from kmalloc, given up.
    unsafe { a.kmem_free_q_add(&mut q, None, big) }.unwrap();
    // SAFETY: the same block again: refused.
    let r = unsafe { a.kmem_free_q_add(&mut q, None, big) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::DoubleFree);
    assert_eq!(a.kmem_free_up_q(&mut q).freed, 1);
    assert_eq!(p.pages_in_use(), before);
}

#[test]
fn a_list_corrupted_after_add_is_reported_not_followed() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("fq-bad", 64, args(), no_merge())
        .unwrap();
    let objs: Vec<_> = (0..3).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let mut q = KmemFreeQHead::new();
    for &o in &objs {
        // SAFETY: from `c`, given up.
        unsafe { a.kmem_free_q_add(&mut q, Some(&c), o) }.unwrap();
    }
    // A write into a queued object (the bug under test): its `next` is gone.
    // SAFETY: the object is still allocated memory.
    unsafe { objs[0].as_ptr().cast::<usize>().write(0) };
    let r = a.kmem_free_up_q(&mut q);
    assert_eq!(r.freed, 1);
    assert_eq!(
        r.reports[0].kind,
        SlabErrorKind::FreeQCorrupted {
            queued: 3,
            reached: 1
        }
    );
    // The two lost objects are still allocated: free them by hand.
    for &o in &objs[1..] {
        // SAFETY: from `c`, not freed.
        unsafe { c.free(o).unwrap() };
    }
    assert_eq!(in_use(&c), 0);
}
