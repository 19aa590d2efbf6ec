//! Unit tests of delayed work: deadlines, `mod_delayed_work`, cancel.

use alloc::vec;

use crate::Action;
use crate::wq::SYSTEM_WQ;
use crate::wq::tests::{Driver, item, wqs};

#[test]
fn delayed_item_waits_for_its_deadline() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    let (queued, a) = wqs.queue_delayed_work(SYSTEM_WQ, w.clone(), 10, 100);
    assert!(queued);
    assert_eq!(
        a.iter().collect::<vec::Vec<_>>(),
        [Action::ArmTimer { at: 110 }]
    );
    assert!(w.is_pending());
    assert_eq!(wqs.timer_deadline(&w), Some(110));
    assert!(
        !wqs.queue_work(SYSTEM_WQ, w.clone()).0,
        "pending on its timer"
    );
    assert!(!wqs.queue_delayed_work(SYSTEM_WQ, w.clone(), 1, 100).0);
    // An early (stale) timer does not queue it.
    let a = wqs.delayed_work_timer_fn(w.clone(), 105);
    assert_eq!(
        a.iter().collect::<vec::Vec<_>>(),
        [Action::ArmTimer { at: 110 }]
    );
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 0);
    let a = wqs.delayed_work_timer_fn(w.clone(), 110);
    d.perform(&wqs, a);
    assert_eq!(wqs.timer_deadline(&w), None);
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 1);
    // A zero delay queues at once.
    let (_, a) = wqs.queue_delayed_work(SYSTEM_WQ, w.clone(), 0, 200);
    d.perform(&wqs, a);
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 2);
}

#[test]
fn mod_delayed_work_moves_the_deadline() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    // Idle item: queued, returns false.
    let (was, a) = wqs.mod_delayed_work(SYSTEM_WQ, w.clone(), 10, 0);
    assert!(!was);
    assert_eq!(
        a.iter().collect::<vec::Vec<_>>(),
        [Action::ArmTimer { at: 10 }]
    );
    // Pending: the deadline moves later, returns true.
    let (was, a) = wqs.mod_delayed_work(SYSTEM_WQ, w.clone(), 50, 5);
    assert!(was);
    assert_eq!(
        a.iter().collect::<vec::Vec<_>>(),
        [Action::ArmTimer { at: 55 }]
    );
    assert_eq!(wqs.timer_deadline(&w), Some(55));
    // The old timer fires: re-arm, nothing runs.
    let a = wqs.delayed_work_timer_fn(w.clone(), 10);
    assert_eq!(
        a.iter().collect::<vec::Vec<_>>(),
        [Action::ArmTimer { at: 55 }]
    );
    // And earlier again: moved to 20.
    assert!(wqs.mod_delayed_work(SYSTEM_WQ, w.clone(), 10, 10).0);
    d.perform(&wqs, wqs.delayed_work_timer_fn(w.clone(), 20));
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 1);
    assert_eq!(w.seq(), 1, "one instance, whose deadline moved");
}

#[test]
fn mod_delayed_work_puts_a_queued_item_back_on_its_timer() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    let (_, a) = wqs.queue_work(SYSTEM_WQ, w.clone());
    d.perform(&wqs, a);
    let (was, a) = wqs.mod_delayed_work(SYSTEM_WQ, w.clone(), 30, 0);
    assert!(was);
    d.perform(&wqs, a);
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 0, "taken off the worklist");
    assert_eq!(wqs.wq_stats()[0].in_flight, 0);
    d.perform(&wqs, wqs.delayed_work_timer_fn(w.clone(), 30));
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 1);
}

#[test]
fn cancel_delayed_work_stops_the_timer() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    wqs.queue_delayed_work(SYSTEM_WQ, w.clone(), 10, 0);
    let (was, _) = wqs.cancel_delayed_work_sync(&w, &mut || panic!("nothing runs"));
    assert!(was);
    assert!(!w.is_pending());
    // The kernel's timer fires anyway: nothing happens.
    assert!(wqs.delayed_work_timer_fn(w.clone(), 10).is_empty());
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 0);
    assert!(!wqs.cancel_delayed_work(&w).0);
}

#[test]
fn mod_delayed_work_during_cancel_does_nothing() {
    let wqs = wqs(1);
    let w = item();
    assert!(w.try_set_canceling());
    assert!(!wqs.mod_delayed_work(SYSTEM_WQ, w.clone(), 5, 0).0);
    assert!(!w.is_pending());
    w.clear_canceling();
}
