//! Model-based property test: random queueings (plain, on a CPU, delayed, `mod_delayed_work`,
//! from the item itself), cancels, timer expiries, worker steps, sleeps and wake-ups, and
//! failed worker creations, on two CPUs and four workqueues, checked against a reference model
//! that knows only Linux's rules:
//!
//! - queueing returns `true` exactly when the item was not pending; cancel returns `true`
//!   exactly when it was;
//! - a worker gets an item only if it was pending, and never while another instance of the
//!   same item runs (non-reentrancy); a `max_active = 1` queue never runs two items in a pool;
//! - no stall: a per-CPU pool with pending work always has a running worker (woken or new),
//!   whatever sleeps;
//! - nothing is lost: once the timers fire and the sleepers wake, every successful queueing
//!   has either run once or been canceled.
#![cfg(not(loom))]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use proptest::prelude::*;
use workqueue::{
    Action, Actions, Executor, Job, Next, PoolId, SYSTEM_UNBOUND_WQ, SYSTEM_WQ, WorkStruct,
    WorkerId, Workqueues, WqFlags, WqId,
};

type W = Arc<WorkStruct>;
const ITEMS: usize = 4;
const CPUS: usize = 2;

#[derive(Clone, Debug)]
enum Op {
    Queue {
        item: usize,
        cpu: usize,
        wq: usize,
    },
    QueueDelayed {
        item: usize,
        wq: usize,
        delay: u64,
    },
    ModDelayed {
        item: usize,
        delay: u64,
    },
    Cancel(usize),
    Tick(u64),
    /// A ready worker (the n-th, modulo) looks for work.
    Take(usize),
    /// A running job (the n-th, modulo) returns, re-queueing its item if asked.
    Finish {
        job: usize,
        requeue: bool,
    },
    /// The worker of a running job blocks, or wakes.
    Sleep(usize),
    Wake(usize),
    /// Worker creations fail from now on, or succeed again.
    FailCreate(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let item = 0..ITEMS;
    prop_oneof![
        4 => (item.clone(), 0..CPUS, 0..4usize).prop_map(|(item, cpu, wq)| Op::Queue { item, cpu, wq }),
        1 => (item.clone(), 0..4usize, 1..20u64).prop_map(|(item, wq, delay)| Op::QueueDelayed { item, wq, delay }),
        1 => (item.clone(), 0..20u64).prop_map(|(item, delay)| Op::ModDelayed { item, delay }),
        2 => item.prop_map(Op::Cancel),
        1 => (1..15u64).prop_map(Op::Tick),
        4 => (0..4usize).prop_map(Op::Take),
        4 => (0..4usize, any::<bool>()).prop_map(|(job, requeue)| Op::Finish { job, requeue }),
        2 => (0..4usize).prop_map(Op::Sleep),
        2 => (0..4usize).prop_map(Op::Wake),
        1 => any::<bool>().prop_map(Op::FailCreate),
    ]
}

struct Running {
    job: Job<W>,
    blocked: bool,
}

struct Model {
    wqs: Workqueues<W>,
    wq_ids: [WqId; 4],
    items: Vec<W>,
    now: u64,
    fail_create: bool,
    /// Workers that will call `worker_next` (woken or new).
    ready: VecDeque<(PoolId, WorkerId)>,
    running: Vec<Running>,
    /// Delayed items: their deadline, as the kernel's timers.
    timers: HashMap<usize, u64>,
    /// Pools that sent a mayday.
    mayday: bool,
    // The reference model.
    pending: [bool; ITEMS],
    queued: [u32; ITEMS],
    ran: [u32; ITEMS],
    canceled: [u32; ITEMS],
}

impl Model {
    fn new() -> Self {
        let wqs = Workqueues::new(CPUS, 50, || 0);
        let limited = wqs.alloc_workqueue("limited", WqFlags::empty(), 1).unwrap();
        let reclaim = wqs
            .alloc_workqueue("reclaim", WqFlags::WQ_MEM_RECLAIM | WqFlags::WQ_HIGHPRI, 0)
            .unwrap();
        Self {
            wqs,
            wq_ids: [SYSTEM_WQ, SYSTEM_UNBOUND_WQ, limited, reclaim],
            items: (0..ITEMS).map(|_| Arc::new(WorkStruct::new())).collect(),
            now: 0,
            fail_create: false,
            ready: VecDeque::new(),
            running: Vec::new(),
            timers: HashMap::new(),
            mayday: false,
            pending: [false; ITEMS],
            queued: [0; ITEMS],
            ran: [0; ITEMS],
            canceled: [0; ITEMS],
        }
    }

