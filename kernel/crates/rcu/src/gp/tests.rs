//! Unit tests of grace-period start and end with 1, 2 and 4 CPUs.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn online(n: usize) -> Rcu {
    let rcu = Rcu::new(n);
    for cpu in 0..n {
        rcu.cpu_online(cpu);
    }
    rcu
}

/// A callback that counts its runs in `hits`.
fn counter(hits: &Arc<AtomicUsize>) -> Callback {
    let hits = hits.clone();
    Box::new(move || {
        hits.fetch_add(1, Ordering::SeqCst);
    })
}

fn run_ready(rcu: &Rcu, cpu: usize) -> usize {
    let cbs = rcu.take_ready_callbacks(cpu);
    let n = cbs.len();
    for cb in cbs {
        cb();
    }
    n
}

#[test]
fn rcu_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Rcu>();
}

#[test]
fn idle_rcu_needs_nothing() {
    let rcu = online(2);
    assert_eq!(rcu.gp_seq(), 0);
    assert!(!rcu.gp_in_progress());
    for cpu in 0..2 {
        assert!(!rcu.qs_needed(cpu));
        rcu.quiescent_state(cpu);
        assert!(!rcu.report_qs(cpu));
    }
    assert_eq!(rcu.gp_seq(), 0, "QS reports alone start no GP");
    assert_eq!(rcu.completed_gps(), 0);
}

/// One GP on `n` CPUs: call_rcu on CPU 0 starts it; it ends exactly at the last QS,
/// whatever the order of the reports, and repeated QS from one CPU count once.
fn one_gp(n: usize) {
    let rcu = online(n);
    let hits = Arc::new(AtomicUsize::new(0));
    rcu.call_rcu(0, counter(&hits));
    assert_eq!(rcu.gp_seq(), 1);
    assert!(rcu.gp_in_progress());
    assert_eq!(rcu.pending_callbacks(0), 1);
    // Report in reverse order, each CPU twice.
    for cpu in (0..n).rev() {
        assert!(rcu.qs_needed(cpu));
        assert!(
            !rcu.has_ready_callbacks(0),
            "ready before CPU {cpu} reported"
        );
        assert_eq!(run_ready(&rcu, 0), 0);
        assert!(rcu.report_qs(cpu));
        assert!(!rcu.qs_needed(cpu));
        assert!(!rcu.report_qs(cpu), "a second QS of one CPU counts once");
    }
    assert_eq!(rcu.gp_seq(), 2);
    assert!(!rcu.gp_in_progress());
    assert_eq!(rcu.completed_gps(), 1);
    assert!(rcu.has_ready_callbacks(0));
    assert_eq!(rcu.ready_callbacks(0), 1);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "taking, not the GP, runs callbacks"
    );
    assert_eq!(run_ready(&rcu, 0), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(rcu.pending_callbacks(0), 0);
    assert!(
        (0..n).all(|cpu| !rcu.qs_needed(cpu)),
        "no GP without callbacks"
    );
}

#[test]
fn one_gp_1_cpu() {
    one_gp(1);
}

#[test]
fn one_gp_2_cpus() {
    one_gp(2);
}

#[test]
fn one_gp_4_cpus() {
    one_gp(4);
}

