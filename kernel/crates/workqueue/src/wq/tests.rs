//! Unit tests of queueing, workers, flush, cancel, drain and destroy, driven step by step by
//! [`Driver`], which plays the kernel: it performs the actions (creating workers, waking
//! them) and runs workers one at a time.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use std::cell::Cell;

use super::*;
use crate::work::{WorkStruct, same_work};

pub(crate) type W = Arc<WorkStruct>;
pub(crate) type Wqs = Workqueues<W>;

std::thread_local! {
    static CPU: Cell<usize> = const { Cell::new(0) };
}

fn this_cpu() -> usize {
    CPU.with(Cell::get)
}

/// Makes the calling test thread "run on" `cpu`.
pub(crate) fn set_cpu(cpu: usize) {
    CPU.with(|c| c.set(cpu));
}

pub(crate) const TIMEOUT: u64 = 100;

pub(crate) fn wqs(nr_cpus: usize) -> Wqs {
    set_cpu(0);
    Workqueues::new(nr_cpus, TIMEOUT, this_cpu)
}

pub(crate) fn item() -> W {
    Arc::new(WorkStruct::new())
}

pub(crate) fn addr(w: &W) -> usize {
    Arc::as_ptr(w) as usize
}

/// The kernel, simulated: worker threads are entries in `ready` (woken or new, about to call
/// `worker_next`); a worker that went idle is not in it until woken.
#[derive(Default)]
pub(crate) struct Driver {
    pub ready: VecDeque<(PoolId, WorkerId)>,
    /// Workers executing a job the test holds.
    pub busy: Vec<(PoolId, WorkerId)>,
    pub log: Vec<Action>,
    pub fail_create: bool,
    pub now: u64,
    /// Finished instances: (item address, seq, pool).
    pub ran: Vec<(usize, u32, PoolId)>,
    pub timers: Vec<u64>,
}

impl Driver {
    pub fn perform(&mut self, wqs: &Wqs, actions: Actions) {
        for a in actions {
            self.log.push(a);
            match a {
                Action::CreateWorker { pool } => {
                    if self.fail_create {
                        let more = wqs.worker_create_failed(pool);
                        self.perform(wqs, more);
                    } else {
                        // As the kernel does: room and id first, then the thread.
                        let reserved = wqs.reserve_worker(pool).expect("memory");
                        let id = wqs.worker_created(pool);
                        assert_eq!(id, reserved, "the reserved id is the one given");
                        self.wake(pool, id);
                    }
                }
                Action::WakeWorker { pool, worker } | Action::Retire { pool, worker } => {
                    self.wake(pool, worker)
                }
                Action::ArmTimer { at } => self.timers.push(at),
                Action::ArmIdleTimer { .. }
                | Action::Mayday { .. }
                | Action::StopRescuer { .. } => {}
            }
        }
    }

    fn wake(&mut self, pool: PoolId, worker: WorkerId) {
        let w = (pool, worker);
        if !self.ready.contains(&w) && !self.busy.contains(&w) {
            self.ready.push_back(w);
        }
    }

    /// Lets the first ready worker take a job (and keeps it busy until [`finish`](Self::finish)).
    pub fn take(&mut self, wqs: &Wqs) -> Option<Job<W>> {
        while let Some((pool, worker)) = self.ready.pop_front() {
            let (next, actions) = wqs.worker_next(pool, worker, self.now);
            self.perform(wqs, actions);
            if let Next::Run(job) = next {
                self.busy.push((pool, worker));
                return Some(job);
            }
        }
        None
    }

    /// The job's function returned.
    pub fn finish(&mut self, wqs: &Wqs, job: Job<W>) {
        self.ran.push((addr(&job.work), job.seq, job.pool));
        let (pool, exec) = (job.pool, job.executor);
        let actions = wqs.worker_done(job);
        if let Executor::Worker(id) = exec {
            self.busy.retain(|&b| b != (pool, id));
            self.ready.push_front((pool, id));
        }
        self.perform(wqs, actions);
    }

