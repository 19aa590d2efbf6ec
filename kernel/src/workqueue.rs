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
//! - **Concurrency management**: [`sched::BLOCK_HOOK`] and [`sched::WAKE_HOOK`] tell the crate
//!   when a worker executing an item blocks and wakes (`worker_sleeping` / `worker_waking`).
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
//!   structure once its last reference is gone, joined or not (`kcore::sched`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use kcore::sched::{self, SpawnError, Thread};
use kcore::sync::IrqSpinLockGuard;
use kcore::sync::arc_list::{ArcList, Linked, ListLink};
use kcore::sync::{IrqSave, IrqSpinLock, Mutex, WaitQueue};
use spin::Once;
use workqueue::{Action, Actions, Job, Next, PoolId, WorkItem, WorkList, WorkStruct, WorkerId};
pub use workqueue::{WQ_DFL_ACTIVE, WQ_MAX_ACTIVE, WqFlags, WqId};

use crate::time::{HZ, jiffies};

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
pub struct WorkRef(Arc<Work>);

/// A work item queued with a delay (Linux's `struct delayed_work`): any [`WorkRef`], used with
/// [`queue_delayed_work`], [`mod_delayed_work`] and [`cancel_delayed_work_sync`]; the crate
/// keeps its deadline and the timer list here fires it.
pub type DelayedWork = WorkRef;

impl WorkRef {
    /// A new idle item that runs `func` (Linux's `INIT_WORK`). `name` is what the dump shows.
    pub fn new(name: &'static str, func: impl Fn(&WorkRef) + Send + Sync + 'static) -> Self {
        Self(Arc::new(Work {
            ws: WorkStruct::new(),
            link: ListLink::new(),
            timer: ListLink::new(),
            timer_at: AtomicU64::new(u64::MAX),
            func: Box::new(func),
            name,
        }))
    }

    /// The item's name.
    pub fn name(&self) -> &'static str {
        self.0.name
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
    Alloc(workqueue::AllocError),
    /// The rescuer thread of a `WQ_MEM_RECLAIM` queue could not be created (or there was no
    /// memory to register it).
    Rescuer(SpawnError),
}

type Wqs = workqueue::Workqueues<WorkRef, WorkArcList>;

/// The workqueue crate's lists, kept in the items themselves (`kcore::sync::arc_list`): the
/// crate guarantees an item is on one list at a time, and keeps every list behind its lock.
#[derive(Default)]
pub struct WorkArcList(ArcList<Work>);

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
// Workers.

/// A worker thread's link to its pool's worker, for wake-ups, the scheduler hooks and chained
/// work.
struct WorkerSlot {
    pool: PoolId,
    id: WorkerId,
    /// Set by [`Action::WakeWorker`] / [`Action::Retire`], consumed by the idle sleep.
    woken: AtomicBool,
    /// Executing an item: the scheduler hooks report blocking only then.
    in_item: AtomicBool,
    waitq: WaitQueue,
    /// The job it executes (for [`queue_work`] from inside the item).
    job: JobCell,
}

/// A thread that executes items: a worker or a rescuer.
#[derive(Clone)]
enum Executor {
    Worker(Arc<WorkerSlot>),
    Rescuer(Arc<Rescuer>),
}

impl Executor {
    fn job(&self) -> &JobCell {
        match self {
            Executor::Worker(slot) => &slot.job,
            Executor::Rescuer(r) => &r.job,
        }
    }
}

/// Live workers, sorted by (pool, worker).
///
/// The registries ([`WORKERS`], [`EXECUTORS`], [`RESCUERS`]) are vectors whose room is made
/// fallibly (`try_reserve`) before a thread is created: a failure is a failed worker creation
/// (a mayday), never a panic. Entries are added only under [`MGR`], right after the room was
/// made under it, so the room made is there when the entry goes in; entries go away anywhere
/// (which only leaves more room).
static WORKERS: IrqSpinLock<Vec<(WorkerKey, Arc<WorkerSlot>)>> = IrqSpinLock::new(Vec::new());
/// A worker's key in [`WORKERS`]: (pool, worker).
type WorkerKey = (u16, u16);
/// Every worker and rescuer thread, sorted by thread id (the scheduler hooks look their
/// thread up here, and [`queue_work`] the job the calling thread executes).
static EXECUTORS: IrqSpinLock<Vec<(u64, Executor)>> = IrqSpinLock::new(Vec::new());

