//! Hostile input (issue #9): creation arguments, pointers and sizes that once panicked, were
//! accepted and corrupted memory, or gave wrong results must come back as errors or right
//! results, and any cache that is created must work.

mod common;

use std::ptr::NonNull;

use common::{args, setup};
use proptest::prelude::*;
use slab::layout::{LayoutError, MAX_OBJECT_SIZE, MAX_SHEAF_CAPACITY};
use slab::{Gfp, KmemCacheArgs, SlabError, SlabErrorKind, SlabFlags};

fn refused(size: usize, a: KmemCacheArgs, flags: SlabFlags) -> LayoutError {
    let (_p, _cpu, slab) = setup(1, 1);
    match slab.kmem_cache_create("hostile", size, a, flags) {
        Err(SlabError::Layout(e)) => e,
        Err(e) => panic!("refused for the wrong reason: {e:?}"),
        Ok(c) => panic!(
            "accepted: size {size}, {a:?}, {flags:?} (object size {})",
            c.object_size()
        ),
    }
}

#[test]
fn a_free_pointer_offset_outside_the_object_is_refused() {
    // Once: an add overflow in layout.rs (or, wrapping, every free rewrote the previous
    // object's last word).
    let huge = KmemCacheArgs {
        freeptr_offset: Some(usize::MAX & !7),
        ..args()
    };
    assert_eq!(
        refused(64, huge, SlabFlags::SLAB_TYPESAFE_BY_RCU),
        LayoutError::BadFreeptrOffset
    );
    assert_eq!(
        refused(64, huge, SlabFlags::empty()),
        LayoutError::BadFreeptrOffset
    );
    // Also when poisoning moves the free pointer out of the object anyway: the argument is
    // checked for what it is.
    assert_eq!(
        refused(64, huge, SlabFlags::SLAB_POISON),
        LayoutError::BadFreeptrOffset
    );
    for bad in [60, 57, 4, 1] {
        let a = KmemCacheArgs {
            freeptr_offset: Some(bad),
            ..args()
        };
        assert_eq!(
            refused(64, a, SlabFlags::SLAB_TYPESAFE_BY_RCU),
            LayoutError::BadFreeptrOffset,
            "offset {bad}"
        );
    }
}

#[test]
fn a_free_pointer_inside_the_usercopy_region_is_refused() {
    let a = KmemCacheArgs {
        useroffset: 16,
        usersize: 32,
        freeptr_offset: Some(40),
        ..args()
    };
    assert_eq!(
        refused(64, a, SlabFlags::SLAB_TYPESAFE_BY_RCU),
        LayoutError::BadFreeptrOffset
    );
    // Right after the region is fine.
    let (_p, _cpu, slab) = setup(1, 1);
    let ok = KmemCacheArgs {
        freeptr_offset: Some(48),
        ..a
    };
    let c = slab
        .kmem_cache_create("usercopy", 64, ok, SlabFlags::SLAB_TYPESAFE_BY_RCU)
        .expect("a free pointer beside the usercopy region");
    let o = c.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: from `c`, not used afterwards.
    unsafe { c.free(o) }.expect("free");
}

#[test]
fn sizes_and_alignments_near_the_limits_are_errors_not_panics() {
    for size in [
        usize::MAX,
        usize::MAX - 7,
        usize::MAX / 2,
        MAX_OBJECT_SIZE + 1,
    ] {
        assert_eq!(
            refused(size, args(), SlabFlags::empty()),
            LayoutError::TooLarge,
            "size {size}"
        );
    }
    for align in [3, 24, 1 << 63, MAX_OBJECT_SIZE * 2] {
        let a = KmemCacheArgs { align, ..args() };
        assert_eq!(
            refused(64, a, SlabFlags::empty()),
            LayoutError::BadAlign,
            "align {align}"
        );
    }
    let a = KmemCacheArgs {
        useroffset: usize::MAX,
        usersize: 2,
        ..args()
    };
    assert_eq!(refused(64, a, SlabFlags::empty()), LayoutError::BadUsercopy);
}

#[test]
fn a_huge_sheaf_capacity_is_refused() {
    // Once: a multiply overflow in round_sheaf_capacity.
    for cap in [usize::MAX / 4, usize::MAX, MAX_SHEAF_CAPACITY + 1] {
        let a = KmemCacheArgs {
            sheaf_capacity: cap,
            ..args()
        };
        assert_eq!(
            refused(64, a, SlabFlags::empty()),
            LayoutError::BadSheafCapacity,
            "capacity {cap}"
        );
    }
}