    /// Runs one job to completion; `false` if no worker had anything to do.
    pub fn step(&mut self, wqs: &Wqs) -> bool {
        match self.take(wqs) {
            Some(job) => {
                self.finish(wqs, job);
                true
            }
            None => false,
        }
    }

    pub fn run_all(&mut self, wqs: &Wqs) {
        while self.step(wqs) {}
    }

    pub fn runs_of(&self, w: &W) -> usize {
        self.ran.iter().filter(|r| r.0 == addr(w)).count()
    }

    pub fn queue(&mut self, wqs: &Wqs, wq: WqId, w: &W) -> bool {
        let (queued, actions) = wqs.queue_work(wq, w.clone());
        self.perform(wqs, actions);
        queued
    }
}

#[test]
fn workqueues_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Wqs>();
    check::<Workqueues<&'static WorkStruct>>();
}

#[test]
fn item_runs_once_when_queued_twice_before_it_runs() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    assert!(d.queue(&wqs, SYSTEM_WQ, &w));
    assert!(
        !d.queue(&wqs, SYSTEM_WQ, &w),
        "second queueing of a pending item"
    );
    assert!(w.is_pending());
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 1);
    assert!(!w.is_pending());
    assert_eq!(w.seq(), 1);
    // Once it ran, it can be queued again.
    assert!(d.queue(&wqs, SYSTEM_WQ, &w));
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 2);
}

#[test]
fn first_queueing_creates_a_worker() {
    let wqs = wqs(2);
    let mut d = Driver::default();
    d.queue(&wqs, SYSTEM_WQ, &item());
    assert_eq!(d.log, vec![Action::CreateWorker { pool: PoolId(0) }]);
    d.run_all(&wqs);
    // The worker is idle now; the next item wakes it instead of creating another.
    d.queue(&wqs, SYSTEM_WQ, &item());
    assert_eq!(
        d.log[1],
        Action::WakeWorker {
            pool: PoolId(0),
            worker: WorkerId(0)
        }
    );
    assert_eq!(
        wqs.worker_name(PoolId(0), WorkerId(0)).to_string(),
        "kworker/0:0"
    );
}

#[test]
fn queue_work_on_targets_that_cpus_pool() {
    let wqs = wqs(4);
    let mut d = Driver::default();
    let w = item();
    let (queued, actions) = wqs.queue_work_on(2, SYSTEM_WQ, w.clone());
    assert!(queued);
    assert_eq!(
        actions.iter().next(),
        Some(Action::CreateWorker { pool: PoolId(4) })
    );
    d.perform(&wqs, actions);
    d.run_all(&wqs);
    assert_eq!(d.ran, vec![(addr(&w), 1, PoolId(4))]);
    // queue_work uses the caller's CPU.
    set_cpu(3);
    d.queue(&wqs, SYSTEM_WQ, &w);
    d.run_all(&wqs);
    assert_eq!(d.ran[1].2, PoolId(6));
    set_cpu(0);
}

#[test]
fn highpri_and_unbound_queues_use_their_pools() {
    let wqs = wqs(2);
    let mut d = Driver::default();
    let (hi, unb) = (item(), item());
    let (_, a) = wqs.queue_work_on(1, SYSTEM_HIGHPRI_WQ, hi.clone());
    d.perform(&wqs, a);
    let (_, a) = wqs.queue_work_on(1, SYSTEM_UNBOUND_WQ, unb.clone());
    d.perform(&wqs, a);
    d.run_all(&wqs);
    assert_eq!(d.ran[0].2, PoolId(3));
    assert_eq!(d.ran[1].2, PoolId(4));
    assert_eq!(
        wqs.worker_name(PoolId(3), WorkerId(0)).to_string(),
        "kworker/1:0H"
    );
    assert_eq!(
        wqs.worker_name(PoolId(4), WorkerId(0)).to_string(),
        "kworker/u4:0"
    );
}