/// Held by the manager from reserving a new worker's id and room to registering it, by
/// [`alloc_workqueue`] while it registers a rescuer, and by a worker waking from idle (the
/// only time the crate may retire it and free its id): so the id the crate reserves is the one
/// it then gives, and the room made in the registries is still there.
static MGR: Mutex<()> = Mutex::new(());
/// The manager sleeps here; [`MGR_KICK`] says there is something to do.
static MGR_WQ: WaitQueue = WaitQueue::new();
static MGR_KICK: AtomicBool = AtomicBool::new(false);

/// Fault injection: while set, the manager's worker creation fails as if the thread's stack
/// could not be allocated. Tests only: it keeps a pool without new workers while memory is
/// plentiful (the tests of real exhaustion use it only until memory is taken).
pub static FAIL_WORKER_CREATION: AtomicBool = AtomicBool::new(false);

/// Worker creations that failed (out of memory, or injected).
pub static WORKER_CREATE_FAILURES: AtomicU64 = AtomicU64::new(0);

fn kick_manager() {
    MGR_KICK.store(true, Ordering::Release);
    MGR_WQ.wake_all();
}

fn find_worker(pool: PoolId, worker: WorkerId) -> Option<Arc<WorkerSlot>> {
    let workers = WORKERS.lock();
    let i = workers
        .binary_search_by_key(&(pool.0, worker.0), |(k, _)| *k)
        .ok()?;
    Some(workers[i].1.clone())
}

fn find_executor(tid: u64) -> Option<Executor> {
    let executors = EXECUTORS.lock();
    let i = executors.binary_search_by_key(&tid, |(k, _)| *k).ok()?;
    Some(executors[i].1.clone())
}

/// Adds `value` under `key` to a registry sorted by key, in room made before (see
/// [`WORKERS`]): allocates nothing.
fn insert_sorted<K: Ord, V>(list: &mut Vec<(K, V)>, key: K, value: V) {
    debug_assert!(list.len() < list.capacity(), "room made before the thread");
    let i = list.partition_point(|(k, _)| *k < key);
    list.insert(i, (key, value));
}

fn remove_sorted<K: Ord, V>(list: &mut Vec<(K, V)>, key: &K) -> Option<V> {
    let i = list.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
    Some(list.remove(i).1)
}

fn wake_worker(pool: PoolId, worker: WorkerId) {
    if let Some(slot) = find_worker(pool, worker) {
        slot.woken.store(true, Ordering::Release);
        slot.waitq.wake_all();
    }
}

/// The CPU of a per-CPU pool (`None`: unbound).
fn pool_cpu(pool: PoolId) -> Option<usize> {
    let p = usize::from(pool.0);
    (p < 2 * g().nr_cpus).then_some(p / 2)
}

/// A thread name formatted in place (no allocation): `kworker/N:MH` and the like fit.
struct ThreadName {
    buf: [u8; 32],
    len: usize,
}

