//! Host tests of the depot: round trips, sharing, the full table, handles that name nothing,
//! and CPUs (threads) saving at once.

extern crate std;

use std::sync::Arc;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

#[test]
fn a_saved_stack_comes_back_and_an_equal_one_shares_its_handle() {
    let depot = StackDepot::<64, 8>::new();
    let a = depot.save(&[1, 2, 3]).unwrap();
    let b = depot.save(&[1, 2, 4]).unwrap();
    assert_ne!(a, b);
    assert_eq!(depot.save(&[1, 2, 3]), Some(a), "stored once");
    assert_eq!(depot.fetch(a).unwrap().as_slice(), [1, 2, 3]);
    assert_eq!(depot.fetch(b).unwrap().as_slice(), [1, 2, 4]);
    assert_eq!(depot.len(), 2);
}

#[test]
fn a_prefix_is_another_stack() {
    let depot = StackDepot::<64, 8>::new();
    let long = depot.save(&[7, 8, 9]).unwrap();
    let short = depot.save(&[7, 8]).unwrap();
    assert_ne!(long, short);
    assert_eq!(depot.fetch(short).unwrap().as_slice(), [7, 8]);
}

#[test]
fn a_long_stack_is_cut_to_the_depth_and_an_empty_one_is_not_stored() {
    let depot = StackDepot::<16, 4>::new();
    let h = depot.save(&[1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(depot.fetch(h).unwrap().as_slice(), [1, 2, 3, 4]);
    assert_eq!(
        depot.save(&[1, 2, 3, 4, 9]),
        Some(h),
        "the same first four frames"
    );
    assert_eq!(depot.save(&[]), None);
}

#[test]
fn a_full_depot_refuses_new_stacks_and_still_finds_the_old_ones() {
    let depot = StackDepot::<8, 2>::new();
    let handles: Vec<_> = (0..8).map(|i| depot.save(&[i, i + 100]).unwrap()).collect();
    assert_eq!(depot.len(), 8);
    assert_eq!(depot.save(&[1000, 1]), None, "full");
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(depot.save(&[i, i + 100]), Some(*h));
        assert_eq!(depot.fetch(*h).unwrap().as_slice(), [i, i + 100]);
    }
}

#[test]
fn a_handle_that_names_no_stored_stack_fetches_nothing() {
    let depot = StackDepot::<8, 2>::new();
    assert_eq!(depot.fetch(Handle::new(1).unwrap()), None, "an empty slot");
    assert_eq!(depot.fetch(Handle::new(9).unwrap()), None, "past the table");
    assert_eq!(depot.fetch(Handle::new(u32::MAX).unwrap()), None);
}

#[test]
fn threads_saving_the_same_stacks_at_once_all_get_handles_that_fetch_them() {
    let depot = Arc::new(StackDepot::<1024, 8>::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let depot = depot.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for round in 0..200usize {
                    let i = (round * 7 + t) % 50;
                    let stack = [i, i * 3, 0xdead];
                    let h = depot.save(&stack).expect("room for 50 stacks");
                    out.push((stack, h));
                }
                out
            })
        })
        .collect();
    for t in threads {
        for (stack, h) in t.join().unwrap() {
            assert_eq!(depot.fetch(h).unwrap().as_slice(), stack);
        }
    }
    // A race may store a stack twice; never more than once per thread.
    assert!((50..=200).contains(&depot.len()), "{}", depot.len());
}

proptest! {
    /// Whatever is saved fetches back as saved (cut to the depth), and saving again gives
    /// the same handle while the table has room.
    #[test]
    fn every_saved_stack_fetches_back(stacks in prop::collection::vec(
        prop::collection::vec(0usize..20, 1..12), 1..60)) {
        let depot = StackDepot::<128, 8>::new();
        let mut saved = Vec::new();
        for s in &stacks {
            let h = depot.save(s).unwrap();
            saved.push((s.clone(), h));
        }
        for (s, h) in saved {
            let cut = &s[..s.len().min(8)];
            let got = depot.fetch(h).unwrap();
            prop_assert_eq!(got.as_slice(), cut);
            prop_assert_eq!(depot.save(&s), Some(h));
        }
        prop_assert!(depot.len() <= stacks.len());
    }
}
