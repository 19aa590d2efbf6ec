//! Unit tests of concurrency management: when a pool wakes, creates and retires workers.

use alloc::sync::Arc;

use super::*;
use crate::list::VecList;
use crate::work::WorkStruct;

type P = Pool<Arc<WorkStruct>, VecList<Arc<WorkStruct>>>;

fn bound() -> P {
    Pool::new(PoolId(0), Some(0), false)
}

fn push(p: &mut P) {
    p.worklist.push_back(Arc::new(WorkStruct::new()));
}

#[test]
fn kick_creates_once_then_wakes_idle() {
    let mut p = bound();
    assert_eq!(p.kick(), None, "no work");
    push(&mut p);
    assert_eq!(p.kick(), Some(Action::CreateWorker { pool: PoolId(0) }));
    assert_eq!(p.kick(), None, "a creation is outstanding");
    let w = p.worker_created();
    assert_eq!(p.nr_running, 1);
    assert_eq!(p.kick(), None, "a worker runs");
    p.worklist.pop_front();
    assert_eq!(p.worker_idle(w, 5, 100), None);
    assert_eq!(p.nr_running, 0);
    push(&mut p);
    assert_eq!(
        p.kick(),
        Some(Action::WakeWorker {
            pool: PoolId(0),
            worker: w
        })
    );
    assert_eq!(p.nr_running, 1);
}

#[test]
fn sleeping_worker_gets_a_replacement_only_if_work_is_pending() {
    let mut p = bound();
    let w = p.worker_created();
    assert_eq!(p.worker_sleeping(w), None, "nothing pending");
    assert_eq!(p.nr_running, 0);
    p.worker_waking(w);
    assert_eq!(p.nr_running, 1);
    push(&mut p);
    assert_eq!(
        p.worker_sleeping(w),
        Some(Action::CreateWorker { pool: PoolId(0) })
    );
    assert_eq!(p.worker(w).state, WorkerState::Blocked);
    assert_eq!(p.worker_sleeping(w), None, "already blocked");
}

#[test]
fn unbound_pool_is_not_concurrency_managed() {
    let mut p: P = Pool::new(PoolId(2), None, false);
    push(&mut p);
    push(&mut p);
    assert!(matches!(p.kick(), Some(Action::CreateWorker { .. })));
    p.worker_created();
    // One starting worker covers one item; the second item needs another.
    assert!(matches!(p.kick(), Some(Action::CreateWorker { .. })));
}

#[test]
fn idle_workers_beyond_two_retire_after_the_timeout() {
    let mut p = bound();
    let ids: alloc::vec::Vec<_> = (0..5).map(|_| p.worker_created()).collect();
    let mut armed = alloc::vec::Vec::new();
    for (t, &w) in ids.iter().enumerate() {
        armed.extend(p.worker_idle(w, t as u64, 100));
    }
    // The third idle worker makes too many: the timer is armed once.
    assert_eq!(
        armed,
        [Action::ArmIdleTimer {
            pool: PoolId(0),
            at: 102
        }]
    );
    assert!(p.too_many_workers());
    // Too early: nothing retires, the timer is re-armed for the oldest idle worker.
    let a = p.idle_timeout(50, 100);
    assert_eq!(
        a.iter().collect::<alloc::vec::Vec<_>>(),
        [Action::ArmIdleTimer {
            pool: PoolId(0),
            at: 100
        }]
    );
    // At 102 the three longest idle are past the timeout, and all three must go.
    let a: alloc::vec::Vec<_> = p.idle_timeout(102, 100).iter().collect();
    assert_eq!(
        a,
        [
            Action::Retire {
                pool: PoolId(0),
                worker: ids[0]
            },
            Action::Retire {
                pool: PoolId(0),
                worker: ids[1]
            },
            Action::Retire {
                pool: PoolId(0),
                worker: ids[2]
            },
        ]
    );
    assert_eq!(p.count(WorkerState::Idle), MIN_IDLE);
    assert!(!p.too_many_workers());
    p.remove_worker(ids[0]);
    assert_eq!(p.worker_created(), ids[0], "ids are reused");
}
