//! [`Workqueues`]: every workqueue and pool of the system, queueing, and the worker side
//! (what worker threads, rescuers and the scheduler call).

use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::fmt;

use crate::action::{Action, Actions, Executor, Job, Next, PoolId, WorkerId, WqFlags, WqId};
use crate::list::{VecList, WorkList};
use crate::pool::{Pool, WorkerState};
use crate::sync::{Mutex, MutexGuard};
use crate::work::{Info, Loc, WorkItem};

/// Flush colors per workqueue (Linux's `WORK_NR_COLORS`, 16).
pub const NR_COLORS: usize = 16;
/// `max_active` when 0 is given (Linux's `WQ_DFL_ACTIVE`).
pub const WQ_DFL_ACTIVE: usize = 256;
/// The largest `max_active` (Linux's `WQ_MAX_ACTIVE`).
pub const WQ_MAX_ACTIVE: usize = 512;
/// Linux's idle timeout of workers (300 s), in seconds; the kernel passes its own (in its
/// time unit) to [`Workqueues::new`].
pub const IDLE_WORKER_TIMEOUT_SECS: u64 = 300;

/// `system_wq`: per-CPU, normal priority ([`Workqueues::schedule_work`] uses it).
pub const SYSTEM_WQ: WqId = WqId(0);
/// `system_highpri_wq`: per-CPU, high-priority pools.
pub const SYSTEM_HIGHPRI_WQ: WqId = WqId(1);
/// `system_long_wq`: per-CPU, for items that may run long.
pub const SYSTEM_LONG_WQ: WqId = WqId(2);
/// `system_unbound_wq`: the unbound pool.
pub const SYSTEM_UNBOUND_WQ: WqId = WqId(3);

/// A workqueue's part of one pool (Linux's `struct pool_workqueue`).
pub(crate) struct Pwq<L> {
    /// Active items of this workqueue in the pool (on the worklist, held or running).
    pub nr_active: usize,
    /// Items beyond `max_active`, waiting to become active.
    pub inactive: L,
    /// Items in flight per flush color (pending or running).
    pub in_flight: [u32; NR_COLORS],
    /// Items of this workqueue executed in this pool.
    pub executed: u64,
}

/// A workqueue (Linux's `struct workqueue_struct`).
pub(crate) struct Wq<L> {
    pub name: &'static str,
    pub flags: WqFlags,
    pub max_active: usize,
    /// The color new items get (grows by one per flush).
    pub work_color: u64,
    /// No item of a color below this is in flight.
    pub flush_floor: u64,
    /// `drain_workqueue` calls in progress: queueing is refused except from this queue's items.
    pub nr_drainers: usize,
    pub destroyed: bool,
    /// The rescuer is executing an item.
    pub rescuer_busy: bool,
    /// One per pool, indexed by pool id.
    pub pwqs: Vec<Pwq<L>>,
}

impl<L> Wq<L> {
    pub fn in_flight(&self) -> u32 {
        self.pwqs.iter().flat_map(|p| p.in_flight.iter()).sum()
    }

    pub fn color_idle(&self, color: u64) -> bool {
        let c = (color % NR_COLORS as u64) as usize;
        self.pwqs.iter().all(|p| p.in_flight[c] == 0)
    }
}

/// Everything under the workqueue lock.
pub(crate) struct State<W, L> {
    pub pools: Vec<Pool<W, L>>,
    pub wqs: Vec<Wq<L>>,
    /// How long a worker beyond the ones a pool keeps may stay idle (the kernel's time unit).
    pub idle_timeout: u64,
}

/// Why [`Workqueues::alloc_workqueue`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// `max_active` above [`WQ_MAX_ACTIVE`].
    MaxActive,
    /// Too many workqueues (ids are 16 bits).
    TooMany,
    /// [`Workqueues::reuse_workqueue`] of a queue that is not destroyed and idle, or with
    /// `WQ_MEM_RECLAIM` (its rescuer is not restarted).
    NotReusable,
}