#[test]
fn item_may_requeue_itself_while_running() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    d.queue(&wqs, SYSTEM_WQ, &w);
    let job = d.take(&wqs).unwrap();
    assert!(
        !w.is_pending(),
        "PENDING is cleared before the function runs"
    );
    // The function queues its own item: a new instance.
    let (queued, a) = wqs.queue_work_from(&job, SYSTEM_WQ, w.clone());
    assert!(queued);
    d.perform(&wqs, a);
    assert!(!d.queue(&wqs, SYSTEM_WQ, &w), "the new instance is pending");
    d.finish(&wqs, job);
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 2);
    assert_eq!(w.seq(), 2);
}

#[test]
fn item_queued_on_another_cpu_while_running_runs_after_it_on_its_pool() {
    let wqs = wqs(2);
    let mut d = Driver::default();
    let (w, other) = (item(), item());
    d.queue(&wqs, SYSTEM_WQ, &w);
    let job = d.take(&wqs).unwrap();
    // It sleeps: the pool gets a second worker.
    let a = wqs.worker_sleeping(PoolId(0), WorkerId(0));
    d.perform(&wqs, a);
    // Queued from CPU 1 while it runs on CPU 0: goes to CPU 0's pool, behind it.
    let (queued, a) = wqs.queue_work_on(1, SYSTEM_WQ, w.clone());
    assert!(queued);
    d.perform(&wqs, a);
    d.queue(&wqs, SYSTEM_WQ, &other);
    // The second worker sets the item aside and runs `other`: never two instances at once.
    let j2 = d.take(&wqs).unwrap();
    assert!(same_work(&j2.work, &other));
    assert_eq!(wqs.pool_stats()[0].held, 1, "the held instance");
    d.finish(&wqs, j2);
    assert!(
        d.take(&wqs).is_none(),
        "nothing may run before the first instance returns"
    );
    wqs.worker_waking(PoolId(0), WorkerId(0));
    d.finish(&wqs, job);
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 2);
    assert!(d.ran.iter().all(|r| r.2 == PoolId(0)));
}

#[test]
fn sleeping_item_does_not_stall_the_next_one() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let (sleeper, next) = (item(), item());
    d.queue(&wqs, SYSTEM_WQ, &sleeper);
    d.queue(&wqs, SYSTEM_WQ, &next);
    let job = d.take(&wqs).unwrap();
    assert!(same_work(&job.work, &sleeper));
    // While it runs without sleeping, nobody else is woken (one running worker per CPU).
    assert!(d.ready.is_empty());
    assert_eq!(d.log.len(), 1);
    // It blocks: the pool asks for a second worker, which runs `next`.
    let a = wqs.worker_sleeping(PoolId(0), WorkerId(0));
    assert_eq!(
        a.iter().next(),
        Some(Action::CreateWorker { pool: PoolId(0) })
    );
    d.perform(&wqs, a);
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&next), 1);
    let s = wqs.pool_stats()[0];
    assert_eq!((s.busy, s.running, s.idle), (1, 0, 1));
    wqs.worker_waking(PoolId(0), WorkerId(0));
    d.finish(&wqs, job);
    d.run_all(&wqs);
    assert_eq!(wqs.pool_stats()[0].idle, 2);
}

#[test]
fn unbound_pool_gives_every_pending_item_a_worker() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let items: Vec<W> = (0..3).map(|_| item()).collect();
    for w in &items {
        d.queue(&wqs, SYSTEM_UNBOUND_WQ, w);
    }
    let jobs: Vec<_> = (0..3).map(|_| d.take(&wqs).unwrap()).collect();
    assert_eq!(wqs.pool_stats()[2].busy, 3, "three workers, none sleeping");
    for j in jobs {
        d.finish(&wqs, j);
    }
}

