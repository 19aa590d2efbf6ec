//! Unit tests of the grace-period sequence counter.

use super::*;

#[test]
fn snap_of_idle_counter_is_next_gp_end() {
    for s in [0, 2, 4, 100, 1 << 40] {
        assert_eq!(rcu_seq_snap(s), s + 2);
        assert!(!rcu_seq_state(rcu_seq_snap(s)));
    }
}

#[test]
fn snap_of_running_gp_waits_for_one_more() {
    for s in [1, 3, 5, 101, (1 << 40) + 1] {
        assert_eq!(rcu_seq_snap(s), s + 3);
        assert!(!rcu_seq_state(rcu_seq_snap(s)));
    }
}

#[test]
fn snap_requires_a_whole_gp_after_s() {
    // Walk the counter through its transitions: from any s, the first value >= snap(s) is
    // the end of a GP whose start (snap - 1) comes strictly after s.
    for s in 0..64u64 {
        let snap = rcu_seq_snap(s);
        assert!(rcu_seq_state(snap - 1), "snap - 1 is a GP start");
        assert!(snap - 1 > s, "that GP starts after s");
        assert!(!rcu_seq_done(s, snap));
        assert!(!rcu_seq_done(snap - 1, snap));
        assert!(rcu_seq_done(snap, snap));
        // No earlier GP end would do: the GP ending at snap - 2 started at or before s.
        assert!(snap.checked_sub(3).is_none_or(|start| start <= s));
    }
}

#[test]
fn start_end_and_completed() {
    let mut s = 0;
    for gp in 1..=5 {
        s = rcu_seq_start(s);
        assert!(rcu_seq_state(s));
        assert_eq!(rcu_seq_completed(s), gp - 1);
        s = rcu_seq_end(s);
        assert!(!rcu_seq_state(s));
        assert_eq!(rcu_seq_completed(s), gp);
    }
}