/// All workqueues and worker pools of a system, behind one lock.
///
/// `W` is the kernel's item handle ([`WorkItem`]), `L` its list type ([`WorkList`]; the
/// intrusive one in the kernel, [`VecList`] on the host). See the [crate docs](crate) for
/// the whole protocol.
pub struct Workqueues<W, L = VecList<W>> {
    pub(crate) state: Mutex<State<W, L>>,
    pub(crate) nr_cpus: usize,
    pub(crate) this_cpu: fn() -> usize,
}

impl<W: WorkItem, L: WorkList<W>> Workqueues<W, L> {
    /// Pools for CPUs `0..nr_cpus` (normal and high priority each) and the unbound ones,
    /// without workers (the first queueing asks for one), and the system workqueues
    /// [`SYSTEM_WQ`], [`SYSTEM_HIGHPRI_WQ`], [`SYSTEM_LONG_WQ`], [`SYSTEM_UNBOUND_WQ`].
    /// `idle_timeout` is in the kernel's time unit (the `now` of the other calls);
    /// `this_cpu` returns the CPU the caller runs on.
    pub fn new(nr_cpus: usize, idle_timeout: u64, this_cpu: fn() -> usize) -> Self {
        assert!(nr_cpus > 0 && nr_cpus < 0x7fff, "bad nr_cpus");
        let mut pools = Vec::with_capacity(2 * nr_cpus + 2);
        for i in 0..=nr_cpus {
            for highpri in [false, true] {
                let id = PoolId(pools.len() as u16);
                pools.push(Pool::new(id, (i < nr_cpus).then_some(i), highpri));
            }
        }
        let wqs = Self {
            state: Mutex::new(State {
                pools,
                wqs: Vec::new(),
                idle_timeout,
            }),
            nr_cpus,
            this_cpu,
        };
        let system = [
            ("events", WqFlags::empty(), 0),
            ("events_highpri", WqFlags::WQ_HIGHPRI, 0),
            ("events_long", WqFlags::empty(), 0),
            ("events_unbound", WqFlags::WQ_UNBOUND, WQ_MAX_ACTIVE),
        ];
        for (name, flags, max) in system {
            wqs.alloc_workqueue(name, flags, max).unwrap();
        }
        wqs
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<W, L>> {
        self.state.lock()
    }

    /// The number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.nr_cpus
    }

    /// The idle timeout of workers (given to [`new`](Self::new) or the last
    /// [`set_idle_timeout`](Self::set_idle_timeout)).
    pub fn idle_timeout_of_workers(&self) -> u64 {
        self.lock().idle_timeout
    }

    /// Changes how long a worker beyond the ones a pool keeps may stay idle before it is
    /// retired (Linux's is a constant; the kernel shortens it for tests). Workers that become
    /// idle from now on, and idle timers that fire from now on, use the new value; an idle
    /// timer already armed fires when it was set to, then looks again with the new value.
    pub fn set_idle_timeout(&self, timeout: u64) {
        self.lock().idle_timeout = timeout;
    }

    /// Creates a workqueue (Linux's `alloc_workqueue`). `max_active` limits the items of this
    /// queue executing at once per pool (0: [`WQ_DFL_ACTIVE`]). A `WQ_MEM_RECLAIM` queue needs
    /// a rescuer: the kernel creates its thread now (named after the queue), which loops on
    /// [`rescuer_next`](Self::rescuer_next).
    pub fn alloc_workqueue(
        &self,
        name: &'static str,
        flags: WqFlags,
        max_active: usize,
    ) -> Result<WqId, AllocError> {
        if max_active > WQ_MAX_ACTIVE {
            return Err(AllocError::MaxActive);
        }
        let mut st = self.lock();
        if st.wqs.len() >= usize::from(u16::MAX) {
            return Err(AllocError::TooMany);
        }
        let pwqs = (0..st.pools.len())
            .map(|_| Pwq {
                nr_active: 0,
                inactive: L::default(),
                in_flight: [0; NR_COLORS],
                executed: 0,
            })
            .collect();
        st.wqs.push(Wq {
            name,
            flags,
            max_active: if max_active == 0 {
                WQ_DFL_ACTIVE
            } else {
                max_active
            },
            work_color: 0,
            flush_floor: 0,
            nr_drainers: 0,
            destroyed: false,
            rescuer_busy: false,
            pwqs,
        });
        Ok(WqId((st.wqs.len() - 1) as u16))
    }

