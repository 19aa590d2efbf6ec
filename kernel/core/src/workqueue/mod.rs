//! Workqueues (Linux's `kernel/workqueue.c`): run a function later, in a kernel thread.
//!
//! The logic (the pending bit, worker pools, concurrency management, flush and cancel, the
//! rescuer) is the host-tested crate `sheaf-workqueue` (`kernel/crates/workqueue`); this module
//! plugs the kernel into it, as its crate docs ("What the kernel provides") ask, and offers the
//! Linux-named API. `docs/workqueue.md` has the whole picture.
//!
//! - **Items**: [`WorkRef`], an `Arc` of a [`Work`] (the crate's `WorkStruct`, the function and
//!   a name for the dump); a [`DelayedWork`] is the same item used with the delayed calls.
//! - **Lists**: [`WorkArcList`], the core's intrusive [`ArcList`] over the link each [`Work`]
//!   embeds: queueing never allocates, as Linux's `queue_work` does not.
//! - **The lock**: the crate's lock spins; every call into it is made with local interrupts
//!   off ([`IrqSave`]), since the scheduler hooks and the timer call into it too.
//! - **Workers**: one thread per worker (`kworker/N:M`), created by the manager thread
//!   (`kworker-mgr`) when the crate asks ([`Action::CreateWorker`] may come from inside the
//!   scheduler, where nothing may be spawned). Every allocation of a creation is fallible, so
//!   out of memory is a failed creation (the crate's mayday to the rescuers, and a retry
//!   later), never a panic; sleeping and waking allocate nothing (the core's intrusive wait
//!   and run queues).
//! - **Concurrency management**: the scheduler tells the crate when a worker executing an item
//!   blocks and wakes (`schedule` and `wake` call `on_block` / `on_wake`: the
//!   crate's `worker_sleeping` / `worker_waking`).
//! - **Timers**: a deadline (jiffies) per pool for its idle timer and one for the retry after a
//!   failed worker creation, in arrays made at start-up, and the delayed items' timers on an
//!   intrusive list through a second link every [`Work`] embeds: arming a timer never
//!   allocates. The tick on CPU 0 wakes the manager when the first deadline is due, and the
//!   manager fires the timers in thread context.
//! - **Chained work**: each worker and rescuer keeps the job it executes where
//!   [`queue_work`] / [`queue_work_on`] called from inside that item find it (by the calling
//!   thread), so an item may queue on its own draining workqueue (Linux's `is_chained_work`).
//! - **Waiting** (flush, cancel, drain): a generation counter and a wait queue, bumped after
//!   every finished item, and on every tick while someone waits (the crate also waits for
//!   things that finish no item: a concurrent canceler, an item in transit). Interrupts are
//!   off only while the crate's lock may be held, not while the caller sleeps.
//! - **Rescuers**: a thread per `WQ_MEM_RECLAIM` queue, woken by a mayday. The slab
//!   allocator's destroy work runs on one, `slab_destroy` ([`slab_destroy_wq`]).
//! - **Retired workers** end their threads; the scheduler frees an exited thread's stack and
//!   structure once its last reference is gone, joined or not (`crate::sched`).
// The workqueues are safe code on the core's safe API, as they were as a service: the
// compiler keeps them so.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::memory::cache_alloc::{CacheAlloc, CacheTag, StaticCache};
use crate::sched::{self, SpawnError, Thread};
use crate::sync::IrqSpinLockGuard;
use crate::sync::arc_list::{ArcList, Linked, ListLink};
use crate::sync::{IrqSave, IrqSpinLock, Mutex, WaitQueue};
use sheaf_workqueue::{
    Action, Actions, Job, Next, PoolId, WorkItem, WorkList, WorkStruct, WorkerId,
};
pub use sheaf_workqueue::{WQ_DFL_ACTIVE, WQ_MAX_ACTIVE, WqFlags, WqId};
use spin::Once;

use crate::time::{HZ, jiffies};

mod rescuer;
mod timers;
mod wait;
mod workers;

