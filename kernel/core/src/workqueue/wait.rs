//! Carrying out the crate's actions, and waiting (flush, cancel, drain) with interrupts on.

use super::*;

/// Carries out the crate's decisions. `work` is the item of the call that returned them (for
/// [`Action::ArmTimer`]). From the scheduler hook only `WakeWorker` and `CreateWorker` come,
/// which neither allocate nor sleep; arming a timer does not allocate either.
pub(super) fn perform(actions: Actions, work: Option<&WorkRef>) {
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
pub(super) static DONE_GEN: AtomicU64 = AtomicU64::new(0);
pub(super) static DONE_WQ: WaitQueue = WaitQueue::new();
/// Threads inside a `wait` of the crate.
pub(super) static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// Sleeps inside a wait of flush, cancel, drain or destroy (for the tests).
pub static WAITS: AtomicU64 = AtomicU64::new(0);
/// Of those, the sleeps entered with local interrupts off: only a caller that had them off
/// already sleeps so (the waiting calls turn them off only around the crate's lock). A debug
/// check the tests read.
pub static WAITS_WITH_IRQS_OFF: AtomicU64 = AtomicU64::new(0);

pub(super) fn item_done() {
    DONE_GEN.fetch_add(1, Ordering::AcqRel);
    DONE_WQ.wake_all();
}

/// The crate's `wait`: sleeps until an item finishes (or a tick passes) since the last call,
/// or since the closure was made (before the crate's first check, so nothing is missed).
pub(super) fn waiter() -> impl FnMut() {
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
pub(super) fn waiting<T>(f: impl FnOnce(&'static Wqs, &mut dyn FnMut()) -> T) -> T {
    let mut wait = waiter();
    let irq = IrqSave::new();
    let mut wait_with_irqs_restored = || irq.restore_while(&mut wait);
    f(&g().wqs, &mut wait_with_irqs_restored)
}