    fn index(&self, w: &W) -> usize {
        self.items.iter().position(|i| Arc::ptr_eq(i, w)).unwrap()
    }

    fn perform(&mut self, item: Option<usize>, actions: Actions) {
        for a in actions {
            match a {
                Action::CreateWorker { pool } => {
                    if self.fail_create {
                        let more = self.wqs.worker_create_failed(pool);
                        self.perform(None, more);
                    } else {
                        // As the kernel does: room and id first, then the thread.
                        let reserved = self.wqs.reserve_worker(pool).expect("memory");
                        let id = self.wqs.worker_created(pool);
                        assert_eq!(id, reserved, "the reserved id is the one given");
                        self.ready.push_back((pool, id));
                    }
                }
                Action::WakeWorker { pool, worker } | Action::Retire { pool, worker } => {
                    if !self.ready.contains(&(pool, worker)) {
                        self.ready.push_back((pool, worker));
                    }
                }
                Action::ArmTimer { at } => {
                    self.timers.insert(item.unwrap(), at);
                }
                Action::Mayday { .. } => self.mayday = true,
                Action::ArmIdleTimer { .. } | Action::StopRescuer { .. } => {}
            }
        }
    }

    fn queued_result(&mut self, i: usize, queued: bool) -> Result<(), TestCaseError> {
        prop_assert_eq!(queued, !self.pending[i], "queue_work of item {}", i);
        if queued {
            self.pending[i] = true;
            self.queued[i] += 1;
        }
        Ok(())
    }

    fn start(&mut self, job: Job<W>) -> Result<(), TestCaseError> {
        let i = self.index(&job.work);
        prop_assert!(self.pending[i], "item {} ran without being pending", i);
        prop_assert!(
            !self
                .running
                .iter()
                .any(|r| Arc::ptr_eq(&r.job.work, &job.work)),
            "item {} runs twice at once",
            i
        );
        if job.wq == self.wq_ids[2] {
            let same_pool = self
                .running
                .iter()
                .filter(|r| r.job.wq == job.wq && r.job.pool == job.pool)
                .count();
            prop_assert_eq!(same_pool, 0, "max_active 1 exceeded");
        }
        self.pending[i] = false;
        self.running.push(Running {
            job,
            blocked: false,
        });
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Queue { item, cpu, wq } => {
                let (q, a) = self
                    .wqs
                    .queue_work_on(cpu, self.wq_ids[wq], self.items[item].clone());
                self.perform(Some(item), a);
                self.queued_result(item, q)?;
            }
            Op::QueueDelayed { item, wq, delay } => {
                let (q, a) = self.wqs.queue_delayed_work(
                    self.wq_ids[wq],
                    self.items[item].clone(),
                    delay,
                    self.now,
                );
                self.perform(Some(item), a);
                self.queued_result(item, q)?;
            }
            Op::ModDelayed { item, delay } => {
                let (was, a) =
                    self.wqs
                        .mod_delayed_work(SYSTEM_WQ, self.items[item].clone(), delay, self.now);
                self.perform(Some(item), a);
                prop_assert_eq!(was, self.pending[item]);
                if !was {
                    self.pending[item] = true;
                    self.queued[item] += 1;
                }
            }
            Op::Cancel(item) => {
                let (was, a) = self.wqs.cancel_work(&self.items[item]);
                self.perform(None, a);
                prop_assert_eq!(was, self.pending[item], "cancel of item {}", item);
                if was {
                    self.pending[item] = false;
                    self.canceled[item] += 1;
                }
            }
            Op::Tick(dt) => {
                self.now += dt;
                self.fire_timers();
            }
            Op::Take(n) => {
                if !self.ready.is_empty() {
                    let (pool, worker) = self.ready.remove(n % self.ready.len()).unwrap();
                    let (next, a) = self.wqs.worker_next(pool, worker, self.now);
                    self.perform(None, a);
                    if let Next::Run(job) = next {
                        self.start(job)?;
                    }
                }
                if self.mayday {
                    self.rescue()?;
                }
            }
            Op::Finish { job, requeue } => {
                if !self.running.is_empty() {
                    self.finish(job % self.running.len(), requeue)?;
                }
            }
            Op::Sleep(n) | Op::Wake(n) => {
                let sleep = matches!(op, Op::Sleep(_));
                let k = n % self.running.len().max(1);
                if let Some(r) = self.running.get_mut(k)
                    && let Executor::Worker(id) = r.job.executor
                    && r.blocked != sleep
                {
                    r.blocked = sleep;
                    let pool = r.job.pool;
                    if sleep {
                        let a = self.wqs.worker_sleeping(pool, id);
                        self.perform(None, a);
                    } else {
                        self.wqs.worker_waking(pool, id);
                    }
                }
            }
            Op::FailCreate(fail) => {
                self.fail_create = fail;
                if !fail {
                    self.mayday = false;
                    for p in 0..self.wqs.pool_stats().len() {
                        let a = self.wqs.pool_kick(PoolId(p as u16));
                        self.perform(None, a);
                    }
                }
            }
        }
        self.check()
    }