#[test]
fn max_active_keeps_extra_items_inactive() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let wq = wqs.alloc_workqueue("one", WqFlags::empty(), 1).unwrap();
    let (a, b) = (item(), item());
    d.queue(&wqs, wq, &a);
    d.queue(&wqs, wq, &b);
    let s = wqs.wq_stats()[wq.0 as usize];
    assert_eq!((s.active, s.inactive), (1, 1));
    let job = d.take(&wqs).unwrap();
    let a2 = wqs.worker_sleeping(PoolId(0), WorkerId(0));
    d.perform(&wqs, a2);
    assert!(d.take(&wqs).is_none(), "b waits for a: max_active is 1");
    wqs.worker_waking(PoolId(0), WorkerId(0));
    d.finish(&wqs, job);
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&b), 1);
    assert_eq!(wqs.wq_stats()[wq.0 as usize].executed, 2);
}

#[test]
fn flush_waits_for_a_running_item() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    d.queue(&wqs, SYSTEM_WQ, &w);
    let mut job = Some(d.take(&wqs).unwrap());
    let mut waits = 0;
    let waited = wqs.flush_work(&w, &mut || {
        waits += 1;
        if waits == 3 {
            d.finish(&wqs, job.take().unwrap());
        }
    });
    assert!(waited);
    assert_eq!(waits, 3, "returned only once the instance finished");
    assert_eq!(d.runs_of(&w), 1);
    assert!(!wqs.flush_work(&w, &mut || panic!("nothing to wait for")));
}

#[test]
fn flush_waits_for_a_requeued_instance_but_not_later_ones() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    d.queue(&wqs, SYSTEM_WQ, &w);
    let job = d.take(&wqs).unwrap();
    wqs.queue_work_from(&job, SYSTEM_WQ, w.clone());
    d.finish(&wqs, job);
    // Instance 2 is pending: flush waits for it, not for the instance 3 queued meanwhile.
    let mut seen = Vec::new();
    wqs.flush_work(&w, &mut || {
        let job = d.take(&wqs).unwrap();
        seen.push(job.seq);
        if job.seq == 2 {
            wqs.queue_work_from(&job, SYSTEM_WQ, w.clone());
        }
        d.finish(&wqs, job);
    });
    assert_eq!(seen, vec![2]);
    assert!(w.is_pending(), "instance 3 still pending");
}

#[test]
fn cancel_of_a_pending_item_stops_it() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    d.queue(&wqs, SYSTEM_WQ, &w);
    let (was, _) = wqs.cancel_work_sync(&w, &mut || panic!("nothing runs"));
    assert!(was);
    assert!(!w.is_pending() && !w.is_canceling());
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&w), 0);
    assert!(!wqs.cancel_work(&w).0, "not pending any more");
    assert_eq!(wqs.wq_stats()[0].in_flight, 0);
}

#[test]
fn cancel_of_a_running_item_waits_and_refuses_requeueing() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let w = item();
    d.queue(&wqs, SYSTEM_WQ, &w);
    let mut job = Some(d.take(&wqs).unwrap());
    let mut waits = 0;
    let (was, _) = wqs.cancel_work_sync(&w, &mut || {
        waits += 1;
        // The function tries to re-queue itself during the cancel: refused.
        let j = job.take().unwrap();
        assert!(!wqs.queue_work_from(&j, SYSTEM_WQ, w.clone()).0);
        d.finish(&wqs, j);
    });
    assert!(!was, "it was running, not pending");
    assert_eq!(waits, 1);
    assert_eq!(d.runs_of(&w), 1);
    assert!(!w.is_pending());
    assert!(
        d.queue(&wqs, SYSTEM_WQ, &w),
        "queueing works again after the cancel"
    );
}