/// A callback queued while a GP runs needs that GP and the next one, which starts by itself
/// when the first ends.
fn call_during_gp(n: usize) {
    let rcu = online(n);
    let hits = Arc::new(AtomicUsize::new(0));
    rcu.call_rcu(0, counter(&hits)); // snap 2
    for cpu in 0..n / 2 {
        rcu.quiescent_state(cpu);
    }
    rcu.call_rcu(n - 1, counter(&hits)); // queued at gp_seq 1: snap 4
    for cpu in 0..n {
        rcu.quiescent_state(cpu);
    }
    assert_eq!(rcu.completed_gps(), 1);
    assert_eq!(rcu.gp_seq(), 3, "the second GP started at once");
    assert!((0..n).all(|cpu| rcu.qs_needed(cpu)));
    // (With one CPU both callbacks share list 0.)
    assert!(rcu.has_ready_callbacks(0));
    assert_eq!(rcu.ready_callbacks(0), 1);
    assert_eq!(run_all(&rcu), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    for cpu in 0..n {
        assert_eq!(run_all(&rcu), 0, "ready before CPU {cpu} reported");
        rcu.quiescent_state(cpu);
    }
    assert_eq!(rcu.gp_seq(), 4);
    assert!(rcu.has_ready_callbacks(n - 1));
    assert_eq!(run_all(&rcu), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(!rcu.gp_in_progress());
}

fn run_all(rcu: &Rcu) -> usize {
    (0..rcu.nr_cpus()).map(|cpu| run_ready(rcu, cpu)).sum()
}

#[test]
fn call_during_gp_1_cpu() {
    call_during_gp(1);
}

#[test]
fn call_during_gp_2_cpus() {
    call_during_gp(2);
}

#[test]
fn call_during_gp_4_cpus() {
    call_during_gp(4);
}

#[test]
fn callbacks_batch_per_gp_and_run_fifo() {
    let rcu = online(2);
    let order = Arc::new(crate::sync::Mutex::new(Vec::new()));
    for i in 0..5 {
        let order = order.clone();
        rcu.call_rcu(1, Box::new(move || order.lock().push(i)));
    }
    // The first call started GP 1; the other four came while it ran: they share GP 2.
    assert_eq!(rcu.gp_seq(), 1);
    rcu.quiescent_state(0);
    rcu.quiescent_state(1);
    assert_eq!(rcu.gp_seq(), 3);
    assert_eq!(rcu.ready_callbacks(1), 1);
    assert_eq!(run_ready(&rcu, 1), 1);
    rcu.quiescent_state(1);
    rcu.quiescent_state(0);
    assert_eq!(rcu.gp_seq(), 4, "no third GP: nothing waits for it");
    assert_eq!(rcu.ready_callbacks(1), 4);
    assert_eq!(run_ready(&rcu, 1), 4);
    assert_eq!(*order.lock(), [0, 1, 2, 3, 4]);
}

#[test]
fn late_online_cpu_joins_the_next_gp() {
    let rcu = Rcu::new(4);
    rcu.cpu_online(0);
    let hits = Arc::new(AtomicUsize::new(0));
    rcu.call_rcu(0, counter(&hits)); // GP 1 waits for CPU 0 only
    rcu.cpu_online(1);
    assert!(!rcu.qs_needed(1));
    rcu.call_rcu(0, counter(&hits)); // needs GP 2, which will wait for CPUs 0 and 1
    rcu.quiescent_state(0);
    assert_eq!(rcu.gp_seq(), 3);
    assert_eq!(run_ready(&rcu, 0), 1);
    assert!(rcu.qs_needed(0) && rcu.qs_needed(1) && !rcu.qs_needed(2));
    rcu.quiescent_state(0);
    assert_eq!(run_ready(&rcu, 0), 0, "GP 2 waits for CPU 1 too");
    rcu.quiescent_state(1);
    assert_eq!(run_ready(&rcu, 0), 1);
    assert_eq!(rcu.completed_gps(), 2);
}

#[test]
fn no_cpu_online_means_no_wait() {
    let rcu = Rcu::new(2);
    let hits = Arc::new(AtomicUsize::new(0));
    rcu.call_rcu(1, counter(&hits));
    assert_eq!(rcu.gp_seq(), 2, "a GP that waits for nobody ends at once");
    assert_eq!(run_ready(&rcu, 1), 1);
}

#[test]
#[should_panic(expected = "CPUs")]
fn too_many_cpus_panics() {
    let _ = Rcu::new(MAX_CPUS + 1);
}

#[test]
fn max_cpus_works() {
    let rcu = online(MAX_CPUS);
    let hits = Arc::new(AtomicUsize::new(0));
    rcu.call_rcu(MAX_CPUS - 1, counter(&hits));
    for cpu in 0..MAX_CPUS {
        assert_eq!(rcu.completed_gps(), 0);
        rcu.quiescent_state(cpu);
    }
    assert_eq!(run_ready(&rcu, MAX_CPUS - 1), 1);
}