pub use rescuer::RESCUED;
use rescuer::*;
pub use timers::tick;
use timers::*;
use wait::*;
pub use wait::{WAITS, WAITS_WITH_IRQS_OFF};
use workers::*;
pub use workers::{FAIL_WORKER_CREATION, WORKER_CREATE_FAILURES};
pub(crate) use workers::{on_block, on_wake};

/// How long a worker beyond the two a pool keeps may stay idle before it is retired: 5 s
/// (Linux: 300 s), short enough for tests and the shell to see retirement.
pub const IDLE_WORKER_TIMEOUT: u64 = 5 * HZ as u64;

/// After a failed worker creation, the pool asks again this many ticks later (Linux's
/// `CREATE_COOLDOWN` is 1 s; shorter here so a test sees recovery quickly).
const CREATE_RETRY: u64 = HZ as u64 / 10;

/// A work item: the crate's [`WorkStruct`], the function to run and a name (shown by the
/// `workqueues` command, where Linux prints the function's symbol). Used through [`WorkRef`].
pub struct Work {
    ws: WorkStruct,
    /// Where the item is linked while it waits on a list of the crate.
    link: ListLink<Work>,
    /// Where the item is linked while its delayed-work timer is armed (Linux's `timer_list` in
    /// `delayed_work`): a link of its own, because a stale timer of a canceled item may still
    /// be on the timer list while the item is queued again on a worklist.
    timer: ListLink<Work, TimerLink>,
    /// When the timer fires (jiffies), while it is on the timer list (under its lock).
    timer_at: AtomicU64,
    func: Box<dyn Fn(&WorkRef) + Send + Sync>,
    name: &'static str,
}

/// The marker of a [`Work`]'s timer link: the timer list is an `ArcList<Work, TimerLink>`.
pub struct TimerLink;

/// A handle to a [`Work`] (an `Arc`: cloning it does not allocate). What the queueing calls
/// take; the function gets it too, as Linux's gets its `work_struct`.
#[derive(Clone)]
pub struct WorkRef(Arc<Work, WorkAlloc>);

/// The static cache of work items (`/sys/kernel/slab/work_struct`): set up at the first item
/// made once the slab allocator is up ([`crate::memory::cache_alloc`]).
pub struct WorkCache;

impl CacheTag for WorkCache {
    fn cache() -> &'static StaticCache {
        static CACHE: StaticCache = StaticCache::new("work_struct");
        &CACHE
    }
}

/// The allocator of [`Work`] items: their static cache.
pub type WorkAlloc = CacheAlloc<WorkCache>;

/// A work item queued with a delay (Linux's `struct delayed_work`): any [`WorkRef`], used with
/// [`queue_delayed_work`], [`mod_delayed_work`] and [`cancel_delayed_work_sync`]; the crate
/// keeps its deadline and the timer list here fires it.
pub type DelayedWork = WorkRef;

impl WorkRef {
    /// A new idle item that runs `func` (Linux's `INIT_WORK`). `name` is what the dump shows.
    pub fn new(name: &'static str, func: impl Fn(&WorkRef) + Send + Sync + 'static) -> Self {
        let work = Work {
            ws: WorkStruct::new(),
            link: ListLink::new(),
            timer: ListLink::new(),
            timer_at: AtomicU64::new(u64::MAX),
            func: Box::new(func),
            name,
        };
        Self(Arc::new_in(work, WorkAlloc::new()))
    }

    /// The item's name.
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// Where the item is (an object of the `work_struct` cache, once it is set up).
    pub fn as_ptr(&self) -> *const Work {
        Arc::as_ptr(&self.0)
    }

    /// Is the item pending (queued or on its timer, not yet started)? (Linux's `work_pending`.)
    pub fn is_pending(&self) -> bool {
        self.0.ws.is_pending()
    }
}

impl Linked for Work {
    fn link(&self) -> &ListLink<Work> {
        &self.link
    }
}

impl Linked<TimerLink> for Work {
    fn link(&self) -> &ListLink<Work, TimerLink> {
        &self.timer
    }
}