    /// Makes destroyed workqueue `wq` a new one (`name`, `flags`, `max_active` as for
    /// [`alloc_workqueue`](Self::alloc_workqueue)) in place, so that a user that creates and
    /// destroys queues again and again (a module loaded and unloaded) does not grow the table:
    /// ids are never reused otherwise, and a destroyed queue keeps its slot. Refused
    /// ([`AllocError::NotReusable`]) unless `wq` is destroyed with nothing in flight, and for
    /// `WQ_MEM_RECLAIM` (old or new: the caller would have to restart the rescuer). The caller
    /// must hold no other handle to the destroyed queue.
    pub fn reuse_workqueue(
        &self,
        wq: WqId,
        name: &'static str,
        flags: WqFlags,
        max_active: usize,
    ) -> Result<(), AllocError> {
        if max_active > WQ_MAX_ACTIVE {
            return Err(AllocError::MaxActive);
        }
        let mut st = self.lock();
        let Some(q) = st.wqs.get_mut(usize::from(wq.0)) else {
            return Err(AllocError::NotReusable);
        };
        if !q.destroyed
            || q.in_flight() != 0
            || q.nr_drainers != 0
            || q.rescuer_busy
            || q.flags.contains(WqFlags::WQ_MEM_RECLAIM)
            || flags.contains(WqFlags::WQ_MEM_RECLAIM)
        {
            return Err(AllocError::NotReusable);
        }
        q.name = name;
        q.flags = flags;
        q.max_active = if max_active == 0 {
            WQ_DFL_ACTIVE
        } else {
            max_active
        };
        q.destroyed = false;
        Ok(())
    }

    /// The pool `wq`'s items queued on `cpu` go to.
    pub(crate) fn pool_for(&self, st: &State<W, L>, wq: WqId, cpu: usize) -> usize {
        let flags = st.wqs[usize::from(wq.0)].flags;
        let hi = usize::from(flags.contains(WqFlags::WQ_HIGHPRI));
        if flags.contains(WqFlags::WQ_UNBOUND) {
            2 * self.nr_cpus + hi
        } else {
            assert!(cpu < self.nr_cpus, "CPU {cpu} out of range");
            2 * cpu + hi
        }
    }

    /// Queues `work` on `wq` from the CPU the caller runs on (Linux's `queue_work`). Returns
    /// `false` (and does nothing) if it was already pending, is being canceled, or `wq` is
    /// draining or destroyed; `true` if it was queued. Never allocates (with an intrusive
    /// [`WorkList`]). The kernel performs the returned actions.
    pub fn queue_work(&self, wq: WqId, work: W) -> (bool, Actions) {
        self.queue_work_on((self.this_cpu)(), wq, work)
    }

    /// Queues `work` on `wq` for `cpu`'s pool (Linux's `queue_work_on`); for an unbound
    /// queue `cpu` only says who asks. If the item is still running (in any pool), it is
    /// queued on that pool instead, to run after the running instance (non-reentrancy).
    pub fn queue_work_on(&self, cpu: usize, wq: WqId, work: W) -> (bool, Actions) {
        self.queue(cpu, wq, work, None)
    }

    /// [`queue_work`](Self::queue_work) from inside a running item (`current` is the job the
    /// calling worker executes): allowed on a draining queue if `current` belongs to it (Linux's
    /// `is_chained_work`).
    pub fn queue_work_from(&self, current: &Job<W>, wq: WqId, work: W) -> (bool, Actions) {
        self.queue((self.this_cpu)(), wq, work, Some(current.wq))
    }

    /// [`queue_work_on`](Self::queue_work_on) from inside a running item (`current` is the
    /// job the calling worker executes): allowed on a draining queue if `current` belongs to
    /// it, as [`queue_work_from`](Self::queue_work_from).
    pub fn queue_work_on_from(
        &self,
        current: &Job<W>,
        cpu: usize,
        wq: WqId,
        work: W,
    ) -> (bool, Actions) {
        self.queue(cpu, wq, work, Some(current.wq))
    }

