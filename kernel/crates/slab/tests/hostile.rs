//! Hostile input to the creation API (issue #9): arguments that once panicked or were accepted
//! and corrupted memory must come back as errors, and any cache that is created must work.

mod common;

use common::{args, setup};
use proptest::prelude::*;
use slab::layout::{LayoutError, MAX_OBJECT_SIZE, MAX_SHEAF_CAPACITY};
use slab::{Gfp, KmemCacheArgs, SlabError, SlabFlags};

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
    fn creation_with_arbitrary_arguments_never_panics(
        size in any_size(),
        a in any_args(),
        flags in any_flags(),
    ) {
        let (_p, _cpu, slab) = setup(2, 1);
        if let Ok(c) = slab.kmem_cache_create("any", size, a, flags) {
            prop_assert!(c.object_size() >= size);
            // A cache that was created works: one object in, one out.
            if let Some(o) = c.alloc(Gfp::KERNEL) {
                // SAFETY: from `c`, not used afterwards.
                unsafe { c.free(o) }.expect("free");
            }
        }
    }
}
