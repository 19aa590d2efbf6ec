use alloc::vec::Vec;

use proptest::prelude::*;

use super::{CbList, SEGMENTS, Segments, VecList};

#[test]
fn equal_snapshots_share_a_segment() {
    let mut s = Segments::new();
    for _ in 0..5 {
        s.push(2);
    }
    s.push(4);
    assert_eq!((s.len(), s.front()), (6, Some(2)));
    assert_eq!(s.ready_len(0), 0);
    assert_eq!(s.ready_len(2), 5);
    assert_eq!(s.ready_len(4), 6);
    for _ in 0..5 {
        s.pop();
    }
    assert_eq!((s.len(), s.front()), (1, Some(4)));
    s.pop();
    assert!(s.is_empty() && s.front().is_none());
}

#[test]
fn when_segments_run_out_the_last_one_waits_longer() {
    let mut s = Segments::new();
    for i in 0..SEGMENTS as u64 + 2 {
        s.push(2 * (i + 1));
    }
    // The last segment took the two extra callbacks and the latest snapshot.
    let last = 2 * (SEGMENTS as u64 + 2);
    assert_eq!(
        s.ready_len(last - 2),
        SEGMENTS - 1,
        "not early for the merged ones"
    );
    assert_eq!(s.ready_len(last), SEGMENTS + 2);
}

#[test]
fn a_vec_list_pops_only_ready_callbacks_in_order() {
    let mut l = VecList::new();
    l.push(2, 'a');
    l.push(2, 'b');
    l.push(4, 'c');
    assert_eq!(l.pop_ready(1), None);
    assert_eq!(l.pop_ready(2), Some('a'));
    assert_eq!(l.pop_ready(2), Some('b'));
    assert_eq!(l.pop_ready(2), None);
    assert_eq!(l.len(), 1);
    assert_eq!(l.pop_ready(4), Some('c'));
    assert!(l.is_empty());
}

proptest! {
    /// Against a list that stores every callback's own snapshot: same order, and a callback
    /// is never ready before its own snapshot (it may be later, when segments ran out).
    #[test]
    fn segments_are_never_early_and_keep_order(
        steps in proptest::collection::vec((0u64..3, 0u8..3, 0u64..20), 1..200)
    ) {
        let mut list = VecList::new();
        let mut model: Vec<(u64, usize)> = Vec::new(); // (own snapshot, id), oldest first
        let mut snap = 0u64;
        let mut next_id = 0;
        let mut popped_upto = 0;
        for (grow, op, seq) in steps {
            match op {
                // push with a non-decreasing snapshot
                0 | 1 => {
                    snap += 2 * grow;
                    list.push(snap, next_id);
                    model.push((snap, next_id));
                    next_id += 1;
                }
                // pop everything ready at `seq`
                _ => {
                    let ready = list.ready_len(seq);
                    for _ in 0..ready {
                        let id = list.pop_ready(seq).expect("counted as ready");
                        let (own, mid) = model.remove(0);
                        prop_assert_eq!(id, mid, "FIFO order");
                        prop_assert!(crate::seq::rcu_seq_done(seq, own), "ran early");
                        popped_upto += 1;
                    }
                    prop_assert!(list.pop_ready(seq).is_none());
                }
            }
            prop_assert_eq!(list.len(), model.len());
        }
        // Late enough, everything is ready.
        prop_assert_eq!(list.ready_len(u64::MAX / 2), model.len());
        let _ = popped_upto;
    }
}
