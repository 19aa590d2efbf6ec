//! Loom models of the races the pending bit and the CANCELING bit exist for: two queueings
//! of one item, queue against cancel, cancel against a running instance, flush against an
//! item that re-queues itself. Threads are queuers, cancelers, flushers and workers; loom
//! runs every interleaving of their lock and atomic operations.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p sheaf-workqueue --release loom`.

use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use loom::thread;
use std::sync::Arc;

use crate::{Next, PoolId, SYSTEM_WQ, WorkStruct, WorkerId, Workqueues};

type W = Arc<WorkStruct>;
type Wqs = Workqueues<W>;

fn setup(workers: usize) -> (Arc<Wqs>, W) {
    let wqs = Workqueues::new(1, 100, || 0);
    for _ in 0..workers {
        wqs.worker_created(PoolId(0));
    }
    (Arc::new(wqs), Arc::new(WorkStruct::new()))
}

/// Runs worker `id` until it finds nothing to do; returns the instances it ran.
fn drain(wqs: &Wqs, id: u16) -> usize {
    let mut n = 0;
    while let (Next::Run(job), _) = wqs.worker_next(PoolId(0), WorkerId(id), 0) {
        wqs.worker_done(job);
        n += 1;
    }
    n
}

/// Runs a model with a bounded number of preemptions and reports how many interleavings loom
/// explored.
fn check(name: &str, bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let iterations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = bound;
    let it = iterations.clone();
    builder.check(move || {
        it.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    std::eprintln!(
        "{name}: loom explored {} interleavings",
        iterations.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Two CPUs queue the same idle item at once: exactly one call returns `true`, and the item
/// runs exactly once.
#[test]
fn loom_pending_bit_two_queuers() {
    check("pending bit", None, || {
        let (wqs, w) = setup(1);
        let queuers: std::vec::Vec<_> = (0..2)
            .map(|_| {
                let (wqs, w) = (wqs.clone(), w.clone());
                thread::spawn(move || wqs.queue_work(SYSTEM_WQ, w).0)
            })
            .collect();
        let wins = queuers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&q| q)
            .count();
        assert_eq!(wins, 1, "exactly one queueing sets PENDING");
        assert_eq!(w.seq(), 1);
        assert_eq!(drain(&wqs, 0), 1);
        assert!(!w.is_pending());
    });
}

/// A queuer, a canceler and a worker race on one item. Whatever the order: if the queueing
/// succeeded, the item either ran exactly once or the cancel returned `true` and it never
/// ran, never both and never neither; if the queueing was refused (CANCELING), nothing ran.
#[test]
fn loom_queue_vs_cancel() {
    check("queue vs cancel", None, || {
        let (wqs, w) = setup(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let queuer = {
            let (wqs, w) = (wqs.clone(), w.clone());
            thread::spawn(move || wqs.queue_work(SYSTEM_WQ, w).0)
        };
        let canceler = {
            let (wqs, w) = (wqs.clone(), w.clone());
            thread::spawn(move || wqs.cancel_work_sync(&w, &mut thread::yield_now).0)
        };
        let worker = {
            let (wqs, runs) = (wqs.clone(), runs.clone());
            thread::spawn(move || {
                if let (Next::Run(job), _) = wqs.worker_next(PoolId(0), WorkerId(0), 0) {
                    runs.fetch_add(1, Ordering::Relaxed);
                    wqs.worker_done(job);
                }
            })
        };
        let queued = queuer.join().unwrap();
        let canceled = canceler.join().unwrap();
        worker.join().unwrap();
        let ran = runs.load(Ordering::Relaxed) + drain(&wqs, 0);
        if queued {
            assert_eq!(
                ran + usize::from(canceled),
                1,
                "ran {ran}, canceled {canceled}"
            );
        } else {
            assert_eq!((ran, canceled), (0, false));
        }
        assert!(!w.is_pending() && !w.is_canceling());
        assert_eq!(wqs.wq_stats()[0].in_flight, 0);
    });
}

/// An instance is running when a cancel starts: `cancel_work_sync` returns only after it
/// finished, and refuses the item's attempt to re-queue itself meanwhile.
#[test]
fn loom_cancel_waits_for_running_instance() {
    check("cancel vs running", None, || {
        let (wqs, w) = setup(1);
        assert!(wqs.queue_work(SYSTEM_WQ, w.clone()).0);
        let (Next::Run(job), _) = wqs.worker_next(PoolId(0), WorkerId(0), 0) else {
            panic!("queued item not taken");
        };
        let finished = Arc::new(AtomicBool::new(false));
        let worker = {
            let (wqs, w, finished) = (wqs.clone(), w.clone(), finished.clone());
            thread::spawn(move || {
                // The function re-queues itself: refused iff the cancel has begun.
                let requeued = wqs.queue_work_from(&job, SYSTEM_WQ, w).0;
                finished.store(true, Ordering::Release);
                wqs.worker_done(job);
                requeued
            })
        };
        let canceler = {
            let (wqs, w, finished) = (wqs.clone(), w.clone(), finished.clone());
            thread::spawn(move || {
                let (was, _) = wqs.cancel_work_sync(&w, &mut thread::yield_now);
                assert!(finished.load(Ordering::Acquire), "cancel returned mid-run");
                assert!(!w.is_pending(), "re-queued during the cancel");
                was
            })
        };
        let requeued = worker.join().unwrap();
        let was_pending = canceler.join().unwrap();
        // A re-queueing before the cancel began is stolen by it (and reported).
        assert_eq!(was_pending, requeued);
        assert_eq!(drain(&wqs, 0), 0);
    });
}

/// A worker runs an item that re-queues itself once; another CPU queues it and flushes it,
/// acting as a second worker of the pool while it waits. `flush_work` returns only after the
/// instance it saw queued (`seq` at the flush) has finished.
#[test]
fn loom_flush_vs_requeue() {
    check("flush vs re-queue", None, || {
        let (wqs, w) = setup(2);
        assert!(wqs.queue_work(SYSTEM_WQ, w.clone()).0);
        let completed = Arc::new(AtomicU32::new(0));
        let run = |wqs: &Wqs, id: u16, completed: &AtomicU32| -> bool {
            match wqs.worker_next(PoolId(0), WorkerId(id), 0).0 {
                Next::Run(job) => {
                    if job.seq == 1 {
                        wqs.queue_work_from(&job, SYSTEM_WQ, job.work.clone());
                    }
                    let prev = completed.swap(job.seq, Ordering::Release);
                    assert!(prev < job.seq, "instances out of order");
                    wqs.worker_done(job);
                    true
                }
                _ => false,
            }
        };
        let worker = {
            let (wqs, completed) = (wqs.clone(), completed.clone());
            thread::spawn(move || while run(&wqs, 0, &completed) {})
        };
        let flusher = {
            let (wqs, w, completed) = (wqs.clone(), w.clone(), completed.clone());
            thread::spawn(move || {
                wqs.queue_work(SYSTEM_WQ, w.clone());
                let seq = w.seq();
                wqs.flush_work(&w, &mut || {
                    run(&wqs, 1, &completed);
                    thread::yield_now();
                });
                let done = completed.load(Ordering::Acquire);
                assert!(
                    done >= seq,
                    "flush returned with instance {seq} unfinished ({done})"
                );
            })
        };
        worker.join().unwrap();
        flusher.join().unwrap();
        while run(&wqs, 0, &completed) || run(&wqs, 1, &completed) {}
        assert_eq!(completed.load(Ordering::Relaxed), w.seq());
        assert!(!w.is_pending());
    });
}