#[test]
fn bad_arguments_are_refused_before_merging() {
    // A mergeable 64-byte cache exists (kmalloc-64): a request it could alias must still be
    // checked first.
    let (_p, _cpu, slab) = setup(1, 1);
    let a = KmemCacheArgs { align: 3, ..args() };
    assert!(matches!(
        slab.kmem_cache_create("merge-me", 64, a, SlabFlags::empty()),
        Err(SlabError::Layout(LayoutError::BadAlign))
    ));
    assert!(slab.find_cache("merge-me").is_none());
}

/// Any value for any creation argument: an error or a working cache, never a panic.
fn any_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        1..=4096usize,
        0..=MAX_OBJECT_SIZE + 8,
        any::<usize>(),
        (usize::MAX - 4096)..=usize::MAX,
    ]
}

fn any_args() -> impl Strategy<Value = KmemCacheArgs> {
    (
        prop_oneof![
            Just(0usize),
            (0u32..64).prop_map(|b| 1usize << b),
            any::<usize>()
        ],
        prop_oneof![Just(0usize), any_size()],
        prop_oneof![Just(0usize), any_size()],
        proptest::option::of(prop_oneof![0..=4096usize, any::<usize>()]),
        prop_oneof![Just(0usize), 0..=2048usize, any::<usize>()],
    )
        .prop_map(
            |(align, useroffset, usersize, freeptr_offset, sheaf_capacity)| KmemCacheArgs {
                align,
                useroffset,
                usersize,
                freeptr_offset,
                ctor: None,
                sheaf_capacity,
                owner: None,
            },
        )
}

fn any_flags() -> impl Strategy<Value = SlabFlags> {
    // Every flag a caller may pass (SLAB_PANIC aside: it panics by design).
    any::<u32>().prop_map(|bits| {
        SlabFlags::from_bits_truncate(bits) - SlabFlags::SLAB_PANIC - SlabFlags::SLAB_KMALLOC
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn creation_and_prefill_with_arbitrary_arguments_never_panic(
        size in any_size(),
        a in any_args(),
        flags in any_flags(),
        count in prop_oneof![0..=300usize, any::<usize>()],
    ) {
        let (_p, _cpu, slab) = setup(2, 1);
        if let Ok(c) = slab.kmem_cache_create("any", size, a, flags) {
            prop_assert!(c.object_size() >= size);
            // A cache that was created works: one object in, one out.
            if let Some(o) = c.alloc(Gfp::KERNEL) {
                // SAFETY: from `c`, not used afterwards.
                unsafe { c.free(o) }.expect("free");
            }
            if let Some(sh) = c.prefill_sheaf(Gfp::KERNEL, count) {
                prop_assert!(c.sheaf_size(&sh) >= count);
                prop_assert!(c.return_sheaf(sh).is_ok());
            }
        }
    }
}

/// `slub_debug=ZU`: red zones and caller tracking (with `orig_size` in kmalloc caches).
fn red_zoned() -> (
    slab::host::HostPlatform,
    slab::host::CpuRegistration,
    slab::SlabAllocator<slab::host::HostPlatform>,
) {
    common::slub_debug(SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_STORE_USER)
}

#[test]
fn ksize_of_anything_but_an_object_start_writes_nothing() {
    let (_p, _cpu, a) = red_zoned();
    // Neighbours in kmalloc-16 (a new slab hands out objects in address order).
    let x = a.kmalloc(16, Gfp::KERNEL).unwrap();
    let y = a.kmalloc(16, Gfp::KERNEL).unwrap();
    for offset in [8, 1, 15] {
        // SAFETY: only the address is computed; ksize must not write through it.
        let inside = unsafe { x.add(offset) };
        let r = a.ksize(inside).expect_err("not an object start");
        assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary, "x + {offset}");
    }
    // Once: ksize(x + 8) wrote the size into y's left red zone, and freeing y reported it.
    // SAFETY: ours, not used afterwards.
    unsafe { a.kfree(y.as_ptr()) }.expect("y's red zone is intact");
    // SAFETY: as above.
    unsafe { a.kfree(x.as_ptr()) }.expect("x is intact");
    // Memory that is no kmalloc object at all.
    let on_stack = 0u64;
    let r = a
        .ksize(NonNull::from(&on_stack).cast())
        .expect_err("not kmalloc memory");
    assert_eq!(r.kind, SlabErrorKind::NotSlabPage);
    // Inside a large block.
    let big = a.kmalloc(20_000, Gfp::KERNEL).unwrap();
    // SAFETY: an address inside the block; nothing is written.
    let r = a
        .ksize(unsafe { big.add(4096) })
        .expect_err("not the block's head");
    assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary);
    assert_eq!(a.ksize(big), Ok(32768));
    // SAFETY: ours.
    unsafe { a.kfree(big.as_ptr()) }.expect("free");
}