#[test]
fn cancel_of_held_and_inactive_items() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let wq = wqs.alloc_workqueue("two", WqFlags::empty(), 2).unwrap();
    let (a, b, c) = (item(), item(), item());
    d.queue(&wqs, wq, &a);
    let job = d.take(&wqs).unwrap();
    d.perform(&wqs, wqs.worker_sleeping(PoolId(0), WorkerId(0)));
    d.queue(&wqs, wq, &a); // behind the running instance
    d.queue(&wqs, wq, &b); // beyond max_active (a counts twice)
    d.queue(&wqs, wq, &c);
    assert_eq!(wqs.wq_stats()[wq.0 as usize].inactive, 2);
    let j = d.take(&wqs);
    assert!(j.is_none(), "a is held, b and c inactive");
    assert!(wqs.cancel_work(&b).0, "inactive");
    let (was, actions) = wqs.cancel_work(&a);
    assert!(was, "held");
    d.perform(&wqs, actions);
    // a's slot went to c.
    let jc = d.take(&wqs).unwrap();
    assert!(same_work(&jc.work, &c));
    d.finish(&wqs, jc);
    wqs.worker_waking(PoolId(0), WorkerId(0));
    d.finish(&wqs, job);
    d.run_all(&wqs);
    assert_eq!((d.runs_of(&a), d.runs_of(&b), d.runs_of(&c)), (1, 0, 1));
    assert_eq!(wqs.wq_stats()[wq.0 as usize].in_flight, 0);
}

#[test]
fn flush_workqueue_waits_for_items_queued_before() {
    let wqs = wqs(2);
    let mut d = Driver::default();
    let wq = wqs.alloc_workqueue("q", WqFlags::empty(), 0).unwrap();
    let before: Vec<W> = (0..3).map(|_| item()).collect();
    for (i, w) in before.iter().enumerate() {
        let (_, a) = wqs.queue_work_on(i % 2, wq, w.clone());
        d.perform(&wqs, a);
    }
    let late = item();
    let mut first = true;
    wqs.flush_workqueue(wq, &mut || {
        if first {
            // Queued after the flush began: a newer color, not waited for.
            first = false;
            d.queue(&wqs, wq, &late);
        }
        let job = d.take(&wqs).expect("flush waits for nothing");
        d.finish(&wqs, job);
    });
    for w in &before {
        assert_eq!(d.runs_of(w), 1);
    }
    // `late` may or may not have run (FIFO order put it last in its pool).
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&late), 1);
}

#[test]
fn flush_of_an_idle_workqueue_returns_at_once() {
    let wqs = wqs(1);
    for _ in 0..3 * NR_COLORS {
        wqs.flush_workqueue(SYSTEM_WQ, &mut || panic!("idle"));
    }
}

#[test]
fn mem_reclaim_items_run_via_the_rescuer_when_worker_creation_fails() {
    let wqs = wqs(1);
    let mut d = Driver {
        fail_create: true,
        ..Driver::default()
    };
    let wq = wqs
        .alloc_workqueue("reclaim", WqFlags::WQ_MEM_RECLAIM, 0)
        .unwrap();
    let (r, plain) = (item(), item());
    d.queue(&wqs, SYSTEM_WQ, &plain);
    assert!(
        !d.log.contains(&Action::Mayday { pool: PoolId(0) }),
        "no reclaim item yet"
    );
    assert!(wqs.rescuer_next(wq).is_none());
    let (_, a) = wqs.queue_work(wq, r.clone());
    // No worker is being created: ask the kernel again (its retry timer).
    d.perform(&wqs, a);
    d.perform(&wqs, wqs.pool_kick(PoolId(0)));
    assert!(d.log.contains(&Action::Mayday { pool: PoolId(0) }));
    let job = wqs.rescuer_next(wq).expect("the rescuer takes its item");
    assert!(same_work(&job.work, &r));
    assert_eq!(job.executor, Executor::Rescuer);
    assert!(
        wqs.rescuer_next(SYSTEM_WQ).is_none(),
        "system_wq has no rescuer"
    );
    assert!(wqs.rescuer_next(wq).is_none(), "nothing else of its queue");
    d.finish(&wqs, job);
    assert_eq!(d.runs_of(&r), 1);
    assert_eq!(d.runs_of(&plain), 0, "the plain item waits for a worker");
    d.fail_create = false;
    d.perform(&wqs, wqs.pool_kick(PoolId(0)));
    d.run_all(&wqs);
    assert_eq!(d.runs_of(&plain), 1);
}