    /// `queue_work(system_wq, work)` (Linux's `schedule_work`).
    pub fn schedule_work(&self, work: W) -> (bool, Actions) {
        self.queue_work(SYSTEM_WQ, work)
    }

    fn queue(&self, cpu: usize, wq: WqId, work: W, chained: Option<WqId>) -> (bool, Actions) {
        // The fast path of an already pending item takes no lock (Linux's test_and_set_bit).
        if !work.work().try_set_pending() {
            return (false, Actions::new());
        }
        let mut st = self.lock();
        if !accepts(&st.wqs[usize::from(wq.0)], wq, chained) {
            work.work().clear_pending();
            return (false, Actions::new());
        }
        let pool = self.pool_for(&st, wq, cpu);
        (true, insert_work(&mut st, work, wq, pool))
    }

    /// Makes room in `pool` for the worker the kernel is about to create, so that
    /// [`worker_created`](Self::worker_created) allocates nothing, and returns the id it will
    /// get (the smallest free one). Call it before creating the thread, and treat an error
    /// (out of memory) as a failed creation ([`worker_create_failed`](Self::worker_create_failed)).
    /// The id and the room hold until the next `worker_created` of the pool, provided only one
    /// creation per pool is in progress at a time (the crate asks for one at a time).
    pub fn reserve_worker(&self, pool: PoolId) -> Result<WorkerId, TryReserveError> {
        self.lock().pools[usize::from(pool.0)].reserve_worker()
    }

    /// Registers a worker the kernel created after [`Action::CreateWorker`]: it counts as
    /// running, and its thread calls [`worker_next`](Self::worker_next) at once. Allocates
    /// nothing after [`reserve_worker`](Self::reserve_worker).
    pub fn worker_created(&self, pool: PoolId) -> WorkerId {
        self.lock().pools[usize::from(pool.0)].worker_created()
    }

    /// The kernel could not create the worker (out of memory): if a `WQ_MEM_RECLAIM` queue
    /// has items waiting in the pool, returns [`Action::Mayday`] (wake the rescuers). The
    /// kernel retries creating a worker later with [`pool_kick`](Self::pool_kick).
    pub fn worker_create_failed(&self, pool: PoolId) -> Actions {
        let mut st = self.lock();
        let State { pools, wqs, .. } = &mut *st;
        let p = &mut pools[usize::from(pool.0)];
        p.creating = false;
        let mut reclaim = false;
        p.worklist.for_each(&mut |w| {
            let wq = &wqs[usize::from(w.work().info().wq)];
            reclaim |= wq.flags.contains(WqFlags::WQ_MEM_RECLAIM);
        });
        let mut actions = Actions::new();
        if reclaim {
            p.mayday = true;
            actions.push(Action::Mayday { pool });
        }
        actions
    }

    /// Asks again for a worker if the pool still needs one (after a failed creation).
    pub fn pool_kick(&self, pool: PoolId) -> Actions {
        let mut actions = Actions::new();
        actions.push_opt(self.lock().pools[usize::from(pool.0)].kick());
        actions
    }

    /// The worker's loop: call this when it starts, after each [`worker_done`](Self::worker_done)
    /// and when woken. Takes the first item of the worklist, clears its PENDING bit (from now
    /// on the item may be queued again, even by its own function) and returns it to run; an
    /// item whose previous instance still runs in this pool is set aside to run right after it.
    /// `now` is the time (for the idle timeout).
    pub fn worker_next(&self, pool: PoolId, worker: WorkerId, now: u64) -> (Next<W>, Actions) {
        let mut st = self.lock();
        let timeout = st.idle_timeout;
        let p = &mut st.pools[usize::from(pool.0)];
        let mut actions = Actions::new();
        if p.worker(worker).state == WorkerState::Retiring {
            p.remove_worker(worker);
            return (Next::Exit, actions);
        }
        loop {
            let Some(w) = p.worklist.pop_front() else {
                actions.push_opt(p.worker_idle(worker, now, timeout));
                return (Next::Idle, actions);
            };
            let ws = w.work();
            if ws.running().is_some() {
                ws.set_loc(Loc::Held);
                p.held.push_back(w);
                continue;
            }
            let info = ws.info();
            let seq = ws.start_running(pool.0);
            let wk = p.worker(worker);
            if wk.state == WorkerState::Idle {
                wk.state = WorkerState::Running;
                p.nr_running += 1;
            }
            let wk = p.worker(worker);
            wk.current = Some(w.clone());
            if !p.is_bound() {
                actions.push_opt(p.kick());
            }
            let job = Job {
                work: w,
                wq: WqId(info.wq),
                pool,
                executor: Executor::Worker(worker),
                seq,
                color: info.color,
            };
            return (Next::Run(job), actions);
        }
    }