fn bytes(p: NonNull<u8>, range: std::ops::Range<usize>) -> Vec<u8> {
    // SAFETY: the tests read only bytes of objects they own, inside their usable size.
    unsafe { std::slice::from_raw_parts(p.as_ptr().add(range.start), range.len()) }.to_vec()
}

#[test]
fn krealloc_with_zero_zeroes_everything_past_the_requested_size() {
    // Linux's test_krealloc_redzone_zeroing, on a red-zoned kmalloc-64.
    let (_p, _cpu, a) = red_zoned();
    let p = a.kmalloc(48, Gfp::KERNEL).unwrap();
    // SAFETY: the 48 bytes asked for are ours.
    unsafe { p.as_ptr().write_bytes(0xaa, 48) };
    // SAFETY: `p` is a live kmalloc object; the results are used in its place.
    let p = unsafe { a.krealloc(p.as_ptr(), 40, Gfp::KERNEL | Gfp::ZERO) }.unwrap();
    // SAFETY: as above.
    let p = unsafe { a.krealloc(p.as_ptr(), 56, Gfp::KERNEL | Gfp::ZERO) }.unwrap();
    assert_eq!(bytes(p, 0..40), vec![0xaa; 40], "the contents stay");
    assert_eq!(
        bytes(p, 40..56),
        vec![0; 16],
        "grown in place: zeroes, not the red zone"
    );
    // SAFETY: as above.
    let q = unsafe { a.krealloc(p.as_ptr(), 100, Gfp::KERNEL | Gfp::ZERO) }.unwrap();
    assert_ne!(q, p, "moved to kmalloc-128");
    assert_eq!(bytes(q, 0..40), vec![0xaa; 40]);
    assert_eq!(
        bytes(q, 40..100),
        vec![0; 60],
        "moved: nothing past 56 was copied"
    );
    // SAFETY: ours.
    unsafe { a.kfree(q.as_ptr()) }.expect("the red zone past 100 is intact");
}

#[test]
fn krealloc_with_zero_in_a_plain_cache_leaves_no_stale_bytes() {
    // A plain cache knows no requested size: shrinking with ZERO clears the rest of the slot.
    let (_p, _cpu, a) = setup(1, 1);
    let p = a.kmalloc(48, Gfp::KERNEL).unwrap();
    // SAFETY: kmalloc-64: the 64 bytes are usable.
    unsafe { p.as_ptr().write_bytes(0xbb, 64) };
    // SAFETY: as above.
    let p = unsafe { a.krealloc(p.as_ptr(), 50, Gfp::KERNEL | Gfp::ZERO) }.unwrap();
    // SAFETY: as above.
    let q = unsafe { a.krealloc(p.as_ptr(), 100, Gfp::KERNEL | Gfp::ZERO) }.unwrap();
    assert_eq!(bytes(q, 0..50), vec![0xbb; 50]);
    assert_eq!(bytes(q, 50..100), vec![0; 50], "no stale bytes past 50");
    // SAFETY: ours.
    unsafe { a.kfree(q.as_ptr()) }.expect("free");
}

#[test]
fn krealloc_of_a_pointer_inside_an_object_is_refused() {
    let (_p, _cpu, a) = setup(1, 1);
    let p = a.kmalloc(64, Gfp::KERNEL).unwrap();
    // SAFETY: refused before anything is read or written.
    assert!(unsafe { a.krealloc(p.as_ptr().add(8), 200, Gfp::KERNEL) }.is_none());
    // SAFETY: ours.
    unsafe { a.kfree(p.as_ptr()) }.expect("untouched");
}

