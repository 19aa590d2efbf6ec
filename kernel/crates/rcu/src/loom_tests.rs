//! Loom models of grace-period detection: two CPUs as loom threads, one queuing a callback,
//! both reporting quiescent states concurrently. Loom runs every interleaving of their lock
//! and atomic operations and checks the callback becomes ready exactly when both CPUs have
//! reported after the queuing (never earlier), that no QS is lost and that nothing deadlocks.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p sheaf-rcu --release loom`.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use std::boxed::Box;

use crate::Rcu;

fn two_cpus() -> Arc<Rcu> {
    let rcu = Rcu::new(2);
    rcu.cpu_online(0);
    rcu.cpu_online(1);
    Arc::new(rcu)
}

fn run_ready(rcu: &Rcu, cpu: usize) -> usize {
    let cbs = rcu.take_ready_callbacks(cpu);
    let n = cbs.len();
    for cb in cbs {
        cb();
    }
    n
}

/// CPU 0 unpublishes an object, frees it with `call_rcu` and reports a QS; CPU 1 reads the
/// pointer (a read section) and reports a QS. The reader never sees the object freed, and the
/// callback is ready exactly when CPU 1's report counted (it came after the GP started).
#[test]
fn loom_callback_waits_for_both_cpus() {
    loom::model(|| {
        let rcu = two_cpus();
        let ptr = Arc::new(AtomicUsize::new(0)); // 0: the old object, 1: the new one
        let freed = Arc::new(AtomicBool::new(false));

        let writer = {
            let (rcu, ptr, freed) = (rcu.clone(), ptr.clone(), freed.clone());
            thread::spawn(move || {
                ptr.store(1, Ordering::Release);
                rcu.call_rcu(0, Box::new(move || freed.store(true, Ordering::Release)));
                assert!(!rcu.has_ready_callbacks(0), "ready before CPU 0 reported");
                assert!(rcu.report_qs(0), "CPU 0 owes a QS to the GP it started");
                run_ready(&rcu, 0)
            })
        };
        let reader = {
            let (rcu, ptr, freed) = (rcu.clone(), ptr.clone(), freed.clone());
            thread::spawn(move || {
                // Read section: a QS cannot be reported inside it.
                if ptr.load(Ordering::Acquire) == 0 {
                    assert!(!freed.load(Ordering::Acquire), "reader saw a freed object");
                }
                rcu.report_qs(1)
            })
        };
        let ran = writer.join().unwrap();
        let cpu1_counted = reader.join().unwrap();

        let ready = ran == 1 || rcu.has_ready_callbacks(0);
        assert_eq!(ready, cpu1_counted, "ready exactly when both CPUs reported");
        assert_eq!(rcu.completed_gps(), cpu1_counted as u64);
        if !cpu1_counted {
            // CPU 1 reported before the GP started: it still owes one (no lost QS).
            assert!(rcu.qs_needed(1) && !rcu.qs_needed(0));
            assert!(!rcu.report_qs(0));
            assert!(!rcu.has_ready_callbacks(0));
            assert!(rcu.report_qs(1));
        }
        assert_eq!(run_ready(&rcu, 0) + ran, 1);
        assert!(freed.load(Ordering::Acquire));
        assert_eq!(rcu.gp_seq(), 2);
        assert_eq!(rcu.pending_callbacks(0), 0);
    });
}

/// Both CPUs queue a callback and report a QS concurrently, so the second `call_rcu` may land
/// while the first GP runs and need the next one. Neither callback is ever ready before its
/// own CPU reported after queuing it; afterwards two rounds of QS run both exactly once.
#[test]
fn loom_concurrent_call_rcu_and_qs() {
    loom::model(|| {
        let rcu = two_cpus();
        let runs = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);

        let cpus: std::vec::Vec<_> = (0..2)
            .map(|cpu| {
                let (rcu, r) = (rcu.clone(), runs.clone());
                thread::spawn(move || {
                    rcu.call_rcu(
                        cpu,
                        Box::new(move || {
                            r[cpu].fetch_add(1, Ordering::Relaxed);
                        }),
                    );
                    assert!(
                        !rcu.has_ready_callbacks(cpu),
                        "CPU {cpu}: ready before its QS"
                    );
                    rcu.quiescent_state(cpu);
                    run_ready(&rcu, cpu)
                })
            })
            .collect();
        let mut ran = 0;
        for t in cpus {
            ran += t.join().unwrap();
        }
        for _ in 0..2 {
            rcu.quiescent_state(0);
            rcu.quiescent_state(1);
        }
        ran += run_ready(&rcu, 0) + run_ready(&rcu, 1);
        assert_eq!(ran, 2);
        assert_eq!(runs[0].load(Ordering::Relaxed), 1);
        assert_eq!(runs[1].load(Ordering::Relaxed), 1);
        assert!(!rcu.gp_in_progress());
        assert!(!rcu.qs_needed(0) && !rcu.qs_needed(1));
    });
}
