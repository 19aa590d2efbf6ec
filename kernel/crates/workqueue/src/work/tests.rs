//! Unit tests of the data word: the pending bit, CANCELING and the sequence number.

use super::*;

#[test]
fn try_set_pending_is_a_test_and_set() {
    let w = WorkStruct::new();
    assert!(!w.is_pending());
    assert_eq!(w.seq(), 0);
    assert!(w.try_set_pending());
    assert!(w.is_pending());
    assert!(!w.try_set_pending(), "already pending");
    assert_eq!(w.seq(), 1, "a refused queueing does not count");
    w.clear_pending();
    assert!(w.try_set_pending());
    assert_eq!(w.seq(), 2);
}

#[test]
fn canceling_refuses_queueing() {
    let w = WorkStruct::new();
    assert!(w.try_set_canceling());
    assert!(!w.try_set_canceling(), "one canceler at a time");
    assert!(!w.try_set_pending());
    assert!(!w.is_pending());
    w.clear_canceling();
    assert!(w.try_set_pending());
}

#[test]
fn start_running_clears_pending_and_records_the_instance() {
    let w = WorkStruct::new();
    assert!(w.running().is_none());
    w.try_set_pending();
    w.try_set_pending();
    assert_eq!(w.start_running(7), 1);
    assert!(!w.is_pending());
    assert_eq!(w.running(), Some((1, 7)));
    w.stop_running();
    assert!(w.running().is_none());
}

#[test]
fn info_round_trips() {
    let w = WorkStruct::new();
    for loc in [
        Loc::None,
        Loc::Timer,
        Loc::Worklist,
        Loc::Inactive,
        Loc::Held,
    ] {
        let info = Info {
            loc,
            color: 15,
            pool: 0xfffe,
            wq: 0xffff,
        };
        w.set_info(info);
        assert_eq!(w.info(), info);
    }
    w.set_loc(Loc::Timer);
    assert_eq!(w.info().pool, 0xfffe);
}

#[test]
fn sequence_number_wraps() {
    let w = WorkStruct::new();
    w.data.store(u64::from(u32::MAX) << 32, Ordering::Relaxed);
    assert!(w.try_set_pending());
    assert_eq!(w.seq(), 0);
    assert!(w.is_pending());
}
