//! Timers: pools' idle and retry deadlines in fixed arrays, delayed items on an intrusive
//! list; the tick wakes the manager thread, which fires them in thread context.

use super::*;

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
pub(super) struct Timers {
    pub(super) idle: Vec<u64>,
    pub(super) kick: Vec<u64>,
    pub(super) delayed: ArcList<Work, TimerLink, WorkAlloc>,
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
        let mut first: Option<(u64, Arc<Work, WorkAlloc>)> = None;
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
pub(super) enum Fire {
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
pub(super) static NEXT_TIMER: AtomicU64 = AtomicU64::new(u64::MAX);

/// The pool timers.
#[derive(Clone, Copy)]
pub(super) enum PoolTimer {
    Idle,
    Kick,
}

/// Arms `pool`'s timer of kind `kind` for `at` (keeping an earlier deadline).
pub(super) fn arm_pool_timer(kind: PoolTimer, pool: PoolId, at: u64) {
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
pub(super) fn arm_delayed(work: &WorkRef, at: u64) {
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
pub(super) fn run_timers(now: u64) {
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
    if crate::cpu::current_id() != 0 || G.get().is_none() {
        return;
    }
    if NEXT_TIMER.load(Ordering::Acquire) <= jiffies() {
        kick_manager();
    }
    if WAITERS.load(Ordering::Acquire) > 0 {
        item_done();
    }
}

pub(super) fn manager_thread() {
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
