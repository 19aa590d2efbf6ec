//! What the crate asks the kernel to do ([`Action`], [`Actions`]), what it hands a worker
//! ([`Next`], [`Job`]), and the small id and flag types.

use core::fmt;

/// A worker pool: `2 * cpu` (normal) and `2 * cpu + 1` (high priority) for the per-CPU
/// pools, then the unbound normal and high-priority pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId(pub u16);

/// A worker of a pool: the `M` of its thread name `kworker/N:M` (reused after retirement,
/// as Linux's worker ids are).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerId(pub u16);

/// A workqueue, as returned by [`Workqueues::alloc_workqueue`](crate::Workqueues::alloc_workqueue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WqId(pub u16);

bitflags::bitflags! {
    /// Flags of [`Workqueues::alloc_workqueue`](crate::Workqueues::alloc_workqueue), named as
    /// in Linux.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct WqFlags: u32 {
        /// Items run in the unbound pool (`kworker/uP:M`), on any CPU, without concurrency
        /// management: every pending item gets a worker of its own (up to `max_active`).
        const WQ_UNBOUND = 1 << 1;
        /// The queue may be needed to free memory: it gets a rescuer thread at creation that
        /// runs its items when a pool cannot create a worker.
        const WQ_MEM_RECLAIM = 1 << 3;
        /// Items run in the high-priority pools (`kworker/N:MH`).
        const WQ_HIGHPRI = 1 << 4;
    }
}

/// Something the kernel must do for the crate, returned by the calls that decide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Wake this idle worker: work is pending and the pool wants it to run. The crate already
    /// counts it as running; its thread calls [`worker_next`](crate::Workqueues::worker_next).
    WakeWorker {
        /// Its pool.
        pool: PoolId,
        /// The worker.
        worker: WorkerId,
    },
    /// Create a worker thread for `pool` (named by [`worker_name`](crate::Workqueues::worker_name)
    /// once registered), then call [`worker_created`](crate::Workqueues::worker_created), or
    /// [`worker_create_failed`](crate::Workqueues::worker_create_failed) if that is impossible.
    CreateWorker {
        /// The pool that needs it.
        pool: PoolId,
    },
    /// The worker has been idle too long: wake it; its next `worker_next` returns
    /// [`Next::Exit`] and the thread ends.
    Retire {
        /// Its pool.
        pool: PoolId,
        /// The worker.
        worker: WorkerId,
    },
    /// Arm the pool's idle timer (one per pool) to call
    /// [`idle_timeout`](crate::Workqueues::idle_timeout) at time `at`.
    ArmIdleTimer {
        /// The pool.
        pool: PoolId,
        /// When.
        at: u64,
    },
    /// The pool cannot create workers: wake the rescuers of the `WQ_MEM_RECLAIM` workqueues
    /// (each calls [`rescuer_next`](crate::Workqueues::rescuer_next)), and retry creating a
    /// worker later with [`pool_kick`](crate::Workqueues::pool_kick) (Linux's mayday).
    Mayday {
        /// The pool in trouble.
        pool: PoolId,
    },
    /// Arm the delayed item's timer to call
    /// [`delayed_work_timer_fn`](crate::Workqueues::delayed_work_timer_fn) at time `at` (for
    /// the item given to the call that returned this action).
    ArmTimer {
        /// The deadline.
        at: u64,
    },
    /// The workqueue was destroyed: stop its rescuer thread.
    StopRescuer {
        /// The workqueue.
        wq: WqId,
    },
}

/// Up to [`Actions::CAPACITY`] actions, stored inline (returning them never allocates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    list: [Option<Action>; Actions::CAPACITY],
    len: usize,
}

impl Actions {
    /// The most actions a call returns.
    pub const CAPACITY: usize = 4;

    /// No action.
    pub const fn new() -> Self {
        Self {
            list: [None; Self::CAPACITY],
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, a: Action) {
        assert!(self.len < Self::CAPACITY, "too many actions");
        self.list[self.len] = Some(a);
        self.len += 1;
    }

    pub(crate) fn push_opt(&mut self, a: Option<Action>) {
        if let Some(a) = a {
            self.push(a);
        }
    }

    pub(crate) fn extend(&mut self, other: Actions) {
        for a in other {
            self.push(a);
        }
    }

    /// The number of actions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No action?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The actions, in the order they were decided.
    pub fn iter(&self) -> impl Iterator<Item = Action> + '_ {
        self.list[..self.len].iter().flatten().copied()
    }
}

impl IntoIterator for Actions {
    type Item = Action;
    type IntoIter = core::iter::Flatten<core::array::IntoIter<Option<Action>, 4>>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter().flatten()
    }
}

/// Who executes a [`Job`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// A worker of the job's pool.
    Worker(WorkerId),
    /// The rescuer of the job's workqueue.
    Rescuer,
}

/// One instance of a work item handed to a worker or rescuer: run `work`'s function, then
/// give the job back with [`worker_done`](crate::Workqueues::worker_done).
#[derive(Debug)]
pub struct Job<W> {
    /// The item to run.
    pub work: W,
    /// The workqueue it was queued on.
    pub wq: WqId,
    /// The pool it was taken from.
    pub pool: PoolId,
    /// Who runs it.
    pub executor: Executor,
    /// Its sequence number (see [`WorkStruct::seq`](crate::WorkStruct::seq)).
    pub seq: u32,
    pub(crate) color: u8,
}

/// What a worker does next, from [`worker_next`](crate::Workqueues::worker_next).
#[derive(Debug)]
pub enum Next<W> {
    /// Run this job.
    Run(Job<W>),
    /// Nothing to do: sleep until woken ([`Action::WakeWorker`] or [`Action::Retire`]).
    Idle,
    /// The worker was retired: end the thread.
    Exit,
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