impl WorkItem for WorkRef {
    fn work(&self) -> &WorkStruct {
        &self.0.ws
    }

    fn describe(&self, f: &mut dyn fmt::Write) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl fmt::Debug for WorkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkRef({})", self.0.name)
    }
}

/// A workqueue (Linux's `struct workqueue_struct *`): a name, flags and `max_active`; its
/// items run in the shared worker pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workqueue {
    id: WqId,
}

impl Workqueue {
    /// The crate's id of the queue.
    pub fn id(self) -> WqId {
        self.id
    }
}

/// Why [`alloc_workqueue`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WqError {
    /// The crate refused (`max_active` too large, too many queues).
    Alloc(sheaf_workqueue::AllocError),
    /// The rescuer thread of a `WQ_MEM_RECLAIM` queue could not be created (or there was no
    /// memory to register it).
    Rescuer(SpawnError),
}

type Wqs = sheaf_workqueue::Workqueues<WorkRef, WorkArcList>;

/// The workqueue crate's lists, kept in the items themselves (`crate::sync::arc_list`): the
/// crate guarantees an item is on one list at a time, and keeps every list behind its lock.
#[derive(Default)]
pub struct WorkArcList(ArcList<Work, (), WorkAlloc>);

impl WorkList<WorkRef> for WorkArcList {
    fn push_back(&mut self, w: WorkRef) {
        self.0.push_back(w.0);
    }

    fn push_front(&mut self, w: WorkRef) {
        self.0.push_front(w.0);
    }

    fn pop_front(&mut self) -> Option<WorkRef> {
        self.0.pop_front().map(WorkRef)
    }

    fn remove(&mut self, work: &WorkStruct) -> Option<WorkRef> {
        self.0
            .take_first(|item| core::ptr::eq(&item.ws, work))
            .map(WorkRef)
    }

    fn take_first(&mut self, pred: &mut dyn FnMut(&WorkRef) -> bool) -> Option<WorkRef> {
        // Cloning a handle only counts a reference (no allocation).
        self.0
            .take_first(|item| pred(&WorkRef(item.clone())))
            .map(WorkRef)
    }