impl ThreadName {
    fn new() -> Self {
        Self {
            buf: [0; 32],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `str`s are written in: always UTF-8.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("kworker")
    }
}

impl fmt::Write for ThreadName {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The manager creates a worker for `pool` (thread context). If anything of it cannot be
/// allocated, the pool sends its mayday (`worker_create_failed`: the rescuers of its
/// `WQ_MEM_RECLAIM` queues run their items) and asks again [`CREATE_RETRY`] ticks later.
fn create_worker(pool: PoolId) {
    let _m = MGR.lock();
    if try_create_worker(pool).is_err() {
        WORKER_CREATE_FAILURES.fetch_add(1, Ordering::Relaxed);
        perform(locked(|w| w.worker_create_failed(pool)), None);
        arm_pool_timer(PoolTimer::Kick, pool, jiffies() + CREATE_RETRY);
    }
}

/// Creates and registers a worker of `pool`, with [`MGR`] held. Every allocation is fallible
/// and made before the thread exists (the crate's room for the worker, its slot, the room in
/// the registries, then the thread's name, stack and structure in `spawn`), so a failure
/// leaves nothing behind and nothing is left to fail once the thread runs.
fn try_create_worker(pool: PoolId) -> Result<(), SpawnError> {
    if FAIL_WORKER_CREATION.load(Ordering::Acquire) {
        return Err(SpawnError::OutOfMemory);
    }
    // The id the crate will give (kept by MGR), with room for it in the pool.
    let id = locked(|w| w.reserve_worker(pool))?;
    let mut name = ThreadName::new();
    fmt::Write::write_fmt(
        &mut name,
        format_args!("{}", locked(|w| w.worker_name(pool, id))),
    )
    .map_err(|_| SpawnError::OutOfMemory)?;
    let slot = Arc::try_new(WorkerSlot {
        pool,
        id,
        woken: AtomicBool::new(false),
        in_item: AtomicBool::new(false),
        waitq: WaitQueue::new(),
        job: IrqSpinLock::new(None),
    })?;
    WORKERS.lock().try_reserve(1)?;
    EXECUTORS.lock().try_reserve(1)?;
    let s = slot.clone();
    let handle = match pool_cpu(pool) {
        Some(cpu) => sched::spawn_on(cpu, name.as_str(), move || worker_thread(s)),
        None => sched::spawn(name.as_str(), move || worker_thread(s)),
    }?;
    // The thread waits for MGR before it looks for work: registered before it starts.
    let tid = handle.thread().id;
    insert_sorted(&mut WORKERS.lock(), (pool.0, id.0), slot.clone());
    insert_sorted(&mut EXECUTORS.lock(), tid, Executor::Worker(slot));
    let real = locked(|w| w.worker_created(pool));
    assert_eq!(real, id, "worker id reserved under MGR");
    Ok(())
}

/// A worker thread: take an item, run it, give it back; sleep when there is none.
fn worker_thread(slot: Arc<WorkerSlot>) {
    let (pool, id) = (slot.pool, slot.id);
    // Wait until the manager has registered this worker with the crate.
    drop(MGR.lock());
    let me = sched::current().id;
    let mut after_idle = false;
    loop {
        let _m = after_idle.then(|| MGR.lock());
        let (next, actions) = locked(|w| w.worker_next(pool, id, jiffies()));
        perform(actions, None);
        match next {
            Next::Run(job) => {
                drop(_m);
                after_idle = false;
                let job = run_job(job, Some(&slot), &slot.job);
                let actions = locked(|w| {
                    // A wake-up that raced with the block hook may have left the crate
                    // thinking this worker sleeps: it runs.
                    w.worker_waking(pool, id);
                    w.worker_done(job)
                });
                perform(actions, None);
                item_done();
            }
            Next::Idle => {
                drop(_m);
                after_idle = true;
                // Sleeping allocates nothing (the wait link is in the thread).
                slot.waitq
                    .wait_until(|| slot.woken.swap(false, Ordering::AcqRel).then_some(()));
            }
            Next::Exit => {
                remove_sorted(&mut WORKERS.lock(), &(pool.0, id.0));
                remove_sorted(&mut EXECUTORS.lock(), &me);
                return;
            }
        }
    }
}

/// Runs the job's function, with the job in the executing thread's `cell` meanwhile (for
/// [`queue_work`] from inside the item), and gives the job back.
fn run_job(job: Job<WorkRef>, slot: Option<&WorkerSlot>, cell: &JobCell) -> Job<WorkRef> {
    // Cloning a handle only counts a reference (no allocation).
    let work = job.work.clone();
    *cell.lock() = Some(job);
    if let Some(s) = slot {
        s.in_item.store(true, Ordering::Release);
    }
    (work.0.func)(&work);
    if let Some(s) = slot {
        s.in_item.store(false, Ordering::Release);
    }
    cell.lock()
        .take()
        .expect("the executing job stays in its cell")
}

// ---------------------------------------------------------------------------------------------
// Chained work: what the calling thread executes.

/// The job a worker or rescuer thread executes right now (`None` between items). Only that
/// thread writes it; [`queue_work`] from inside the item reads it.
type JobCell = IrqSpinLock<Option<Job<WorkRef>>>;

/// The calling thread if it is a worker or rescuer; `None` in an interrupt handler (which may
/// have interrupted a worker, but is not part of its item, as Linux's `in_task()` check of
/// `current_wq_worker` says).
fn current_executor() -> Option<Executor> {
    if crate::cpu::in_interrupt() {
        return None;
    }
    find_executor(sched::current().id)
}

/// Queues `work` on `wq` (on `cpu`'s pool, or the caller's), through the crate's chained path
/// when the caller is an item executing (Linux's `is_chained_work`: a draining workqueue still
/// takes items from its own items).
fn queue_from_here(cpu: Option<usize>, wq: WqId, work: &WorkRef) -> (bool, Actions) {
    let exec = current_executor();
    let job: Option<IrqSpinLockGuard<'_, Option<Job<WorkRef>>>> =
        exec.as_ref().map(|e| e.job().lock());
    match job.as_deref().and_then(Option::as_ref) {
        Some(job) => locked(|w| match cpu {
            Some(cpu) => w.queue_work_on_from(job, cpu, wq, work.clone()),
            None => w.queue_work_from(job, wq, work.clone()),
        }),
        None => locked(|w| match cpu {
            Some(cpu) => w.queue_work_on(cpu, wq, work.clone()),
            None => w.queue_work(wq, work.clone()),
        }),
    }
}

/// The worker slot of thread `t`, if it is a worker executing an item.
fn worker_in_item(t: &Thread) -> Option<Arc<WorkerSlot>> {
    match find_executor(t.id)? {
        Executor::Worker(slot) if slot.in_item.load(Ordering::Acquire) => Some(slot),
        _ => None,
    }
}

/// [`sched::BLOCK_HOOK`]: a worker executing an item is about to sleep (interrupts off, inside
/// `schedule`): the crate may wake another worker or ask the manager for one.
fn on_block(t: &Thread) {
    if let Some(slot) = worker_in_item(t) {
        let actions = g().wqs.worker_sleeping(slot.pool, slot.id);
        perform(actions, None);
    }
}

/// [`sched::WAKE_HOOK`]: a worker that blocked inside an item was woken.
fn on_wake(t: &Thread) {
    if let Some(slot) = worker_in_item(t) {
        locked(|w| w.worker_waking(slot.pool, slot.id));
    }
}

// ---------------------------------------------------------------------------------------------
// Rescuers.

struct Rescuer {
    wq: WqId,
    woken: AtomicBool,
    stop: AtomicBool,
    waitq: WaitQueue,
    /// The job it executes (for [`queue_work`] from inside the item).
    job: JobCell,
}

/// The rescuers of every `WQ_MEM_RECLAIM` queue. Added to under [`MGR`] after room was made
/// under it (see [`WORKERS`]); a mayday walks it under its lock, allocating nothing.
static RESCUERS: IrqSpinLock<Vec<Arc<Rescuer>>> = IrqSpinLock::new(Vec::new());

/// Items executed by rescuers.
pub static RESCUED: AtomicU64 = AtomicU64::new(0);

fn rescuer_thread(r: Arc<Rescuer>) {
    let me = sched::current().id;
    loop {
        r.waitq.wait_until(|| {
            (r.woken.swap(false, Ordering::AcqRel) || r.stop.load(Ordering::Acquire)).then_some(())
        });
        if r.stop.load(Ordering::Acquire) {
            remove_sorted(&mut EXECUTORS.lock(), &me);
            return;
        }
        while let Some(job) = locked(|w| w.rescuer_next(r.wq)) {
            let job = run_job(job, None, &r.job);
            RESCUED.fetch_add(1, Ordering::Relaxed);
            perform(locked(|w| w.worker_done(job)), None);
            item_done();
        }
    }
}

/// Creates and registers the rescuer thread of `wq` (named `name`), allocating fallibly.
fn start_rescuer(wq: WqId, name: &'static str) -> Result<(), SpawnError> {
    let _m = MGR.lock();
    let r = Arc::try_new(Rescuer {
        wq,
        woken: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        waitq: WaitQueue::new(),
        job: IrqSpinLock::new(None),
    })?;
    RESCUERS.lock().try_reserve(1)?;
    EXECUTORS.lock().try_reserve(1)?;
    let r2 = r.clone();
    let handle = sched::spawn(name, move || rescuer_thread(r2))?;
    // It runs items only after a mayday, which reaches it through RESCUERS: registered by then.
    insert_sorted(
        &mut EXECUTORS.lock(),
        handle.thread().id,
        Executor::Rescuer(r.clone()),
    );
    let mut rescuers = RESCUERS.lock();
    debug_assert!(
        rescuers.len() < rescuers.capacity(),
        "room made before the thread"
    );
    rescuers.push(r);
    Ok(())
}

/// A mayday: wakes every rescuer (they look for their queue's items in pools in trouble).
/// Allocates nothing.
fn wake_rescuers() {
    for r in RESCUERS.lock().iter() {
        r.woken.store(true, Ordering::Release);
        r.waitq.wake_all();
    }
}

/// Stops the rescuer of `wq` (destroyed). Allocates nothing.
fn stop_rescuer(wq: WqId) {
    let mut rescuers = RESCUERS.lock();
    while let Some(i) = rescuers.iter().position(|r| r.wq == wq) {
        let r = rescuers.remove(i);
        r.stop.store(true, Ordering::Release);
        r.waitq.wake_all();
    }
}

// ---------------------------------------------------------------------------------------------
// Timers.

/// Every timer of the workqueues, behind one irq-safe lock (they are armed from any context),
/// all allocated at start-up: arming one never allocates (Linux's `timer_list`s are embedded
/// too).
///
/// - Per pool, the deadline of its idle timer and of the retry after a failed worker creation
///   (`u64::MAX`: not armed). One of each is enough: the crate keeps at most one idle timer
///   per pool armed, and a retry is idempotent. If one is armed again before it fires, the
///   earlier deadline is kept: firing early is harmless (`idle_timeout` re-arms for the
///   remaining time, `pool_kick` does nothing if no worker is needed).
/// - The delayed items whose timer is armed, on an intrusive list through each item's timer
///   link (a reference each, as a `timer_list` keeps its `delayed_work` in use). Arming an item
///   already on it keeps the earlier deadline, for the same reason: a timer that fires before
///   the item's deadline (the crate keeps it in the `WorkStruct`) makes
///   `delayed_work_timer_fn` ask for it again, and a stale timer (a canceled item) does
///   nothing.
struct Timers {
    idle: Vec<u64>,
    kick: Vec<u64>,
    delayed: ArcList<Work, TimerLink>,
}

impl Timers {
    /// The first deadline of all (`u64::MAX`: none).
    fn first_deadline(&self) -> u64 {
        let mut first = self
            .idle
            .iter()
            .chain(&self.kick)
            .copied()
            .min()
            .unwrap_or(u64::MAX);
        self.delayed
            .for_each(|w| first = first.min(w.timer_at.load(Ordering::Relaxed)));
        first
    }