    /// The job's function returned: the instance is finished (flushers waiting for it may
    /// return; the kernel wakes them). Activates the next inactive item of its workqueue, and
    /// puts an instance of the same item that waited behind this one at the head of the
    /// worklist.
    pub fn worker_done(&self, job: Job<W>) -> Actions {
        let mut st = self.lock();
        let ws = job.work.work();
        ws.stop_running();
        let pool = usize::from(job.pool.0);
        let p = &mut st.pools[pool];
        p.executed += 1;
        match job.executor {
            Executor::Worker(id) => {
                let w = p.worker(id);
                w.current = None;
                w.executed += 1;
            }
            Executor::Rescuer => st.wqs[usize::from(job.wq.0)].rescuer_busy = false,
        }
        st.wqs[usize::from(job.wq.0)].pwqs[pool].executed += 1;
        let mut actions = retire(&mut st, job.wq, pool, job.color, true);
        let info = ws.info();
        if info.loc == Loc::Held && usize::from(info.pool) == pool {
            let p = &mut st.pools[pool];
            let w = p.held.remove(ws).expect("held item not on the held list");
            ws.set_loc(Loc::Worklist);
            p.worklist.push_front(w);
            actions.push_opt(p.kick());
        }
        actions
    }

    /// The scheduler: the worker is about to sleep inside an item (Linux's
    /// `wq_worker_sleeping`). If it was the pool's last running worker and work is pending,
    /// returns the wake-up or creation of another one.
    pub fn worker_sleeping(&self, pool: PoolId, worker: WorkerId) -> Actions {
        let mut actions = Actions::new();
        actions.push_opt(self.lock().pools[usize::from(pool.0)].worker_sleeping(worker));
        actions
    }

    /// The scheduler: the worker woke up and runs again (Linux's `wq_worker_running`).
    pub fn worker_waking(&self, pool: PoolId, worker: WorkerId) {
        self.lock().pools[usize::from(pool.0)].worker_waking(worker);
    }

    /// The pool's idle timer fired ([`Action::ArmIdleTimer`]): returns the workers to retire
    /// and possibly a new timer.
    pub fn idle_timeout(&self, pool: PoolId, now: u64) -> Actions {
        let mut st = self.lock();
        let timeout = st.idle_timeout;
        st.pools[usize::from(pool.0)].idle_timeout(now, timeout)
    }

    /// The rescuer of the `WQ_MEM_RECLAIM` queue `wq`: takes an item of `wq` from a pool that
    /// could not create a worker ([`Action::Mayday`]), to run like a worker does, then
    /// [`worker_done`](Self::worker_done). `None`: nothing to rescue, sleep until the next mayday.
    pub fn rescuer_next(&self, wq: WqId) -> Option<Job<W>> {
        let mut st = self.lock();
        let State { pools, wqs, .. } = &mut *st;
        let q = &mut wqs[usize::from(wq.0)];
        if !q.flags.contains(WqFlags::WQ_MEM_RECLAIM) || q.rescuer_busy {
            return None;
        }
        for p in pools.iter_mut().filter(|p| p.mayday) {
            let mine = &mut |w: &W| w.work().info().wq == wq.0 && w.work().running().is_none();
            if let Some(w) = p.worklist.take_first(mine) {
                let ws = w.work();
                let info = ws.info();
                let seq = ws.start_running(p.id.0);
                q.rescuer_busy = true;
                return Some(Job {
                    work: w,
                    wq,
                    pool: p.id,
                    executor: Executor::Rescuer,
                    seq,
                    color: info.color,
                });
            }
        }
        None
    }

