//! Property test: random alloc/free sequences, checked against a simple model.
//!
//! The model is just the set of live `(pfn, order)` blocks plus a bitmap of allocated frames.
//! After every step we check that no two live blocks overlap, that every block is naturally
//! aligned and inside managed memory of one node, that the preferred node was used when it
//! could serve the request, that out-of-memory only happens when no node has a large enough
//! block, and that free + used pages always equal the total. At the end everything is freed and
//! the free counts per order must equal the initial ones: every aligned region coalesced back.

use buddy::{AllocError, BuddyAllocator, FreeError, MAX_ORDER, PageMeta};
use proptest::prelude::*;

/// Managed memory: `(start, end, node)` ranges, sorted, non-overlapping, possibly touching.
type Layout = Vec<(usize, usize, usize)>;

#[derive(Debug, Clone)]
enum Op {
    /// Allocate a block of this order, preferring this node.
    Alloc(usize, Option<usize>),
    /// Free the live block chosen by this index (modulo the number of live blocks).
    Free(usize),
    /// Free a live block, then free it again: the second free must be rejected.
    DoubleFree(usize),
}

/// The window starts at `base`; ranges are made of (gap, length, node) triples.
fn layout() -> impl Strategy<Value = (usize, Layout)> {
    let base = prop_oneof![Just(0usize), 0usize..3000];
    // Touching ranges (gap 0) are common: they test merging across (and not across) nodes.
    let gap = prop_oneof![Just(0usize), 1usize..200];
    let parts = prop::collection::vec((gap, 1usize..1400, 0usize..3), 1..4);
    (base, parts).prop_map(|(base, parts)| {
        let mut at = base;
        let mut ranges = Vec::new();
        for (gap, len, node) in parts {
            at += gap;
            ranges.push((at, at + len, node));
            at += len;
        }
        (base, ranges)
    })
}

fn op() -> impl Strategy<Value = Op> {
    let order = prop_oneof![4 => 0usize..3, 2 => 3usize..7, 1 => 7usize..=MAX_ORDER];
    let node = prop_oneof![Just(None), (0usize..4).prop_map(Some)];
    prop_oneof![
        5 => (order, node).prop_map(|(o, n)| Op::Alloc(o, n)),
        4 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::DoubleFree),
    ]
}

/// The node whose managed memory contains all of `pfn..end`, if any. Touching ranges of the same
/// node count as one: a block may straddle their boundary.
fn node_covering(ranges: &Layout, pfn: usize, end: usize) -> Option<usize> {
    let mut at = pfn;
    let mut node = None;
    for &(s, e, n) in ranges {
        if s <= at && at < e {
            if node.is_some_and(|m| m != n) {
                return None;
            }
            node = Some(n);
            at = e.min(end);
            if at == end {
                return node;
            }
        }
    }
    None
}

fn run(base: usize, ranges: Layout, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let end = ranges.last().map_or(base, |r| r.1);
    let mut meta = vec![PageMeta::RESERVED; end - base];
    let mut a = BuddyAllocator::new(&mut meta, base).unwrap();
    for &(s, e, n) in &ranges {
        a.add_range(s, e, n).unwrap();
    }
    let initial = a.stats();
    let total = initial.total_pages();
    prop_assert_eq!(total, ranges.iter().map(|r| r.1 - r.0).sum::<usize>());
    let mut live: Vec<(usize, usize)> = Vec::new();
    let mut used = vec![false; end - base];

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Alloc(order, node) => {
                let before = a.stats();
                match a.alloc_pages(order, node) {
                    Ok(pfn) => {
                        let size = 1 << order;
                        prop_assert_eq!(pfn % size, 0, "not naturally aligned");
                        let got = node_covering(&ranges, pfn, pfn + size);
                        prop_assert!(
                            got.is_some(),
                            "block {pfn}/{order} not in one node's memory"
                        );
                        if let Some(n) = node.filter(|&n| before.nodes[n].can_serve(order)) {
                            prop_assert_eq!(got, Some(n), "preferred node not used");
                        }
                        for page in &mut used[pfn - base..pfn - base + size] {
                            prop_assert!(!*page, "block {pfn}/{order} overlaps a live block");
                            *page = true;
                        }
                        prop_assert_eq!(a.page_meta(pfn).unwrap().node(), got);
                        a.set_owner(pfn, order, pfn + 1).unwrap();
                        live.push((pfn, order));
                    }
                    Err(AllocError::OutOfMemory) => {
                        prop_assert!(!before.nodes.iter().any(|n| n.can_serve(order)));
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::Free(i) | Op::DoubleFree(i) if !live.is_empty() => {
                let (pfn, order) = live.swap_remove(i % live.len());
                for q in pfn..pfn + (1 << order) {
                    prop_assert_eq!(a.owner(q), pfn + 1, "owner word lost");
                }
                prop_assert_eq!(a.free_pages(pfn, order), Ok(()));
                used[pfn - base..pfn - base + (1 << order)].fill(false);
                if matches!(op, Op::DoubleFree(_)) {
                    let before = a.stats();
                    let again = a.free_pages(pfn, order);
                    prop_assert!(
                        matches!(
                            again,
                            Err(FreeError::DoubleFree { .. } | FreeError::NotHead { .. })
                        ),
                        "double free gave {again:?}"
                    );
                    prop_assert_eq!(a.stats(), before);
                }
            }
            Op::Free(_) | Op::DoubleFree(_) => {}
        }
        let s = a.stats();
        prop_assert_eq!(s.free_pages() + s.used_pages(), total);
        prop_assert_eq!(
            s.used_pages(),
            live.iter().map(|&(_, o)| 1 << o).sum::<usize>()
        );
        a.check_invariants()
            .map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
    }

    for (pfn, order) in live.drain(..) {
        prop_assert_eq!(a.free_pages(pfn, order), Ok(()));
    }
    a.check_invariants()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        a.stats(),
        initial,
        "did not coalesce back to the initial state"
    );
    // Every order-10-aligned region inside one node's memory is a single free block again.
    let top = 1 << MAX_ORDER;
    for region in (base.div_ceil(top) * top..end).step_by(top) {
        if node_covering(&ranges, region, region + top).is_some() {
            let m = a.page_meta(region).unwrap();
            prop_assert!(
                m.is_free() && m.order() == Some(MAX_ORDER),
                "{region} not merged"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_alloc_free_matches_model(
        (base, ranges) in layout(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        run(base, ranges, ops)?;
    }
}

#[test]
fn node_covering_joins_touching_ranges_of_one_node() {
    let ranges = vec![(0, 512, 0), (512, 1024, 0), (1024, 2048, 1)];
    assert_eq!(node_covering(&ranges, 0, 1024), Some(0));
    assert_eq!(node_covering(&ranges, 512, 1536), None);
    assert_eq!(node_covering(&ranges, 1024, 2048), Some(1));
    assert_eq!(node_covering(&ranges, 2040, 2050), None);
}
