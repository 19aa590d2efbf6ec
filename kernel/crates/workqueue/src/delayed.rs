//! Delayed work: an item queued after a delay (Linux's `struct delayed_work`).
//!
//! The kernel owns the timer; the crate owns the decision. Queueing with a delay sets
//! PENDING (so the item counts as pending from then on, and queueing it again returns
//! `false`), records the deadline and the target (workqueue and pool) in the item, and returns
//! [`Action::ArmTimer`]. When the kernel's timer fires it calls
//! [`Workqueues::delayed_work_timer_fn`] (Linux's `delayed_work_timer_fn`), which queues the
//! item if the deadline has come, asks to re-arm if [`mod_delayed_work`](Workqueues::mod_delayed_work_on)
//! moved it later, and does nothing if the item was canceled meanwhile. So the kernel never
//! has to stop a timer: a stale one is harmless.

use crate::action::{Action, Actions, WqId};
use crate::flush::grab_pending;
use crate::list::WorkList;
use crate::sync::cpu_relax;
use crate::work::{Info, Loc, WorkItem};
use crate::wq::{State, Workqueues, accepts, insert_work};

/// Puts an item whose PENDING bit the caller owns on its timer (or on the pool at once if
/// `delay` is 0). Linux's `__queue_delayed_work`.
fn place<W: WorkItem, L: WorkList<W>>(
    st: &mut State<W, L>,
    w: W,
    wq: WqId,
    pool: usize,
    delay: u64,
    now: u64,
) -> Actions {
    if delay == 0 {
        return insert_work(st, w, wq, pool);
    }
    let ws = w.work();
    let at = now.saturating_add(delay);
    ws.set_deadline(at);
    ws.set_info(Info {
        loc: Loc::Timer,
        color: 0,
        pool: pool as u16,
        wq: wq.0,
    });
    let mut actions = Actions::new();
    actions.push(Action::ArmTimer { at });
    actions
}

impl<W: WorkItem, L: WorkList<W>> Workqueues<W, L> {
    /// Queues `work` on `wq` for `cpu` once `delay` has passed from `now` (Linux's
    /// `queue_delayed_work_on`; a delay of 0 queues at once). `false` if it was already
    /// pending (on its timer or queued), or refused as by [`queue_work_on`](Self::queue_work_on).
    pub fn queue_delayed_work_on(
        &self,
        cpu: usize,
        wq: WqId,
        work: W,
        delay: u64,
        now: u64,
    ) -> (bool, Actions) {
        if !work.work().try_set_pending() {
            return (false, Actions::new());
        }
        let mut st = self.lock();
        if !accepts(&st.wqs[usize::from(wq.0)], wq, None) {
            work.work().clear_pending();
            return (false, Actions::new());
        }
        let pool = self.pool_for(&st, wq, cpu);
        (true, place(&mut st, work, wq, pool, delay, now))
    }

    /// [`queue_delayed_work_on`](Self::queue_delayed_work_on) for the caller's CPU (Linux's
    /// `queue_delayed_work`).
    pub fn queue_delayed_work(&self, wq: WqId, work: W, delay: u64, now: u64) -> (bool, Actions) {
        self.queue_delayed_work_on((self.this_cpu)(), wq, work, delay, now)
    }

    /// `queue_delayed_work(system_wq, ...)` (Linux's `schedule_delayed_work`).
    pub fn schedule_delayed_work(&self, work: W, delay: u64, now: u64) -> (bool, Actions) {
        self.queue_delayed_work(crate::SYSTEM_WQ, work, delay, now)
    }

    /// Queues `work` to run `delay` after `now` whether or not it is pending (Linux's
    /// `mod_delayed_work_on`): a pending item's deadline moves (a queued one is taken back
    /// and put on its timer again). Returns `true` if it was pending, `false` if it was idle
    /// (it is queued anyway) or is being canceled (then nothing happens).
    pub fn mod_delayed_work_on(
        &self,
        cpu: usize,
        wq: WqId,
        work: W,
        delay: u64,
        now: u64,
    ) -> (bool, Actions) {
        let ws = work.work();
        loop {
            let mut st = self.lock();
            if ws.is_canceling() {
                return (false, Actions::new());
            }
            // Own PENDING: steal the pending instance (keeping the bit) or set the bit.
            let (pending, _) = ws.data();
            let owned = if pending {
                grab_pending(&mut st, ws, true)
            } else if ws.try_set_pending() {
                Some((false, Actions::new()))
            } else {
                None
            };
            let Some((was_pending, mut actions)) = owned else {
                // In transit, or queued by someone else just now: look again.
                drop(st);
                cpu_relax();
                continue;
            };
            if !accepts(&st.wqs[usize::from(wq.0)], wq, None) {
                ws.clear_pending();
                return (was_pending, actions);
            }
            let pool = self.pool_for(&st, wq, cpu);
            actions.extend(place(&mut st, work, wq, pool, delay, now));
            return (was_pending, actions);
        }
    }

    /// [`mod_delayed_work_on`](Self::mod_delayed_work_on) for the caller's CPU (Linux's
    /// `mod_delayed_work`).
    pub fn mod_delayed_work(&self, wq: WqId, work: W, delay: u64, now: u64) -> (bool, Actions) {
        self.mod_delayed_work_on((self.this_cpu)(), wq, work, delay, now)
    }

    /// The kernel's timer for `work` fired at `now` (Linux's `delayed_work_timer_fn`): queues
    /// the item if its deadline has come, returns [`Action::ArmTimer`] if the deadline was
    /// moved later, and does nothing if the item is no longer on its timer (canceled, or
    /// already queued by `mod_delayed_work`). An item whose queue was destroyed meanwhile is
    /// dropped (PENDING cleared).
    pub fn delayed_work_timer_fn(&self, work: W, now: u64) -> Actions {
        let ws = work.work();
        let mut st = self.lock();
        let info = ws.info();
        let (pending, _) = ws.data();
        if !pending || info.loc != Loc::Timer {
            return Actions::new();
        }
        let at = ws.deadline();
        if at > now {
            let mut actions = Actions::new();
            actions.push(Action::ArmTimer { at });
            return actions;
        }
        let wq = WqId(info.wq);
        if st.wqs[usize::from(wq.0)].destroyed {
            ws.set_loc(Loc::None);
            ws.clear_pending();
            return Actions::new();
        }
        insert_work(&mut st, work, wq, usize::from(info.pool))
    }

    /// The deadline of `work` if it waits on its timer.
    pub fn timer_deadline(&self, work: &W) -> Option<u64> {
        let ws = work.work();
        let _st = self.lock();
        (ws.data().0 && ws.info().loc == Loc::Timer).then(|| ws.deadline())
    }
}

#[cfg(test)]
mod tests;