#[test]
fn destroy_drains_first() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let wq = wqs
        .alloc_workqueue("doomed", WqFlags::WQ_MEM_RECLAIM, 0)
        .unwrap();
    let (a, b, outsider) = (item(), item(), item());
    d.queue(&wqs, wq, &a);
    d.queue(&wqs, wq, &b);
    let mut chained = 0;
    let actions = wqs.destroy_workqueue(wq, &mut || {
        // Draining: an outsider may not queue, the queue's own item may.
        assert!(!wqs.queue_work(wq, outsider.clone()).0);
        let job = d.take(&wqs).unwrap();
        if chained < 2 && same_work(&job.work, &a) {
            chained += 1;
            assert!(wqs.queue_work_from(&job, wq, a.clone()).0);
        }
        d.finish(&wqs, job);
    });
    assert_eq!(actions.iter().next(), Some(Action::StopRescuer { wq }));
    assert_eq!(
        (d.runs_of(&a), d.runs_of(&b), d.runs_of(&outsider)),
        (3, 1, 0)
    );
    assert!(!wqs.queue_work(wq, a.clone()).0, "destroyed");
    assert!(!a.is_pending());
    assert!(wqs.wq_stats()[wq.0 as usize].destroyed);
}

#[test]
fn drain_takes_chained_items_on_any_cpu_and_refuses_outsiders() {
    let wqs = wqs(2);
    let mut d = Driver::default();
    let wq = wqs.alloc_workqueue("drained", WqFlags::empty(), 0).unwrap();
    let other = wqs.alloc_workqueue("other", WqFlags::empty(), 0).unwrap();
    let (a, outsider) = (item(), item());
    d.queue(&wqs, wq, &a);
    let mut runs = 0;
    wqs.drain_workqueue(wq, &mut || {
        let stats = wqs.wq_stats()[wq.0 as usize];
        assert!(stats.draining, "the stats say the queue drains");
        assert!(!wqs.queue_work(wq, outsider.clone()).0, "an outsider");
        assert!(!wqs.queue_work_on(1, wq, outsider.clone()).0, "an outsider");
        let Some(job) = d.take(&wqs) else { return };
        runs += 1;
        if runs < 6 {
            // Alternately on this CPU and on CPU 1, from the queue's own item.
            let (ok, actions) = if runs % 2 == 0 {
                wqs.queue_work_from(&job, wq, a.clone())
            } else {
                wqs.queue_work_on_from(&job, 1, wq, a.clone())
            };
            assert!(ok, "chained queueing {runs} refused");
            d.perform(&wqs, actions);
        }
        // An item of another queue may not chain onto the draining one.
        let foreign = Job { wq: other, ..job };
        assert!(!wqs.queue_work_on_from(&foreign, 0, wq, outsider.clone()).0);
        let job = Job { wq, ..foreign };
        d.finish(&wqs, job);
    });
    assert_eq!(runs, 6, "drain returned after the whole chain");
    assert_eq!(d.runs_of(&outsider), 0);
    assert!(!wqs.wq_stats()[wq.0 as usize].draining);
    assert!(
        wqs.queue_work(wq, outsider.clone()).0,
        "drained: open again"
    );
}

