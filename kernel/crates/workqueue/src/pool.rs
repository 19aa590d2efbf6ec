//! A worker pool (Linux's `struct worker_pool`): its worklist, its workers and the
//! concurrency-management decisions, as a plain state machine (`&mut self`, under the
//! workqueue lock) that returns [`Action`]s.
//!
//! # Concurrency management
//!
//! A per-CPU pool counts its *running* workers (`nr_running`): executing an item and not
//! sleeping. The scheduler tells the pool when one of them blocks
//! ([`Pool::worker_sleeping`], Linux's `wq_worker_sleeping`) and when it wakes
//! ([`Pool::worker_waking`], `wq_worker_running`). The rule ([`Pool::kick`], Linux's
//! `need_more_worker` + `wake_up_worker`/`create_worker`): **if work is pending and no worker
//! is running, wake an idle worker, or create one if none is idle.** So exactly one worker
//! runs per CPU while the items do not sleep (no pointless context switches), and an item that
//! sleeps never stalls the items behind it: the moment it blocks, another worker takes over.
//!
//! An unbound pool is not concurrency-managed (its workers may run on any CPU, the scheduler
//! balances them): every pending item wakes or creates a worker.
//!
//! Idle workers beyond [`MIN_IDLE`] (and more than a quarter of the busy ones, Linux's
//! `too_many_workers`) are retired once idle for the idle timeout (Linux's
//! `IDLE_WORKER_TIMEOUT`, 300 s; a parameter here).

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

use crate::action::{Action, Actions, PoolId, WorkerId};
use crate::list::WorkList;
use crate::work::WorkItem;

/// Idle workers a pool always keeps (Linux keeps 2).
pub const MIN_IDLE: usize = 2;
/// Idle workers beyond [`MIN_IDLE`] are "too many" once they are at least a quarter of the
/// busy ones (Linux's `MAX_IDLE_WORKERS_RATIO`).
const MAX_IDLE_WORKERS_RATIO: usize = 4;

/// The state of a worker, as the `workqueues` dump shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Waiting for work.
    Idle,
    /// Executing an item (or about to look for one), not sleeping: counted in `nr_running`.
    Running,
    /// Executing an item that sleeps: not counted in `nr_running`.
    Blocked,
    /// Told to exit (idle too long); gone at its next `worker_next`.
    Retiring,
}

pub(crate) struct Worker<W> {
    pub state: WorkerState,
    /// When it last became idle.
    pub idle_since: u64,
    /// The item it executes.
    pub current: Option<W>,
    /// Items it executed.
    pub executed: u64,
}

pub(crate) struct Pool<W, L> {
    pub id: PoolId,
    /// The CPU of a per-CPU pool; `None` for an unbound pool.
    pub cpu: Option<usize>,
    pub highpri: bool,
    /// Active items waiting for a worker, FIFO.
    pub worklist: L,
    /// Items dequeued while their previous instance still ran here (non-reentrancy).
    pub held: L,
    /// Indexed by worker id; `None` is a free id.
    pub workers: Vec<Option<Worker<W>>>,
    pub nr_running: usize,
    /// A `CreateWorker` is outstanding.
    pub creating: bool,
    /// Worker creation failed; rescuers may take this pool's items.
    pub mayday: bool,
    pub idle_timer_armed: bool,
    /// Items executed by this pool's workers and by rescuers on its behalf.
    pub executed: u64,
}

impl<W: WorkItem, L: WorkList<W>> Pool<W, L> {
    pub fn new(id: PoolId, cpu: Option<usize>, highpri: bool) -> Self {
        Self {
            id,
            cpu,
            highpri,
            worklist: L::default(),
            held: L::default(),
            workers: Vec::new(),
            nr_running: 0,
            creating: false,
            mayday: false,
            idle_timer_armed: false,
            executed: 0,
        }
    }

    /// Per-CPU pools are concurrency-managed, unbound ones are not.
    pub fn is_bound(&self) -> bool {
        self.cpu.is_some()
    }

    pub fn worker(&mut self, id: WorkerId) -> &mut Worker<W> {
        self.workers[usize::from(id.0)]
            .as_mut()
            .expect("no such worker")
    }

    pub fn count(&self, state: WorkerState) -> usize {
        self.workers
            .iter()
            .flatten()
            .filter(|w| w.state == state)
            .count()
    }

