//! Rescuers: a thread per `WQ_MEM_RECLAIM` queue that runs its items when no worker can be
//! created (out of memory), woken by a mayday.

use super::*;

pub(super) struct Rescuer {
    pub(super) wq: WqId,
    pub(super) woken: AtomicBool,
    pub(super) stop: AtomicBool,
    pub(super) waitq: WaitQueue,
    /// The job it executes (for [`queue_work`] from inside the item).
    pub(super) job: JobCell,
}

/// The rescuers of every `WQ_MEM_RECLAIM` queue. Added to under [`MGR`] after room was made
/// under it (see [`WORKERS`]); a mayday walks it under its lock, allocating nothing.
pub(super) static RESCUERS: IrqSpinLock<Vec<Arc<Rescuer>>> = IrqSpinLock::new(Vec::new());

/// Items executed by rescuers.
pub static RESCUED: AtomicU64 = AtomicU64::new(0);

pub(super) fn rescuer_thread(r: Arc<Rescuer>) {
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
pub(super) fn start_rescuer(wq: WqId, name: &'static str) -> Result<(), SpawnError> {
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
pub(super) fn wake_rescuers() {
    for r in RESCUERS.lock().iter() {
        r.woken.store(true, Ordering::Release);
        r.waitq.wake_all();
    }
}

/// Stops the rescuer of `wq` (destroyed). Allocates nothing.
pub(super) fn stop_rescuer(wq: WqId) {
    let mut rescuers = RESCUERS.lock();
    while let Some(i) = rescuers.iter().position(|r| r.wq == wq) {
        let r = rescuers.remove(i);
        r.stop.store(true, Ordering::Release);
        r.waitq.wake_all();
    }
}
