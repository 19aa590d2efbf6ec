//! Worker threads: created by the manager when the crate asks, one per `kworker/N:M`;
//! what each executes (for chained queueing while a queue drains) and the scheduler hooks
//! that report a worker blocking and waking.

use super::*;

/// A worker thread's link to its pool's worker, for wake-ups, the scheduler hooks and chained
/// work.
pub(super) struct WorkerSlot {
    pub(super) pool: PoolId,
    pub(super) id: WorkerId,
    /// Set by [`Action::WakeWorker`] / [`Action::Retire`], consumed by the idle sleep.
    pub(super) woken: AtomicBool,
    /// Executing an item: the scheduler hooks report blocking only then.
    pub(super) in_item: AtomicBool,
    pub(super) waitq: WaitQueue,
    /// The job it executes (for [`queue_work`] from inside the item).
    pub(super) job: JobCell,
}

/// A thread that executes items: a worker or a rescuer.
#[derive(Clone)]
pub(super) enum Executor {
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
pub(super) static WORKERS: IrqSpinLock<Vec<(WorkerKey, Arc<WorkerSlot>)>> =
    IrqSpinLock::new(Vec::new());
/// A worker's key in [`WORKERS`]: (pool, worker).
pub(super) type WorkerKey = (u16, u16);
/// Every worker and rescuer thread, sorted by thread id (the scheduler hooks look their
/// thread up here, and [`queue_work`] the job the calling thread executes).
pub(super) static EXECUTORS: IrqSpinLock<Vec<(u64, Executor)>> = IrqSpinLock::new(Vec::new());

/// Held by the manager from reserving a new worker's id and room to registering it, by
/// [`alloc_workqueue`] while it registers a rescuer, and by a worker waking from idle (the
/// only time the crate may retire it and free its id): so the id the crate reserves is the one
/// it then gives, and the room made in the registries is still there.
pub(super) static MGR: Mutex<()> = Mutex::new(());
/// The manager sleeps here; [`MGR_KICK`] says there is something to do.
pub(super) static MGR_WQ: WaitQueue = WaitQueue::new();
pub(super) static MGR_KICK: AtomicBool = AtomicBool::new(false);

/// Fault injection: while set, the manager's worker creation fails as if the thread's stack
/// could not be allocated. Tests only: it keeps a pool without new workers while memory is
/// plentiful (the tests of real exhaustion use it only until memory is taken).
pub static FAIL_WORKER_CREATION: AtomicBool = AtomicBool::new(false);

/// Worker creations that failed (out of memory, or injected).
pub static WORKER_CREATE_FAILURES: AtomicU64 = AtomicU64::new(0);

pub(super) fn kick_manager() {
    MGR_KICK.store(true, Ordering::Release);
    MGR_WQ.wake_all();
}

pub(super) fn find_worker(pool: PoolId, worker: WorkerId) -> Option<Arc<WorkerSlot>> {
    let workers = WORKERS.lock();
    let i = workers
        .binary_search_by_key(&(pool.0, worker.0), |(k, _)| *k)
        .ok()?;
    Some(workers[i].1.clone())
}

pub(super) fn find_executor(tid: u64) -> Option<Executor> {
    let executors = EXECUTORS.lock();
    let i = executors.binary_search_by_key(&tid, |(k, _)| *k).ok()?;
    Some(executors[i].1.clone())
}

/// Adds `value` under `key` to a registry sorted by key, in room made before (see
/// [`WORKERS`]): allocates nothing.
pub(super) fn insert_sorted<K: Ord, V>(list: &mut Vec<(K, V)>, key: K, value: V) {
    debug_assert!(list.len() < list.capacity(), "room made before the thread");
    let i = list.partition_point(|(k, _)| *k < key);
    list.insert(i, (key, value));
}

pub(super) fn remove_sorted<K: Ord, V>(list: &mut Vec<(K, V)>, key: &K) -> Option<V> {
    let i = list.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
    Some(list.remove(i).1)
}

pub(super) fn wake_worker(pool: PoolId, worker: WorkerId) {
    if let Some(slot) = find_worker(pool, worker) {
        slot.woken.store(true, Ordering::Release);
        slot.waitq.wake_all();
    }
}

/// The CPU of a per-CPU pool (`None`: unbound).
pub(super) fn pool_cpu(pool: PoolId) -> Option<usize> {
    let p = usize::from(pool.0);
    (p < 2 * g().nr_cpus).then_some(p / 2)
}

/// A thread name formatted in place (no allocation): `kworker/N:MH` and the like fit.
pub(super) struct ThreadName {
    pub(super) buf: [u8; 32],
    pub(super) len: usize,
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
pub(super) fn create_worker(pool: PoolId) {
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
pub(super) fn try_create_worker(pool: PoolId) -> Result<(), SpawnError> {
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
pub(super) fn worker_thread(slot: Arc<WorkerSlot>) {
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
pub(super) fn run_job(
    job: Job<WorkRef>,
    slot: Option<&WorkerSlot>,
    cell: &JobCell,
) -> Job<WorkRef> {
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
pub(super) type JobCell = IrqSpinLock<Option<Job<WorkRef>>>;

/// The calling thread if it is a worker or rescuer; `None` in an interrupt handler (which may
/// have interrupted a worker, but is not part of its item, as Linux's `in_task()` check of
/// `current_wq_worker` says).
pub(super) fn current_executor() -> Option<Executor> {
    if crate::cpu::in_interrupt() {
        return None;
    }
    find_executor(sched::current().id)
}

/// Queues `work` on `wq` (on `cpu`'s pool, or the caller's), through the crate's chained path
/// when the caller is an item executing (Linux's `is_chained_work`: a draining workqueue still
/// takes items from its own items).
pub(super) fn queue_from_here(cpu: Option<usize>, wq: WqId, work: &WorkRef) -> (bool, Actions) {
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
pub(super) fn worker_in_item(t: &Thread) -> Option<Arc<WorkerSlot>> {
    match find_executor(t.id)? {
        Executor::Worker(slot) if slot.in_item.load(Ordering::Acquire) => Some(slot),
        _ => None,
    }
}

/// Called by `sched::schedule`: a worker executing an item is about to sleep (interrupts off, inside
/// `schedule`): the crate may wake another worker or ask the manager for one.
pub(crate) fn on_block(t: &Thread) {
    if let Some(slot) = worker_in_item(t) {
        let actions = g().wqs.worker_sleeping(slot.pool, slot.id);
        perform(actions, None);
    }
}

/// Called by `sched::wake`: a worker that blocked inside an item was woken.
pub(crate) fn on_wake(t: &Thread) {
    if let Some(slot) = worker_in_item(t) {
        locked(|w| w.worker_waking(slot.pool, slot.id));
    }
}