    /// Work is pending and nobody runs it: wake an idle worker or ask for a new one.
    pub fn kick(&mut self) -> Option<Action> {
        if self.worklist.is_empty() || (self.is_bound() && self.nr_running > 0) {
            return None;
        }
        // Unbound: one worker per pending item; workers woken or created but not yet in
        // `worker_next` (running, no item) will take some.
        if !self.is_bound() {
            let starting = self
                .workers
                .iter()
                .flatten()
                .filter(|w| w.state == WorkerState::Running && w.current.is_none())
                .count();
            if starting >= self.worklist.len() {
                return None;
            }
        }
        let pool = self.id;
        // Linux wakes the first idle worker: the most recently idle one (its cache is warm).
        let idle = self
            .workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
            .filter(|(_, w)| w.state == WorkerState::Idle)
            .max_by_key(|(_, w)| w.idle_since)
            .map(|(i, _)| i);
        if let Some(i) = idle {
            let w = self.workers[i].as_mut().unwrap();
            w.state = WorkerState::Running;
            self.nr_running += 1;
            return Some(Action::WakeWorker {
                pool,
                worker: WorkerId(i as u16),
            });
        }
        if self.creating {
            return None;
        }
        self.creating = true;
        Some(Action::CreateWorker { pool })
    }

    /// The id the next [`worker_created`](Self::worker_created) gives, with room made for it
    /// (fallibly) so that it does not allocate.
    pub fn reserve_worker(&mut self) -> Result<WorkerId, TryReserveError> {
        match self.workers.iter().position(Option::is_none) {
            Some(i) => Ok(WorkerId(i as u16)),
            None => {
                self.workers.try_reserve(1)?;
                Ok(WorkerId(self.workers.len() as u16))
            }
        }
    }

    /// Registers a newly created worker (running: it looks for work at once).
    pub fn worker_created(&mut self) -> WorkerId {
        self.creating = false;
        self.mayday = false;
        let worker = Worker {
            state: WorkerState::Running,
            idle_since: 0,
            current: None,
            executed: 0,
        };
        self.nr_running += 1;
        match self.workers.iter().position(Option::is_none) {
            Some(i) => {
                self.workers[i] = Some(worker);
                WorkerId(i as u16)
            }
            None => {
                self.workers.push(Some(worker));
                WorkerId((self.workers.len() - 1) as u16)
            }
        }
    }

    /// The worker found nothing to do: it becomes idle.
    pub fn worker_idle(&mut self, id: WorkerId, now: u64, timeout: u64) -> Option<Action> {
        let w = self.worker(id);
        let was = w.state;
        w.state = WorkerState::Idle;
        w.idle_since = now;
        w.current = None;
        if was == WorkerState::Running {
            self.nr_running -= 1;
        }
        if self.too_many_workers() && !self.idle_timer_armed {
            self.idle_timer_armed = true;
            return Some(Action::ArmIdleTimer {
                pool: self.id,
                at: now + timeout,
            });
        }
        None
    }

    /// The running worker blocks (Linux's `wq_worker_sleeping`).
    pub fn worker_sleeping(&mut self, id: WorkerId) -> Option<Action> {
        let w = self.worker(id);
        if w.state != WorkerState::Running {
            return None;
        }
        w.state = WorkerState::Blocked;
        self.nr_running -= 1;
        self.kick()
    }

    /// The blocked worker runs again (Linux's `wq_worker_running`).
    pub fn worker_waking(&mut self, id: WorkerId) {
        let w = self.worker(id);
        if w.state == WorkerState::Blocked {
            w.state = WorkerState::Running;
            self.nr_running += 1;
        }
    }

    /// Linux's `too_many_workers`.
    pub fn too_many_workers(&self) -> bool {
        let idle = self.count(WorkerState::Idle);
        let busy = self.count(WorkerState::Running) + self.count(WorkerState::Blocked);
        idle > MIN_IDLE && (idle - MIN_IDLE) * MAX_IDLE_WORKERS_RATIO >= busy
    }

    /// The idle timer fired: retire the workers idle for `timeout` while there are too many
    /// (Linux's `idle_worker_timeout`), re-arming for the next one.
    pub fn idle_timeout(&mut self, now: u64, timeout: u64) -> Actions {
        self.idle_timer_armed = false;
        let mut actions = Actions::new();
        while self.too_many_workers() {
            // The one idle longest.
            let (i, since) = self
                .workers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
                .filter(|(_, w)| w.state == WorkerState::Idle)
                .map(|(i, w)| (i, w.idle_since))
                .min_by_key(|&(_, since)| since)
                .expect("too many idle workers, yet none idle");
            let expires = since.saturating_add(timeout);
            if expires > now || actions.len() == Actions::CAPACITY - 1 {
                self.idle_timer_armed = true;
                actions.push(Action::ArmIdleTimer {
                    pool: self.id,
                    at: expires.max(now),
                });
                break;
            }
            self.workers[i].as_mut().unwrap().state = WorkerState::Retiring;
            actions.push(Action::Retire {
                pool: self.id,
                worker: WorkerId(i as u16),
            });
        }
        actions
    }

    /// Removes a retiring worker (its thread ends).
    pub fn remove_worker(&mut self, id: WorkerId) {
        self.workers[usize::from(id.0)] = None;
    }
}

#[cfg(test)]
mod tests;