#[test]
fn a_kmalloc_cache_is_permanent_whatever_its_aliases() {
    let (_p, _cpu, a) = setup(1, 1);
    let foo = a
        .kmem_cache_create("foo64", 64, args(), SlabFlags::empty())
        .unwrap();
    let k64 = a.kmalloc_cache(64).unwrap();
    assert!(
        std::ptr::eq(foo.primary(), k64),
        "foo64 is an alias of kmalloc-64"
    );
    assert_eq!(k64.refcount(), 2);
    // Once: this returned Ok and removed the alias's name instead.
    // SAFETY: a second handle for kmalloc-64's own name; it is refused, nothing is freed.
    let r = unsafe { a.kmem_cache_destroy(slab::KmemCacheHandle::from_ref(k64)) };
    assert_eq!(
        r,
        Err(slab::DestroyError::Permanent {
            name: "kmalloc-64".into()
        })
    );
    assert_eq!(k64.refcount(), 2);
    assert!(a.find_cache("foo64").is_some(), "the alias keeps its name");
    assert!(a.find_cache("kmalloc-64").is_some());
    // Destroying the alias is an ordinary destroy.
    // SAFETY: no object of foo64 is live.
    unsafe { a.kmem_cache_destroy(foo) }.expect("the alias goes");
    assert!(a.find_cache("foo64").is_none());
    assert_eq!(k64.refcount(), 1);
}