    fn for_each(&self, f: &mut dyn FnMut(&WorkRef)) {
        self.0.for_each(|item| f(&WorkRef(item.clone())));
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// What the kernel keeps beside the crate's state.
struct Globals {
    wqs: Wqs,
    /// Per pool: the crate asked for a worker ([`Action::CreateWorker`]), for the manager.
    create: Vec<AtomicBool>,
    /// Every timer (see [`Timers`]).
    timers: IrqSpinLock<Timers>,
    nr_cpus: usize,
}

static G: Once<Globals> = Once::new();

fn g() -> &'static Globals {
    G.get().expect("workqueue::init has run")
}

/// Calls into the crate with local interrupts off (its lock spins, and the scheduler hooks take
/// it too).
fn locked<T>(f: impl FnOnce(&'static Wqs) -> T) -> T {
    let _irq = IrqSave::new();
    f(&g().wqs)
}

// ---------------------------------------------------------------------------------------------
// Start-up.

/// Creates the workqueues (system queues included) and starts the manager thread. Called once
/// at boot by `start_cpus`, with every CPU online.
pub(crate) fn init() {
    let nr_cpus = crate::cpu::online().count();
    G.call_once(|| {
        let wqs = Wqs::new(nr_cpus, IDLE_WORKER_TIMEOUT, crate::cpu::current_id);
        let nr_pools = 2 * nr_cpus + 2;
        Globals {
            create: (0..nr_pools).map(|_| AtomicBool::new(false)).collect(),
            timers: IrqSpinLock::new(Timers {
                idle: alloc::vec![u64::MAX; nr_pools],
                kick: alloc::vec![u64::MAX; nr_pools],
                delayed: ArcList::default(),
            }),
            wqs,
            nr_cpus,
        }
    });
    sched::spawn("kworker-mgr", manager_thread).expect("memory for the workqueue manager");
    let slab_wq = alloc_workqueue("slab_destroy", WqFlags::WQ_MEM_RECLAIM, 0)
        .expect("memory for the slab allocator's reclaim workqueue");
    SLAB_WQ.call_once(|| slab_wq);
    SLAB_WORK.call_once(|| {
        WorkRef::new("slab_caches_to_rcu_destroy", |_| {
            crate::memory::kmalloc::run_slab_work()
        })
    });
    // Heads queued before the workqueues were up wait on the list: run them now.
    if crate::memory::kmalloc::slab_work_pending() {
        queue_slab_work();
    }
}

/// The one work item of the slab allocator's pending work (Linux's
/// `slab_caches_to_rcu_destroy_work`), made once at start-up: it runs every head on the core's
/// list (`run_slab_work`), the `async_destroy_work` embedded in each cache being destroyed.
static SLAB_WORK: Once<WorkRef> = Once::new();

/// The slab allocator's reclaim workqueue, `slab_destroy` (`WQ_MEM_RECLAIM`, per-CPU), made at
/// start-up: [`SLAB_WORK`] runs there, so a cache destroy finishes through the queue's rescuer
/// when no worker can be created (Linux's slab allocator has its `WQ_MEM_RECLAIM` queue too,
/// `slub_flushwq`; its destroy work runs on `system_wq`).
static SLAB_WQ: Once<Workqueue> = Once::new();

/// The workqueue the slab allocator's destroy work runs on ([`SLAB_WQ`], `slab_destroy`).
pub fn slab_destroy_wq() -> Workqueue {
    *SLAB_WQ.get().expect("workqueue::init has run")
}

/// Queues [`SLAB_WORK`] on [`SLAB_WQ`] (called by the slab platform after a head was linked on
/// its list; does nothing before [`init`], which then queues it if heads wait). Allocates nothing; queueing an item already pending does nothing, and
/// one queued while it runs runs again, so every head linked is run.
pub fn queue_slab_work() {
    if let (Some(work), Some(&wq)) = (SLAB_WORK.get(), SLAB_WQ.get()) {
        queue_work(wq, work);
    }
}

// ---------------------------------------------------------------------------------------------
// The API, with Linux's names.

/// Allocates a workqueue (Linux's `alloc_workqueue`). `max_active` is the maximum number of
/// execution contexts per CPU which can be assigned to the work items of the workqueue (0: the
/// default, [`WQ_DFL_ACTIVE`]). A `WQ_MEM_RECLAIM` queue gets its rescuer thread now.
pub fn alloc_workqueue(
    name: &'static str,
    flags: WqFlags,
    max_active: usize,
) -> Result<Workqueue, WqError> {
    let id = locked(|w| w.alloc_workqueue(name, flags, max_active)).map_err(WqError::Alloc)?;
    let wq = Workqueue { id };
    if flags.contains(WqFlags::WQ_MEM_RECLAIM)
        && let Err(e) = start_rescuer(id, name)
    {
        waiting(|w, wait| w.destroy_workqueue(id, wait));
        return Err(WqError::Rescuer(e));
    }
    Ok(wq)
}

/// Makes destroyed workqueue `old` a new one in place ([`alloc_workqueue`]'s arguments; Linux
/// frees a destroyed queue, which the crate never does: see
/// `sheaf_workqueue::Workqueues::reuse_workqueue`). For users that create and destroy queues
/// repeatedly (the module exports): refused unless `old` is destroyed and idle, and for
/// `WQ_MEM_RECLAIM`. `old` must not be used by anyone else any more.
pub fn reuse_workqueue(
    old: Workqueue,
    name: &'static str,
    flags: WqFlags,
    max_active: usize,
) -> Result<Workqueue, WqError> {
    locked(|w| w.reuse_workqueue(old.id, name, flags, max_active)).map_err(WqError::Alloc)?;
    Ok(old)
}

/// The system workqueue (`events`, per-CPU), the one [`schedule_work`] uses. Multi-CPU
/// multi-threaded; use it when the item does not sleep long.
pub fn system_wq() -> Workqueue {
    Workqueue {
        id: sheaf_workqueue::SYSTEM_WQ,
    }
}

/// The system high-priority workqueue (`events_highpri`).
pub fn system_highpri_wq() -> Workqueue {
    Workqueue {
        id: sheaf_workqueue::SYSTEM_HIGHPRI_WQ,
    }
}

/// The system workqueue for long items (`events_long`).
pub fn system_long_wq() -> Workqueue {
    Workqueue {
        id: sheaf_workqueue::SYSTEM_LONG_WQ,
    }
}

/// The unbound system workqueue (`events_unbound`): items are not bound to any specific CPU,
/// not concurrency managed, and all queued items are executed immediately as long as
/// `max_active` limit is not reached and resources are available.
pub fn system_unbound_wq() -> Workqueue {
    Workqueue {
        id: sheaf_workqueue::SYSTEM_UNBOUND_WQ,
    }
}

/// Queues `work` on workqueue `wq` (Linux's `queue_work`). Returns `false` if `work` was
/// already on a queue, `true` otherwise. The item is queued on the CPU it was submitted from,
/// but if that CPU dies it can be processed by another CPU. The item is its own list node:
/// queueing does not allocate. Called from inside an item of `wq` (in its worker or rescuer,
/// not from an interrupt handler), it is accepted while `wq` drains (chained work).
pub fn queue_work(wq: Workqueue, work: &WorkRef) -> bool {
    let (ok, actions) = queue_from_here(None, wq.id, work);
    perform(actions, Some(work));
    ok
}

/// Queues `work` on a specific CPU (Linux's `queue_work_on`). Returns `false` if it was already
/// on a queue, `true` otherwise. The caller must ensure the CPU can't go away. Chained work
/// as for [`queue_work`].
pub fn queue_work_on(cpu: usize, wq: Workqueue, work: &WorkRef) -> bool {
    let (ok, actions) = queue_from_here(Some(cpu), wq.id, work);
    perform(actions, Some(work));
    ok
}

/// Puts `work` in the kernel-global workqueue (Linux's `schedule_work`): `false` if it was
/// already there.
pub fn schedule_work(work: &WorkRef) -> bool {
    queue_work(system_wq(), work)
}

/// Queues `work` on `wq` after `delay` jiffies (Linux's `queue_delayed_work`). Returns `false`
/// if it was already pending. A delay of 0 queues at once. Arming the timer does not allocate
/// (the item embeds its timer link).
pub fn queue_delayed_work(wq: Workqueue, work: &DelayedWork, delay: u64) -> bool {
    let (ok, actions) = locked(|w| w.queue_delayed_work(wq.id, work.clone(), delay, jiffies()));
    perform(actions, Some(work));
    ok
}

/// Modifies a delayed item's timer, or queues it (Linux's `mod_delayed_work`): if `work` is
/// idle, equivalent to [`queue_delayed_work`]; if pending, its timer is modified to expire
/// after `delay` jiffies. Returns `false` if it was idle and queued, `true` if it was pending
/// and its timer was modified.
pub fn mod_delayed_work(wq: Workqueue, work: &DelayedWork, delay: u64) -> bool {
    let (ok, actions) = locked(|w| w.mod_delayed_work(wq.id, work.clone(), delay, jiffies()));
    perform(actions, Some(work));
    ok
}

/// Waits for `work` to finish executing the last queueing instance (Linux's `flush_work`).
/// Returns `true` if it waited for it, `false` if it was already idle. Must not be called by
/// the item itself.
pub fn flush_work(work: &WorkRef) -> bool {
    waiting(|w, wait| w.flush_work(work, wait))
}

/// Cancels `work` and waits for its execution to finish (Linux's `cancel_work_sync`). Can be
/// used even if the item re-queues itself. On return, `work` is guaranteed to be not pending
/// nor executing on any CPU. Returns `true` if it was pending.
pub fn cancel_work_sync(work: &WorkRef) -> bool {
    let (was, actions) = waiting(|w, wait| w.cancel_work_sync(work, wait));
    perform(actions, None);
    item_done();
    was
}

/// Cancels a delayed item and waits for it to finish (Linux's `cancel_delayed_work_sync`):
/// [`cancel_work_sync`] for a [`DelayedWork`] (its timer may still fire; it then does nothing).
pub fn cancel_delayed_work_sync(work: &DelayedWork) -> bool {
    cancel_work_sync(work)
}

/// Ensures that every item queued on `wq` before the call has finished execution (Linux's
/// `flush_workqueue`). Items queued meanwhile are not waited for.
pub fn flush_workqueue(wq: Workqueue) {
    waiting(|w, wait| w.flush_workqueue(wq.id, wait));
}

/// Drains `wq` (Linux's `drain_workqueue`): waits until the workqueue becomes empty. While
/// draining is in progress, only chain queueing is allowed: [`queue_work`] / [`queue_work_on`]
/// from inside an item of `wq` are accepted, every other queueing on it is refused. A delayed
/// item of `wq` whose timer fires meanwhile is refused too (its timer runs in no item).
pub fn drain_workqueue(wq: Workqueue) {
    waiting(|w, wait| w.drain_workqueue(wq.id, wait));
}

/// Safely terminates a workqueue (Linux's `destroy_workqueue`): all items still pending are
/// done first, and its rescuer stops. Cancel delayed items still on their timers first.
pub fn destroy_workqueue(wq: Workqueue) {
    let actions = waiting(|w, wait| w.destroy_workqueue(wq.id, wait));
    perform(actions, None);
}

/// Everything the `workqueues` command prints: every pool with its workers (idle, busy, what
/// they run), pending items and items executed, then every workqueue.
pub fn dump() -> String {
    let mut out = String::new();
    // Allocate with interrupts on as far as possible: the dump is small.
    out.reserve(4096);
    let _ = locked(|w| w.dump(&mut out));
    out
}

/// The longest [`try_dump`]: its buffer, reserved before the workqueues are locked.
const DUMP_BYTES: usize = 16 * 1024;

/// [`dump`] without infallible allocation, for the shell: `None` when there is no memory for
/// its buffer; a dump longer than 16 KiB ends with `...`.
pub fn try_dump() -> Option<String> {
    /// A `String` that never grows past its capacity (a write that does not fit fails).
    struct Capped<'a>(&'a mut String);
    impl core::fmt::Write for Capped<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            if self.0.capacity() - self.0.len() < s.len() {
                return Err(core::fmt::Error);
            }
            self.0.push_str(s);
            Ok(())
        }
    }
    let mut out = String::new();
    out.try_reserve_exact(DUMP_BYTES).ok()?;
    if locked(|w| w.dump(&mut Capped(&mut out))).is_err() {
        let keep = out.floor_char_boundary(DUMP_BYTES - 4);
        out.truncate(keep);
        out.push_str("...\n");
    }
    Some(out)
}

/// The numbers of every pool (as in [`dump`]), in pool order: `2 * cpu` and `2 * cpu + 1`
/// (high priority) for each CPU, then the unbound pools.
pub fn pool_stats() -> Vec<sheaf_workqueue::PoolStats> {
    locked(|w| w.pool_stats())
}

/// The numbers of workqueue `wq` (as in [`dump`]; also whether it is draining).
pub fn wq_stats(wq: Workqueue) -> sheaf_workqueue::WqStats {
    locked(|w| w.wq_stats()[usize::from(wq.id.0)])
}

/// How long, in jiffies, a worker beyond the ones a pool keeps may stay idle before it is
/// retired ([`IDLE_WORKER_TIMEOUT`] unless changed).
pub fn idle_worker_timeout() -> u64 {
    locked(|w| w.idle_timeout_of_workers())
}

/// Changes the idle timeout of workers (jiffies): tests shorten it to see workers retire
/// quickly, and set [`IDLE_WORKER_TIMEOUT`] back when done.
pub fn set_idle_worker_timeout(ticks: u64) {
    locked(|w| w.set_idle_timeout(ticks));
}