    /// Takes a timer due at `now` off the lists: the pools' first, then the delayed item with
    /// the earliest deadline.
    fn take_due(&mut self, now: u64) -> Option<Fire> {
        if let Some(p) = self.idle.iter().position(|&at| at <= now) {
            self.idle[p] = u64::MAX;
            return Some(Fire::Idle(PoolId(p as u16)));
        }
        if let Some(p) = self.kick.iter().position(|&at| at <= now) {
            self.kick[p] = u64::MAX;
            return Some(Fire::Kick(PoolId(p as u16)));
        }
        let mut first: Option<(u64, Arc<Work>)> = None;
        self.delayed.for_each(|w| {
            let at = w.timer_at.load(Ordering::Relaxed);
            if at <= now && first.as_ref().is_none_or(|(f, _)| at < *f) {
                first = Some((at, w.clone()));
            }
        });
        let (_, work) = first?;
        let work = self.delayed.remove(&work).expect("found on the timer list");
        work.timer_at.store(u64::MAX, Ordering::Relaxed);
        Some(Fire::Delayed(WorkRef(work)))
    }
}

/// A timer that is due.
enum Fire {
    /// The pool's idle timer: retire workers idle too long.
    Idle(PoolId),
    /// Ask again for a worker after a failed creation.
    Kick(PoolId),
    /// A delayed item's timer.
    Delayed(WorkRef),
}

/// The first deadline of [`Timers`] (`u64::MAX`: none), read by the tick. Lowered when a timer
/// is armed and recomputed when the manager has fired the due ones, both under the timers'
/// lock, so no deadline is missed.
static NEXT_TIMER: AtomicU64 = AtomicU64::new(u64::MAX);

/// The pool timers.
#[derive(Clone, Copy)]
enum PoolTimer {
    Idle,
    Kick,
}

/// Arms `pool`'s timer of kind `kind` for `at` (keeping an earlier deadline).
fn arm_pool_timer(kind: PoolTimer, pool: PoolId, at: u64) {
    {
        let mut t = g().timers.lock();
        let slot = match kind {
            PoolTimer::Idle => &mut t.idle[usize::from(pool.0)],
            PoolTimer::Kick => &mut t.kick[usize::from(pool.0)],
        };
        *slot = (*slot).min(at);
        NEXT_TIMER.fetch_min(at, Ordering::AcqRel);
    }
    if at <= jiffies() {
        kick_manager();
    }
}

/// Arms `work`'s delayed-work timer for `at` (keeping an earlier deadline if it is armed).
fn arm_delayed(work: &WorkRef, at: u64) {
    {
        let mut t = g().timers.lock();
        let w = &work.0;
        if t.delayed.contains(w) {
            w.timer_at.fetch_min(at, Ordering::Relaxed);
        } else {
            w.timer_at.store(at, Ordering::Relaxed);
            // Cloning the `Arc` only counts a reference: the link is in the item.
            t.delayed.push_back(w.clone());
        }
        NEXT_TIMER.fetch_min(at, Ordering::AcqRel);
    }
    if at <= jiffies() {
        kick_manager();
    }
}

/// Fires the due timers (the manager, thread context).
fn run_timers(now: u64) {
    loop {
        let due = {
            let mut timers = g().timers.lock();
            let due = timers.take_due(now);
            if due.is_none() {
                NEXT_TIMER.store(timers.first_deadline(), Ordering::Release);
            }
            due
        };
        match due {
            None => return,
            Some(Fire::Idle(pool)) => perform(locked(|w| w.idle_timeout(pool, now)), None),
            Some(Fire::Delayed(work)) => {
                let actions = locked(|w| w.delayed_work_timer_fn(work.clone(), now));
                perform(actions, Some(&work));
            }
            Some(Fire::Kick(pool)) => perform(locked(|w| w.pool_kick(pool)), None),
        }
    }
}

/// The workqueues' share of the tick (interrupt context, every CPU): on CPU 0, wakes the
/// manager when a timer is due, and the waiters of flush and cancel (see [`item_done`]).
pub fn tick() {
    if kcore::cpu::current_id() != 0 || G.get().is_none() {
        return;
    }
    if NEXT_TIMER.load(Ordering::Acquire) <= jiffies() {
        kick_manager();
    }
    if WAITERS.load(Ordering::Acquire) > 0 {
        item_done();
    }
}

fn manager_thread() {
    loop {
        MGR_WQ.wait_until(|| MGR_KICK.swap(false, Ordering::AcqRel).then_some(()));
        run_timers(jiffies());
        for (i, flag) in g().create.iter().enumerate() {
            if flag.swap(false, Ordering::AcqRel) {
                create_worker(PoolId(i as u16));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Actions and waiting.

/// Carries out the crate's decisions. `work` is the item of the call that returned them (for
/// [`Action::ArmTimer`]). From the scheduler hook only `WakeWorker` and `CreateWorker` come,
/// which neither allocate nor sleep; arming a timer does not allocate either.
fn perform(actions: Actions, work: Option<&WorkRef>) {
    for a in actions {
        match a {
            Action::WakeWorker { pool, worker } | Action::Retire { pool, worker } => {
                wake_worker(pool, worker)
            }
            Action::CreateWorker { pool } => {
                g().create[usize::from(pool.0)].store(true, Ordering::Release);
                kick_manager();
            }
            Action::ArmIdleTimer { pool, at } => arm_pool_timer(PoolTimer::Idle, pool, at),
            Action::ArmTimer { at } => {
                arm_delayed(work.expect("ArmTimer comes with its item"), at);
            }
            Action::Mayday { .. } => wake_rescuers(),
            Action::StopRescuer { wq } => stop_rescuer(wq),
        }
    }
}

/// Bumped after every finished item (and every tick while someone waits).
static DONE_GEN: AtomicU64 = AtomicU64::new(0);
static DONE_WQ: WaitQueue = WaitQueue::new();
/// Threads inside a `wait` of the crate.
static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// Sleeps inside a wait of flush, cancel, drain or destroy (for the tests).
pub static WAITS: AtomicU64 = AtomicU64::new(0);
/// Of those, the sleeps entered with local interrupts off: only a caller that had them off
/// already sleeps so (the waiting calls turn them off only around the crate's lock). A debug
/// check the tests read.
pub static WAITS_WITH_IRQS_OFF: AtomicU64 = AtomicU64::new(0);

fn item_done() {
    DONE_GEN.fetch_add(1, Ordering::AcqRel);
    DONE_WQ.wake_all();
}

/// The crate's `wait`: sleeps until an item finishes (or a tick passes) since the last call,
/// or since the closure was made (before the crate's first check, so nothing is missed).
fn waiter() -> impl FnMut() {
    let mut seen = DONE_GEN.load(Ordering::Acquire);
    move || {
        WAITS.fetch_add(1, Ordering::Relaxed);
        if !crate::sync::interrupts_enabled() {
            WAITS_WITH_IRQS_OFF.fetch_add(1, Ordering::Relaxed);
        }
        WAITERS.fetch_add(1, Ordering::AcqRel);
        seen = DONE_WQ.wait_until(|| {
            let now = DONE_GEN.load(Ordering::Acquire);
            (now != seen).then_some(now)
        });
        WAITERS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a crate call that may wait. The crate takes its spin lock only between waits, so local
/// interrupts are off for the call (the lock may only be held with them off) except while it
/// waits: the wait turns them back on as they were before the call, and sleeps with them so.
fn waiting<T>(f: impl FnOnce(&'static Wqs, &mut dyn FnMut()) -> T) -> T {
    let mut wait = waiter();
    let irq = IrqSave::new();
    let mut wait_with_irqs_restored = || irq.restore_while(&mut wait);
    f(&g().wqs, &mut wait_with_irqs_restored)
}

// ---------------------------------------------------------------------------------------------
// Start-up.

/// Creates the workqueues (system queues included), registers the scheduler hooks and starts
/// the manager thread. Called once at boot, with every CPU online.
pub fn init() {
    let nr_cpus = kcore::cpu::online().count();
    G.call_once(|| {
        let wqs = Wqs::new(nr_cpus, IDLE_WORKER_TIMEOUT, kcore::cpu::current_id);
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
    sched::BLOCK_HOOK.set(on_block);
    sched::WAKE_HOOK.set(on_wake);
    sched::spawn("kworker-mgr", manager_thread).expect("memory for the workqueue manager");
    let slab_wq = alloc_workqueue("slab_destroy", WqFlags::WQ_MEM_RECLAIM, 0)
        .expect("memory for the slab allocator's reclaim workqueue");
    SLAB_WQ.call_once(|| slab_wq);
    SLAB_WORK.call_once(|| {
        WorkRef::new("slab_caches_to_rcu_destroy", |_| {
            kcore::memory::kmalloc::run_slab_work()
        })
    });
    kcore::memory::kmalloc::QUEUE_WORK_HOOK.set(queue_slab_work);
    // Heads queued before the hook was set wait on the list: run them now.
    if kcore::memory::kmalloc::slab_work_pending() {
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

/// Queues [`SLAB_WORK`] on [`SLAB_WQ`] (the core's `QUEUE_WORK_HOOK`, called after a head was
/// linked on its list). Allocates nothing; queueing an item already pending does nothing, and
/// one queued while it runs runs again, so every head linked is run.
pub(crate) fn queue_slab_work() {
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

/// The system workqueue (`events`, per-CPU), the one [`schedule_work`] uses. Multi-CPU
/// multi-threaded; use it when the item does not sleep long.
pub fn system_wq() -> Workqueue {
    Workqueue {
        id: workqueue::SYSTEM_WQ,
    }
}

/// The system high-priority workqueue (`events_highpri`).
pub fn system_highpri_wq() -> Workqueue {
    Workqueue {
        id: workqueue::SYSTEM_HIGHPRI_WQ,
    }
}

/// The system workqueue for long items (`events_long`).
pub fn system_long_wq() -> Workqueue {
    Workqueue {
        id: workqueue::SYSTEM_LONG_WQ,
    }
}

/// The unbound system workqueue (`events_unbound`): items are not bound to any specific CPU,
/// not concurrency managed, and all queued items are executed immediately as long as
/// `max_active` limit is not reached and resources are available.
pub fn system_unbound_wq() -> Workqueue {
    Workqueue {
        id: workqueue::SYSTEM_UNBOUND_WQ,
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

/// The numbers of every pool (as in [`dump`]), in pool order: `2 * cpu` and `2 * cpu + 1`
/// (high priority) for each CPU, then the unbound pools.
pub fn pool_stats() -> Vec<workqueue::PoolStats> {
    locked(|w| w.pool_stats())
}

/// The numbers of workqueue `wq` (as in [`dump`]; also whether it is draining).
pub fn wq_stats(wq: Workqueue) -> workqueue::WqStats {
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