#[test]
fn the_idle_timeout_can_be_changed() {
    let wqs = wqs(1);
    assert_eq!(wqs.idle_timeout_of_workers(), TIMEOUT);
    wqs.set_idle_timeout(7);
    assert_eq!(wqs.idle_timeout_of_workers(), 7);
    let mut d = Driver::default();
    // Five workers, each asleep in an item, then all idle at time 10.
    let items: Vec<W> = (0..5).map(|_| item()).collect();
    let mut jobs = Vec::new();
    for w in &items {
        d.queue(&wqs, SYSTEM_WQ, w);
        let job = d.take(&wqs).unwrap();
        let (pool, Executor::Worker(id)) = (job.pool, job.executor) else {
            unreachable!()
        };
        d.perform(&wqs, wqs.worker_sleeping(pool, id));
        jobs.push(job);
    }
    d.now = 10;
    for job in jobs {
        d.finish(&wqs, job);
    }
    d.run_all(&wqs);
    let armed: Vec<Action> = d
        .log
        .iter()
        .copied()
        .filter(|a| matches!(a, Action::ArmIdleTimer { .. }))
        .collect();
    assert_eq!(
        armed,
        [Action::ArmIdleTimer {
            pool: PoolId(0),
            at: 17
        }],
        "armed with the new timeout"
    );
    let retired = wqs.idle_timeout(PoolId(0), 17);
    assert!(
        retired.iter().any(|a| matches!(a, Action::Retire { .. })),
        "retired after the new timeout: {retired:?}"
    );
}

#[test]
fn alloc_workqueue_checks_max_active() {
    let wqs = wqs(1);
    assert_eq!(
        wqs.alloc_workqueue("big", WqFlags::empty(), WQ_MAX_ACTIVE + 1),
        Err(AllocError::MaxActive)
    );
    let id = wqs.alloc_workqueue("dfl", WqFlags::empty(), 0).unwrap();
    assert_eq!(wqs.wq_stats()[id.0 as usize].max_active, WQ_DFL_ACTIVE);
}

#[test]
fn dump_shows_pools_workers_and_queues() {
    let wqs = wqs(1);
    let mut d = Driver::default();
    let (a, b) = (item(), item());
    d.queue(&wqs, SYSTEM_WQ, &a);
    d.queue(&wqs, SYSTEM_WQ, &b);
    let job = d.take(&wqs).unwrap();
    let mut out = String::new();
    wqs.dump(&mut out).unwrap();
    std::println!("{out}");
    assert!(out.contains("kworker/0:0"));
    assert!(out.contains("busy"));
    assert!(out.contains(&std::format!("running {:p}", Arc::as_ptr(&a))));
    assert!(out.contains(&std::format!("pending: {:p}", Arc::as_ptr(&b))));
    assert!(out.contains("events_unbound"));
    d.finish(&wqs, job);
    d.run_all(&wqs);
    let mut out = String::new();
    wqs.dump(&mut out).unwrap();
    assert!(out.contains("idle"));
    let line = out.lines().find(|l| l.starts_with("events ")).unwrap();
    assert!(line.contains(" 2 "), "executed count in {line:?}");
}

#[test]
fn reserve_worker_names_the_id_worker_created_gives_and_makes_room_for_it() {
    let wqs = wqs(1);
    let pool = PoolId(0);
    for expect in 0..3u16 {
        assert_eq!(wqs.reserve_worker(pool), Ok(WorkerId(expect)));
        {
            let st = wqs.lock();
            let workers = &st.pools[0].workers;
            assert!(
                workers.capacity() > workers.len(),
                "room made: worker_created does not allocate"
            );
        }
        assert_eq!(wqs.worker_created(pool), WorkerId(expect));
    }
    // A retired worker's id is the next one given, without growing the pool's table.
    wqs.lock().pools[0].remove_worker(WorkerId(1));
    assert_eq!(wqs.reserve_worker(pool), Ok(WorkerId(1)));
    assert_eq!(wqs.worker_created(pool), WorkerId(1));
    assert_eq!(wqs.lock().pools[0].workers.len(), 3);
}
