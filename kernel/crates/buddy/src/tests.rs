//! Unit tests: splitting, coalescing, alignment, nodes, out-of-memory, bad frees, stats.

extern crate std;

use std::vec;
use std::vec::Vec;

use crate::{
    AllocError, BuddyAllocator, FreeError, InitError, MAX_ORDER, PageMeta, RangeError,
    init_metadata, metadata_bytes,
};

/// Metadata storage for `len` frames.
fn storage(len: usize) -> Vec<PageMeta> {
    vec![PageMeta::RESERVED; len]
}

/// Runs `f` on an allocator over `0..len` with the given `(start, end, node)` ranges added,
/// checking the invariants after it.
fn with(len: usize, ranges: &[(usize, usize, usize)], f: impl FnOnce(&mut BuddyAllocator<'_>)) {
    let mut meta = storage(len);
    let mut a = BuddyAllocator::new(&mut meta, 0).unwrap();
    for &(s, e, n) in ranges {
        a.add_range(s, e, n).unwrap();
    }
    a.check_invariants().unwrap();
    f(&mut a);
    a.check_invariants().unwrap();
}

#[test]
fn page_meta_is_small() {
    assert_eq!(size_of::<PageMeta>(), 24);
    assert_eq!(metadata_bytes(10, 20), 240);
    assert_eq!(metadata_bytes(20, 10), 0);
}

#[test]
fn init_metadata_from_uninit_storage() {
    let mut raw = [core::mem::MaybeUninit::<PageMeta>::uninit(); 4];
    let meta = init_metadata(&mut raw);
    assert!(meta.iter().all(PageMeta::is_reserved));
    let mut a = BuddyAllocator::new(meta, 100).unwrap();
    a.add_range(100, 104, 0).unwrap();
    assert_eq!(a.alloc_pages(2, None), Ok(100));
}

#[test]
fn new_rejects_overflowing_window() {
    let mut meta = storage(4);
    assert!(matches!(
        BuddyAllocator::new(&mut meta, usize::MAX - 1),
        Err(InitError::PfnOverflow)
    ));
}

#[test]
fn add_range_carves_maximal_aligned_blocks() {
    // 3..1030: 3 (o0), 4..8 (o2), 8..16 (o3), ..., 512..1024 (o9), 1024..1028 (o2), 1028..1030 (o1).
    with(2048, &[(3, 1030, 0)], |a| {
        let s = a.stats();
        let want = [1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 0];
        assert_eq!(s.nodes[0].free_blocks, want);
        assert_eq!(s.total_pages(), 1027);
        assert_eq!(s.free_pages(), 1027);
        assert!(a.page_meta(4).unwrap().is_free());
        assert_eq!(a.page_meta(4).unwrap().order(), Some(2));
        assert!(a.page_meta(5).unwrap().is_tail());
        assert!(a.page_meta(2).unwrap().is_reserved());
    });
}

#[test]
fn adjacent_ranges_of_one_node_coalesce() {
    with(1024, &[(512, 1024, 0), (0, 512, 0)], |a| {
        assert_eq!(a.stats().nodes[0].free_blocks[MAX_ORDER], 1);
        assert_eq!(a.stats().free_blocks(9), 0);
    });
    // ...but not across nodes.
    with(1024, &[(0, 512, 0), (512, 1024, 1)], |a| {
        assert_eq!(a.stats().free_blocks(MAX_ORDER), 0);
        assert_eq!(a.stats().free_blocks(9), 2);
    });
}

#[test]
fn add_range_errors_leave_state_unchanged() {
    with(64, &[(0, 16, 0)], |a| {
        let before = a.stats();
        assert_eq!(a.add_range(8, 32, 0), Err(RangeError::Overlap { pfn: 8 }));
        assert_eq!(a.add_range(32, 65, 0), Err(RangeError::OutsideMetadata));
        assert_eq!(a.add_range(32, 32, 0), Err(RangeError::Empty));
        assert_eq!(
            a.add_range(32, 40, 99),
            Err(RangeError::InvalidNode { node: 99 })
        );
        assert_eq!(a.stats(), before);
    });
}

#[test]
fn split_then_coalesce_back() {
    with(1024, &[(0, 1024, 0)], |a| {
        let p = a.alloc_pages(0, None).unwrap();
        assert_eq!(p, 0);
        // One order-10 block split into one free block of each order 0..=9.
        let s = a.stats();
        assert_eq!(s.nodes[0].free_blocks, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(s.used_blocks(0), 1);
        assert_eq!(s.free_pages(), 1023);
        // The buddy of page 0 at order 0 is page 1, at order 1 it is 2..4, etc.
        assert_eq!(a.alloc_pages(0, None), Ok(1));
        assert_eq!(a.alloc_pages(1, None), Ok(2));
        a.free_pages(1, 0).unwrap();
        a.free_pages(0, 0).unwrap(); // merges with 1: order 1 at 0, whose buddy 2 is used
        assert_eq!(a.stats().nodes[0].free_blocks[1], 1);
        a.free_pages(2, 1).unwrap(); // now everything merges back up
        assert_eq!(
            a.stats().nodes[0].free_blocks,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        );
    });
}

#[test]
fn allocations_are_naturally_aligned() {
    with(4096, &[(1, 4095, 0)], |a| {
        for order in (0..=MAX_ORDER).rev() {
            let p = a.alloc_pages(order, None).unwrap();
            assert_eq!(p % (1 << order), 0, "order {order} at {p}");
        }
    });
}

#[test]
fn preferred_node_first_then_fallback() {
    with(
        4096,
        &[(0, 1024, 0), (1024, 2048, 1), (2048, 2050, 2)],
        |a| {
            let p = a.alloc_pages(3, Some(1)).unwrap();
            assert!((1024..2048).contains(&p));
            // Node 2 has 2 pages: order 1 is local, order 2 must fall back (to node 3.., then 0).
            let p = a.alloc_pages(1, Some(2)).unwrap();
            assert_eq!(p, 2048);
            let p = a.alloc_pages(2, Some(2)).unwrap();
            assert!(
                (0..1024).contains(&p),
                "fallback wraps around to node 0, got {p}"
            );
            // Local splitting is preferred over an exact fit elsewhere.
            let p = a.alloc_pages(0, Some(1)).unwrap();
            assert!((1024..2048).contains(&p));
            assert_eq!(a.page_meta(p).unwrap().node(), Some(1));
            assert_eq!(
                a.alloc_pages(0, Some(8)),
                Err(AllocError::InvalidNode { node: 8 })
            );
        },
    );
}

#[test]
fn out_of_memory_is_an_error() {
    with(64, &[(0, 6, 0)], |a| {
        assert_eq!(a.alloc_pages(3, None), Err(AllocError::OutOfMemory));
        assert_eq!(
            a.alloc_pages(11, None),
            Err(AllocError::InvalidOrder { order: 11 })
        );
        assert_eq!(a.alloc_pages(2, None), Ok(0));
        assert_eq!(a.alloc_pages(1, None), Ok(4));
        assert_eq!(a.alloc_pages(0, None), Err(AllocError::OutOfMemory));
        assert_eq!(a.stats().free_pages(), 0);
    });
    // An allocator with no memory at all.
    with(0, &[], |a| {
        assert_eq!(a.alloc_pages(0, Some(0)), Err(AllocError::OutOfMemory));
    });
}

#[test]
fn bad_frees_are_rejected_without_changes() {
    with(128, &[(0, 64, 0), (96, 128, 0)], |a| {
        let p = a.alloc_pages(2, None).unwrap();
        let q = a.alloc_pages(2, None).unwrap();
        let before = a.stats();
        let cases = [
            (1000, 0, FreeError::NotManaged { pfn: 1000 }),
            (70, 0, FreeError::NotManaged { pfn: 70 }), // hole
            (p + 1, 0, FreeError::NotHead { pfn: p + 1 }),
            (
                p,
                1,
                FreeError::WrongOrder {
                    pfn: p,
                    given: 1,
                    actual: 2,
                },
            ),
            (
                p,
                99,
                FreeError::WrongOrder {
                    pfn: p,
                    given: 99,
                    actual: 2,
                },
            ),
            (0, 6, FreeError::DoubleFree { pfn: 0 }), // a free block, never allocated
        ];
        for (pfn, order, err) in cases {
            assert_eq!(a.free_pages(pfn, order), Err(err));
            assert_eq!(a.set_owner(pfn, order, 7), Err(err));
            assert_eq!(a.stats(), before);
            a.check_invariants().unwrap();
        }
        // Double free: the second attempt fails and changes nothing.
        a.free_pages(q, 2).unwrap();
        let after = a.stats();
        let again = a.free_pages(q, 2);
        assert!(
            matches!(
                again,
                Err(FreeError::DoubleFree { .. } | FreeError::NotHead { .. })
            ),
            "{again:?}"
        );
        assert_eq!(a.stats(), after);
        a.free_pages(p, 2).unwrap();
        assert_eq!(a.free_pages(p, 2), Err(FreeError::DoubleFree { pfn: p }));
    });
}

#[test]
fn owner_word_covers_the_whole_block_and_clears_on_free() {
    with(64, &[(0, 64, 0)], |a| {
        let p = a.alloc_pages(3, None).unwrap();
        assert_eq!(a.owner(p), 0);
        a.set_owner(p, 3, 0xdead).unwrap();
        assert!((p..p + 8).all(|q| a.owner(q) == 0xdead));
        assert_eq!(a.owner(p + 8), 0);
        assert_eq!(a.owner(10_000), 0);
        a.free_pages(p, 3).unwrap();
        assert!((p..p + 8).all(|q| a.owner(q) == 0));
    });
}

#[test]
fn stats_track_free_and_used_per_node_and_order() {
    with(4096, &[(0, 2048, 0), (2048, 3072, 1)], |a| {
        let total = a.stats().total_pages();
        assert_eq!(total, 3072);
        let mut live = Vec::new();
        for (i, order) in [0, 3, 10, 5, 0, 1].into_iter().enumerate() {
            let node = i % 2;
            live.push((a.alloc_pages(order, Some(node)).unwrap(), order));
            let s = a.stats();
            assert_eq!(s.free_pages() + s.used_pages(), total);
        }
        let s = a.stats();
        assert_eq!(s.used_blocks(0), 2);
        assert_eq!(s.nodes[0].used_blocks[10], 1);
        assert_eq!(s.nodes[1].used_blocks[3], 1);
        assert_eq!(s.used_pages(), 1 + 8 + 1024 + 32 + 1 + 2);
        for (p, o) in live {
            a.free_pages(p, o).unwrap();
        }
        assert_eq!(a.stats().nodes[0].free_blocks[10], 2);
        assert_eq!(a.stats().nodes[1].free_blocks[10], 1);
        assert_eq!(a.stats().used_pages(), 0);
    });
}

#[test]
fn window_with_nonzero_base() {
    let mut meta = storage(1500);
    let mut a = BuddyAllocator::new(&mut meta, 1000).unwrap();
    assert_eq!((a.base_pfn(), a.end_pfn()), (1000, 2500));
    a.add_range(1000, 2500, 0).unwrap();
    // 1024..2048 is the only order-10 block; 1000's buddy chain stops at the window edge.
    assert_eq!(a.alloc_pages(10, None), Ok(1024));
    assert_eq!(a.alloc_pages(10, None), Err(AllocError::OutOfMemory));
    assert_eq!(
        a.free_pages(999, 0),
        Err(FreeError::NotManaged { pfn: 999 })
    );
    a.free_pages(1024, 10).unwrap();
    a.check_invariants().unwrap();
}
