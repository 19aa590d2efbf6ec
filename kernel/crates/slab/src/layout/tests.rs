//! Unit tests of the geometry functions.

use super::*;

#[test]
fn kmalloc_96_and_192_use_4032_bytes() {
    for (size, objs) in [(96, 42), (192, 21)] {
        let l = calculate_sizes(size, &KmemCacheArgs::default(), SlabFlags::empty(), 2).unwrap();
        assert_eq!((l.order, l.objects), (0, objs));
        assert_eq!(l.objects * l.size, 4032);
    }
}

#[test]
fn orders_and_min_partial() {
    assert_eq!(calculate_order(8, 1), Some(0));
    assert_eq!(calculate_order(4096, 4), Some(3));
    assert_eq!(calculate_order(8192, 4), Some(3));
    assert_eq!(calculate_order(700, 2), Some(2));
    assert_eq!(calculate_order(1 << 20, 1), Some(8));
    assert_eq!(min_partial(8), 5);
    assert_eq!(min_partial(1 << 16), 8);
    assert_eq!(min_partial(1 << 30), 10);
}

#[test]
fn sheaf_capacities() {
    assert_eq!(round_sheaf_capacity(60), Some(60));
    assert_eq!(round_sheaf_capacity(26), Some(28));
    assert_eq!(round_sheaf_capacity(12), Some(12));
    assert_eq!(round_sheaf_capacity(4), Some(4));
    assert_eq!(default_sheaf_capacity(255), 60);
    assert_eq!(default_sheaf_capacity(4096), 4);
}

#[test]
fn free_pointer_placement() {
    let a = KmemCacheArgs::default();
    let l = calculate_sizes(100, &a, SlabFlags::empty(), 1).unwrap();
    assert_eq!(l.offset, 48);
    extern "C" fn nop(_: *mut core::ffi::c_void) {}
    let ctor = KmemCacheArgs {
        ctor: Some(nop),
        ..a
    };
    let l = calculate_sizes(100, &ctor, SlabFlags::empty(), 1).unwrap();
    assert_eq!((l.offset, l.size), (104, 112));
    let given = KmemCacheArgs {
        freeptr_offset: Some(8),
        ..a
    };
    let l = calculate_sizes(100, &given, SlabFlags::SLAB_TYPESAFE_BY_RCU, 1).unwrap();
    assert_eq!(l.offset, 8);
    let l = calculate_sizes(32, &a, SlabFlags::SLAB_HWCACHE_ALIGN, 1).unwrap();
    assert_eq!(l.align, 32);
    let l = calculate_sizes(8, &a, SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON, 1).unwrap();
    assert_eq!((l.red_left_pad, l.inuse, l.offset, l.size), (8, 16, 16, 32));
}

#[test]
fn kmalloc_index_matches_a_plain_search() {
    assert_eq!(
        KMALLOC_SIZES[7], 256,
        "the arithmetic above 192 starts at kmalloc-256"
    );
    for size in 0..=KMALLOC_MAX_CACHE_SIZE + 1 {
        let expected = KMALLOC_SIZES.iter().position(|&class| size <= class);
        assert_eq!(kmalloc_index(size), expected, "size {size}");
    }
}

#[test]
fn kmalloc_fast_index_agrees_with_kmalloc_index() {
    assert_eq!(
        kmalloc_index_nonzero(0),
        None,
        "0 gets ZERO_SIZE_PTR, no cache"
    );
    for size in 1..=KMALLOC_MAX_CACHE_SIZE + 1 {
        assert_eq!(
            kmalloc_index_nonzero(size),
            kmalloc_index(size),
            "size {size}"
        );
    }
    for size in [KMALLOC_MAX_CACHE_SIZE + 1, 1 << 20, usize::MAX] {
        assert_eq!(kmalloc_index_nonzero(size), None, "size {size}");
    }
    // Every class holds its sizes and the next smaller class does not.
    for size in 1..=KMALLOC_MAX_CACHE_SIZE {
        let i = kmalloc_index_nonzero(size).unwrap();
        assert!(KMALLOC_SIZES[i] >= size);
        assert!(i == 0 || KMALLOC_SIZES[i - 1] < size, "size {size}");
    }
}

/// The free fast path's boundary test against division: `key(offset) < limit(objects)` exactly
/// when `offset` is `i * size` for an `i < objects`.
fn obj_index_agrees(size: usize, slab_bytes: usize, offset: usize) {
    let objects = slab_bytes / size;
    let idx = ObjIndex::new(size);
    let is_object = offset.is_multiple_of(size) && offset / size < objects;
    assert_eq!(
        idx.key(offset) < idx.limit(objects),
        is_object,
        "size {size}, slab {slab_bytes}, offset {offset}"
    );
}

#[test]
fn obj_index_tells_object_starts_exactly() {
    // Every offset of a page, for every stride a small cache may have (odd ones too).
    for size in 2..=1024 {
        for offset in 0..PAGE_SIZE {
            obj_index_agrees(size, PAGE_SIZE, offset);
        }
    }
    // The largest slabs and objects, near the edges.
    let big = MAX_OBJECT_SIZE;
    for size in [8192, 12_288, 65_536 + 8, big / 3, big / 2, big] {
        for i in 0..=(big / size) + 1 {
            for delta in [0usize, 1, 7, 8, size - 1] {
                if let Some(offset) = (i * size).checked_add(delta).filter(|&o| o < big) {
                    obj_index_agrees(size, big, offset);
                }
            }
        }
    }
}

proptest::proptest! {
    #[test]
    fn obj_index_agrees_with_division(
        size in 2..=MAX_OBJECT_SIZE,
        order in 0..=MAX_PAGE_ORDER,
        offset in 0..MAX_OBJECT_SIZE,
    ) {
        let slab_bytes = PAGE_SIZE << order;
        if size <= slab_bytes {
            obj_index_agrees(size, slab_bytes, offset % slab_bytes);
        }
    }
}