    /// The thread name of a worker: `kworker/N:M` (per-CPU), `kworker/N:MH` (high priority),
    /// `kworker/uP:M` (unbound, P the pool id), as in Linux.
    pub fn worker_name(&self, pool: PoolId, worker: WorkerId) -> WorkerName {
        let st = self.lock();
        let p = &st.pools[usize::from(pool.0)];
        WorkerName::new(p.cpu, pool, worker.0, p.highpri)
    }
}

/// A worker's thread name (its `Display`), from [`Workqueues::worker_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerName {
    cpu: Option<usize>,
    pool: PoolId,
    worker: WorkerId,
    highpri: bool,
}

impl WorkerName {
    pub(crate) fn new(cpu: Option<usize>, pool: PoolId, worker: u16, highpri: bool) -> Self {
        Self {
            cpu,
            pool,
            worker: WorkerId(worker),
            highpri,
        }
    }
}

impl fmt::Display for WorkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cpu {
            Some(cpu) => write!(f, "kworker/{}:{}", cpu, self.worker.0)?,
            None => write!(f, "kworker/u{}:{}", self.pool.0, self.worker.0)?,
        }
        if self.highpri {
            f.write_str("H")?;
        }
        Ok(())
    }
}

/// May `wq` take a new item? Not once destroyed; while draining, only from its own items.
pub(crate) fn accepts<L>(q: &Wq<L>, wq: WqId, chained: Option<WqId>) -> bool {
    !q.destroyed && (q.nr_drainers == 0 || chained == Some(wq))
}

/// Puts an item whose PENDING bit the caller owns on `pool` (or on the pool where it is
/// still running) for `wq`: active on the worklist if the pool workqueue is below
/// `max_active`, inactive otherwise. Linux's `__queue_work` + `insert_work`.
pub(crate) fn insert_work<W: WorkItem, L: WorkList<W>>(
    st: &mut State<W, L>,
    w: W,
    wq: WqId,
    pool: usize,
) -> Actions {
    let ws = w.work();
    let pool = match ws.running() {
        Some((_, running_pool)) => usize::from(running_pool),
        None => pool,
    };
    let q = &mut st.wqs[usize::from(wq.0)];
    let color = (q.work_color % NR_COLORS as u64) as u8;
    let max_active = q.max_active;
    let pwq = &mut q.pwqs[pool];
    pwq.in_flight[usize::from(color)] += 1;
    let mut info = Info {
        loc: Loc::Inactive,
        color,
        pool: pool as u16,
        wq: wq.0,
    };
    let mut actions = Actions::new();
    if pwq.nr_active < max_active {
        pwq.nr_active += 1;
        info.loc = Loc::Worklist;
        ws.set_info(info);
        let p = &mut st.pools[pool];
        p.worklist.push_back(w);
        actions.push_opt(p.kick());
    } else {
        ws.set_info(info);
        pwq.inactive.push_back(w);
    }
    actions
}

/// An instance of color `color` leaves `wq`'s part of `pool` (it finished, or was canceled):
/// `active` if it counted in `nr_active`, whose freed slot goes to the first inactive item
/// (Linux's `pwq_dec_nr_in_flight` + `pwq_activate_first_inactive`).
pub(crate) fn retire<W: WorkItem, L: WorkList<W>>(
    st: &mut State<W, L>,
    wq: WqId,
    pool: usize,
    color: u8,
    active: bool,
) -> Actions {
    let pwq = &mut st.wqs[usize::from(wq.0)].pwqs[pool];
    pwq.in_flight[usize::from(color)] -= 1;
    let mut actions = Actions::new();
    if active {
        pwq.nr_active -= 1;
        if let Some(next) = pwq.inactive.pop_front() {
            pwq.nr_active += 1;
            next.work().set_loc(Loc::Worklist);
            let p = &mut st.pools[pool];
            p.worklist.push_back(next);
            actions.push_opt(p.kick());
        }
    }
    actions
}

#[cfg(test)]
pub(crate) mod tests;