    fn fire_timers(&mut self) {
        let due: Vec<(usize, u64)> = self.timers.iter().map(|(&i, &at)| (i, at)).collect();
        for (i, at) in due {
            if at <= self.now {
                self.timers.remove(&i);
                let a = self
                    .wqs
                    .delayed_work_timer_fn(self.items[i].clone(), self.now);
                self.perform(Some(i), a);
            }
        }
    }

    fn rescue(&mut self) -> Result<(), TestCaseError> {
        if let Some(job) = self.wqs.rescuer_next(self.wq_ids[3]) {
            prop_assert_eq!(job.wq, self.wq_ids[3]);
            self.start(job)?;
        }
        Ok(())
    }

    fn finish(&mut self, k: usize, requeue: bool) -> Result<(), TestCaseError> {
        let r = self.running.remove(k);
        let i = self.index(&r.job.work);
        if requeue {
            let (q, a) = self
                .wqs
                .queue_work_from(&r.job, r.job.wq, r.job.work.clone());
            self.perform(Some(i), a);
            self.queued_result(i, q)?;
        }
        self.ran[i] += 1;
        let (pool, exec) = (r.job.pool, r.job.executor);
        if let Executor::Worker(id) = exec {
            if r.blocked {
                self.wqs.worker_waking(pool, id);
            }
            self.ready.push_front((pool, id));
        }
        let a = self.wqs.worker_done(r.job);
        self.perform(None, a);
        Ok(())
    }

    /// No stall: a per-CPU pool with pending work has a running (or woken, or new) worker,
    /// unless it cannot create workers; counts agree with the model.
    fn check(&self) -> Result<(), TestCaseError> {
        for s in self.wqs.pool_stats() {
            if s.cpu.is_some() && s.pending > 0 && !self.fail_create && !self.mayday {
                prop_assert!(
                    s.running > 0,
                    "pool {:?} stalls with {} pending",
                    s.id,
                    s.pending
                );
            }
        }
        for (i, w) in self.items.iter().enumerate() {
            prop_assert_eq!(w.is_pending(), self.pending[i]);
            prop_assert_eq!(w.seq(), self.queued[i]);
        }
        let in_flight: u32 = self.wqs.wq_stats().iter().map(|s| s.in_flight).sum();
        let on_timers = self
            .items
            .iter()
            .filter(|w| self.wqs.timer_deadline(w).is_some())
            .count();
        let model = self.pending.iter().filter(|&&p| p).count() + self.running.len();
        prop_assert_eq!(in_flight as usize + on_timers, model);
        Ok(())
    }

    /// Liveness: let every timer fire, every sleeper wake, workers be created, and run
    /// everything to the end.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        self.apply(&Op::FailCreate(false))?;
        self.now += 1000;
        self.fire_timers();
        for _ in 0..1000 {
            if !self.running.is_empty() {
                self.apply(&Op::Wake(0))?;
                self.finish(0, false)?;
            } else if !self.ready.is_empty() {
                self.apply(&Op::Take(0))?;
            } else {
                break;
            }
            self.check()?;
        }
        prop_assert!(
            self.running.is_empty() && self.ready.is_empty(),
            "did not settle"
        );
        for i in 0..ITEMS {
            prop_assert!(!self.pending[i], "item {} still pending", i);
            prop_assert_eq!(self.queued[i], self.ran[i] + self.canceled[i], "item {}", i);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn workqueues_follow_the_reference_model(ops in prop::collection::vec(op(), 0..150)) {
        let mut m = Model::new();
        for op in &ops {
            m.apply(op)?;
        }
        m.settle()?;
    }
}