#[test]
fn a_prefilled_sheaf_is_refused_by_another_cache() {
    let (_p, _cpu, a) = setup(1, 1);
    let small = a
        .kmem_cache_create("small32", 32, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let big = a
        .kmem_cache_create("big1024", 1024, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let mut sh = small.prefill_sheaf(Gfp::KERNEL, 4).unwrap();
    let held = small.sheaf_size(&sh);
    assert!(held >= 4);
    // Once: big1024 handed out a 32-byte object as a 1024-byte one.
    assert!(big.alloc_from_sheaf(Gfp::KERNEL, &mut sh).is_none());
    assert_eq!(
        big.refill_sheaf(Gfp::KERNEL, &mut sh, 8),
        Err(slab::RefillError::WrongCache)
    );
    // Once: the 32-byte objects went into big1024, which then handed them out.
    let mut sh = big.return_sheaf(sh).expect_err("not big1024's sheaf");
    let (reports, total) = big.reports();
    assert_eq!(total, 3, "each misuse is reported");
    assert!(reports.iter().all(|r| r.kind
        == SlabErrorKind::WrongCache {
            owner: "small32".into()
        }));
    assert_eq!(big.sheaf_size(&sh), held, "the sheaf is untouched");
    // Its own cache takes it as usual.
    let o = small
        .alloc_from_sheaf(Gfp::KERNEL, &mut sh)
        .expect("an object");
    assert_eq!(small.object_size(), 32);
    small.return_sheaf(sh).expect("small32's own sheaf");
    // SAFETY: from `small`, not used afterwards.
    unsafe { small.free(o) }.expect("free");
    // big1024 never saw a 32-byte object.
    for _ in 0..64 {
        let b = big.alloc(Gfp::KERNEL).unwrap();
        assert_eq!(a.ksize(b), Ok(1024), "a 1024-byte object of big1024");
        // SAFETY: from `big`.
        unsafe { big.free(b) }.expect("free");
    }
}

#[test]
fn a_prefill_count_no_sheaf_can_hold_is_refused() {
    // Once: a multiply overflow (count >= 2^61) in the oversize sheaf's size.
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("prefill", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    for count in [1usize << 61, usize::MAX, MAX_SHEAF_CAPACITY + 1] {
        assert!(
            c.prefill_sheaf(Gfp::KERNEL, count).is_none(),
            "count {count}"
        );
    }
    let sh = c
        .prefill_sheaf(Gfp::KERNEL, 200)
        .expect("an oversize sheaf");
    assert!(c.sheaf_size(&sh) >= 200);
    c.return_sheaf(sh).expect("its own sheaf");
}

#[test]
fn every_double_free_that_reaches_a_slab_is_caught() {
    // The reproduction: keep = alloc(); o = alloc(); free(o); shrink(); free(o);
    // shrink(). The second free used to drop `inuse` to 0 under `keep`, free the slab's pages
    // and later hand `keep` out again.
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("df", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let keep = c.alloc(Gfp::KERNEL).unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o) }.expect("first free");
    c.shrink();
    let pages = p.pages_in_use();
    // SAFETY: deliberate double free (the sheaf is empty after shrink, so it is not the top
    // object there: the slab must catch it).
    let _ = unsafe { c.free(o) };
    c.shrink();
    let (reports, _) = c.reports();
    assert!(
        reports
            .iter()
            .any(|r| r.kind == SlabErrorKind::DoubleFree && r.object == o.as_ptr() as usize),
        "{reports:?}"
    );
    assert_eq!(p.pages_in_use(), pages, "keep's slab is still there");
    assert_eq!(c.slabinfo().active_objs, 1, "keep is still allocated");
    // `keep` is never handed out again while it lives; `o` comes back once.
    let many: Vec<_> = (0..200).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    assert!(!many.contains(&keep));
    assert_eq!(many.iter().filter(|&&x| x == o).count(), 1);
    for x in many {
        // SAFETY: ours.
        unsafe { c.free(x) }.expect("free");
    }
    // SAFETY: ours.
    unsafe { c.free(keep) }.expect("keep");
}

#[test]
fn a_double_free_deep_in_a_sheaf_is_caught_at_the_slab() {
    // Two frees of the same object with others in between: both sit in the sheaf; the flush
    // hands both to the slab, which takes the first and reports the second.
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("df2", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let objs: Vec<_> = (0..10).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let o = objs[0];
    for &x in &objs[..5] {
        // SAFETY: ours.
        unsafe { c.free(x) }.expect("free");
    }
    // SAFETY: deliberate double free; `o` is not on top of the sheaf.
    unsafe { c.free(o) }.expect("the sheaf cannot tell");
    // One object stays allocated, so the slab never looks empty.
    for &x in &objs[5..9] {
        // SAFETY: ours.
        unsafe { c.free(x) }.expect("free");
    }
    c.shrink();
    let (reports, total) = c.reports();
    assert_eq!(total, 1, "{reports:?}");
    assert_eq!(reports[0].kind, SlabErrorKind::DoubleFree);
    assert_eq!(
        c.slabinfo().active_objs,
        1,
        "every freed object is free exactly once"
    );
    // SAFETY: ours.
    unsafe { c.free(objs[9]) }.expect("free");
}

#[test]
fn the_naive_double_free_is_caught_on_the_fast_path() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("df3", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let keep: Vec<_> = (0..5).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o) }.expect("free");
    // SAFETY: deliberate double free of the object on top of the sheaf.
    let r = unsafe { c.free(o) }.expect_err("refused");
    assert_eq!(r.kind, SlabErrorKind::DoubleFree);
    // `o` is in the sheaf once: the next two allocations are `o` and something else.
    let x = c.alloc(Gfp::KERNEL).unwrap();
    let y = c.alloc(Gfp::KERNEL).unwrap();
    assert_eq!(x, o);
    assert_ne!(y, o);
    for z in keep.into_iter().chain([x, y]) {
        // SAFETY: ours.
        unsafe { c.free(z) }.expect("free");
    }
}

#[test]
fn an_isolated_object_freed_again_is_counted_once() {
    let (_p, _cpu, a) = common::slub_debug(SlabFlags::SLAB_RED_ZONE);
    let c = a
        .kmem_cache_create("iso", 40, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: deliberately one byte past the 40-byte object, into its red zone.
    unsafe { o.as_ptr().add(40).write(0) };
    // SAFETY: ours; the corruption is detected and the object isolated.
    let r = unsafe { c.free(o) }.expect_err("red zone");
    assert!(matches!(r.kind, SlabErrorKind::RedzoneOverwritten { .. }));
    assert_eq!(c.isolated_objects(), 1);
    // SAFETY: a second free of the isolated object.
    let r = unsafe { c.free(o) }.expect_err("refused again");
    assert_eq!(r.kind, SlabErrorKind::DoubleFree);
    assert_eq!(c.isolated_objects(), 1, "still one isolated object");
}

#[test]
fn by_default_a_free_that_is_no_object_of_the_cache_is_dropped() {
    let (_p, _cpu, a) = setup(1, 1);
    assert!(a.hardened(), "the free checks are on by default");
    let c = a
        .kmem_cache_create("strict", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let other = a
        .kmem_cache_create("other", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    let foreign = other.alloc(Gfp::KERNEL).unwrap();
    let boxed = Box::new([0u64; 8]);
    let large = a.kmalloc(20_000, Gfp::KERNEL).unwrap();
    let bad: [(NonNull<u8>, SlabErrorKind); 4] = [
        // SAFETY: only the address is used.
        (unsafe { o.add(8) }, SlabErrorKind::NotObjectBoundary),
        (
            foreign,
            SlabErrorKind::WrongCache {
                owner: "other".into(),
            },
        ),
        (NonNull::from(&*boxed).cast(), SlabErrorKind::NotSlabPage),
        (large, SlabErrorKind::NotSlabPage),
    ];
    for (p, kind) in bad.clone() {
        // SAFETY: each is refused before anything is written.
        let r = unsafe { c.free(p) }.expect_err("dropped");
        assert_eq!(r.kind, kind, "{p:?}");
    }
    // None of them is ever handed out by `c`.
    let many: Vec<_> = (0..300).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    for (p, _) in bad {
        assert!(!many.contains(&p), "{p:?} was handed out");
    }
    for x in many.into_iter().chain([o]) {
        // SAFETY: ours.
        unsafe { c.free(x) }.expect("a good free passes the check");
    }
    // SAFETY: the real owners free them.
    unsafe {
        other.free(foreign).expect("free");
        a.kfree(large.as_ptr()).expect("free");
    }
}

#[test]
fn cache_at_tells_a_cache_primary_or_alias_from_any_other_address() {
    let (_p, _cpu, slab) = setup(1, 1);
    let primary = slab
        .kmem_cache_create("at-primary", 64, args(), SlabFlags::empty())
        .expect("create");
    // Same size and flags: merged, an alias with a structure of its own.
    let alias = slab
        .kmem_cache_create("at-alias", 64, args(), SlabFlags::empty())
        .expect("create");
    for c in [&*primary, &*alias] {
        let addr = std::ptr::from_ref(c).cast();
        assert!(slab.cache_at(addr).is_some_and(|f| std::ptr::eq(f, c)));
    }
    let obj = primary.alloc(Gfp::KERNEL).expect("object");
    for bogus in [
        std::ptr::null(),
        obj.as_ptr().cast_const().cast(),
        std::ptr::from_ref(&slab).cast(),
        0xdead_beef_usize as *const std::ffi::c_void,
    ] {
        assert!(slab.cache_at(bogus).is_none(), "{bogus:p}");
    }
    // SAFETY: allocated above, freed once.
    unsafe { primary.free(obj) }.expect("free");
    let alias_addr: *const std::ffi::c_void = std::ptr::from_ref(&*alias).cast();
    // SAFETY: nothing borrowed from the alias is in use.
    unsafe { slab.kmem_cache_destroy(alias) }.expect("destroy");
    assert!(
        slab.cache_at(alias_addr).is_none(),
        "a destroyed alias is no cache"
    );
    // SAFETY: as above.
    unsafe { slab.kmem_cache_destroy(primary) }.expect("destroy");
}

#[test]
fn kmalloc_and_krealloc_of_a_huge_size_fail_without_panicking() {
    // What a C module's `kmalloc(SIZE_MAX)` or `krealloc(p, SIZE_MAX)` reaches: `None`, the
    // old object untouched.
    let (_p, _cpu, slab) = setup(1, 1);
    for size in [
        usize::MAX,
        usize::MAX - 4095,
        usize::MAX / 2,
        MAX_OBJECT_SIZE + 1,
    ] {
        assert!(slab.kmalloc(size, Gfp::KERNEL).is_none(), "size {size}");
        assert!(slab.kzalloc(size, Gfp::KERNEL).is_none(), "size {size}");
    }
    assert!(slab.kcalloc(usize::MAX, 2, Gfp::KERNEL).is_none());
    let p = slab.kmalloc(32, Gfp::KERNEL).expect("memory");
    // SAFETY: a live kmalloc'ed object, untouched when krealloc fails.
    assert!(unsafe { slab.krealloc(p.as_ptr(), usize::MAX, Gfp::KERNEL) }.is_none());
    // SAFETY: still ours.
    unsafe { slab.kfree(p.as_ptr()) }.expect("free");
}
