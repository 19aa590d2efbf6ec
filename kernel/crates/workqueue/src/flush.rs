//! Waiting and taking back: `flush_work`, `cancel_work(_sync)`, `flush_workqueue`,
//! `drain_workqueue`, `destroy_workqueue`.
//!
//! The crate cannot sleep, so every call that waits takes a `wait` callback: it checks its
//! condition under the lock, and while the condition does not hold it drops the lock and calls
//! `wait()`. The kernel's `wait` sleeps on one wait queue that it wakes after every
//! [`worker_done`](Workqueues::worker_done) (an instance that finishes is what every waiter
//! waits for); the host tests pass a yield.

use crate::action::{Actions, WqId};
use crate::list::WorkList;
use crate::sync::cpu_relax;
use crate::work::{Loc, WorkItem, WorkStruct};
use crate::wq::{NR_COLORS, State, Workqueues, retire};

/// Is instance `seq` of the item still pending or running?
fn instance_busy(ws: &WorkStruct, seq: u32) -> bool {
    let (pending, cur) = ws.data();
    (pending && cur == seq) || ws.running().is_some_and(|(r, _)| r == seq)
}

/// Takes the pending instance off its list (or timer) under the lock, clearing PENDING
/// (Linux's `try_to_grab_pending`). `Some((true, actions))`: it was pending and is now
/// stolen (`actions`: an inactive item took its active slot); `Some((false, _))`: it was not
/// pending; `None`: PENDING is set but the queuer has not put it on a list yet (in transit):
/// drop the lock and try again.
/// With `keep_pending`, PENDING stays set: the caller owns it and re-queues the item
/// (`mod_delayed_work`).
pub(crate) fn grab_pending<W: WorkItem, L: WorkList<W>>(
    st: &mut State<W, L>,
    ws: &WorkStruct,
    keep_pending: bool,
) -> Option<(bool, Actions)> {
    let (pending, _) = ws.data();
    if !pending {
        return Some((false, Actions::new()));
    }
    let info = ws.info();
    let pool = usize::from(info.pool);
    let wq = crate::action::WqId(info.wq);
    let stolen = match info.loc {
        Loc::None => return None,
        Loc::Timer => true,
        Loc::Worklist => st.pools[pool].worklist.remove(ws).is_some(),
        Loc::Held => st.pools[pool].held.remove(ws).is_some(),
        Loc::Inactive => st.wqs[usize::from(wq.0)].pwqs[pool]
            .inactive
            .remove(ws)
            .is_some(),
    };
    assert!(stolen, "pending item not on the list it says");
    let actions = match info.loc {
        Loc::Worklist | Loc::Held => retire(st, wq, pool, info.color, true),
        Loc::Inactive => retire(st, wq, pool, info.color, false),
        _ => Actions::new(),
    };
    ws.set_loc(Loc::None);
    if !keep_pending {
        ws.clear_pending();
    }
    Some((true, actions))
}

impl<W: WorkItem, L: WorkList<W>> Workqueues<W, L> {
    /// Waits until the last queueing of `work` has finished executing (Linux's `flush_work`):
    /// the instance pending or running now; later queueings are not waited for. Returns
    /// `true` if it had to wait. Must not be called by the item itself.
    pub fn flush_work(&self, work: &W, wait: &mut dyn FnMut()) -> bool {
        let ws = work.work();
        let seq = {
            let _st = self.lock();
            let (_, seq) = ws.data();
            if !instance_busy(ws, seq) {
                return false;
            }
            seq
        };
        loop {
            wait();
            let _st = self.lock();
            if !instance_busy(ws, seq) {
                return true;
            }
        }
    }

    /// Takes a pending `work` off its queue (or timer) without waiting for a running instance
    /// (Linux's `cancel_work`): `true` if it was pending. Returns `false` at once if another
    /// cancel is in progress. The actions (an inactive item of the same workqueue took the
    /// freed `max_active` slot) are the kernel's to perform, as for every call.
    pub fn cancel_work(&self, work: &W) -> (bool, Actions) {
        let ws = work.work();
        if !ws.try_set_canceling() {
            return (false, Actions::new());
        }
        let r = self.grab(ws, &mut cpu_relax);
        ws.clear_canceling();
        r
    }

    /// Cancels `work` and waits for its running instance to finish (Linux's
    /// `cancel_work_sync`): afterwards the item is neither pending nor running, and it was not
    /// re-queued meanwhile (queueing is refused while the cancel runs, also from the item
    /// itself). Returns `true` if it was pending. Also cancels a delayed item's timer (the
    /// kernel's timer may still fire; [`delayed_work_timer_fn`](Self::delayed_work_timer_fn)
    /// then does nothing).
    pub fn cancel_work_sync(&self, work: &W, wait: &mut dyn FnMut()) -> (bool, Actions) {
        let ws = work.work();
        // One canceler at a time: a second one waits for the first to finish.
        while !ws.try_set_canceling() {
            wait();
        }
        let r = self.grab(ws, wait);
        // CANCELING refuses new instances, so this waits for the one running now, if any.
        loop {
            if self.lock_and(|_| ws.running().is_none()) {
                break;
            }
            wait();
        }
        ws.clear_canceling();
        r
    }

    /// `cancel_work_sync` for a delayed item (Linux's `cancel_delayed_work_sync`).
    pub fn cancel_delayed_work_sync(&self, work: &W, wait: &mut dyn FnMut()) -> (bool, Actions) {
        self.cancel_work_sync(work, wait)
    }

    /// `cancel_work` for a delayed item (Linux's `cancel_delayed_work`).
    pub fn cancel_delayed_work(&self, work: &W) -> (bool, Actions) {
        self.cancel_work(work)
    }

    /// Steals the pending instance, retrying while it is in transit.
    fn grab(&self, ws: &WorkStruct, relax: &mut dyn FnMut()) -> (bool, Actions) {
        loop {
            if let Some(r) = grab_pending(&mut self.lock(), ws, false) {
                return r;
            }
            relax();
        }
    }

    fn lock_and<T>(&self, f: impl FnOnce(&mut State<W, L>) -> T) -> T {
        f(&mut self.lock())
    }

    /// Waits until every item queued on `wq` before the call has finished (Linux's
    /// `flush_workqueue`). Items get the queue's current *flush color*; the flush moves new
    /// items to the next color and waits until no item of an older color is in flight.
    /// Items queued during the flush are not waited for, unless all [`NR_COLORS`] colors are
    /// in use by other flushes (then the flush waits for the current color too).
    pub fn flush_workqueue(&self, wq: WqId, wait: &mut dyn FnMut()) {
        let target = self.lock_and(|st| {
            let q = &mut st.wqs[usize::from(wq.0)];
            let c = q.work_color;
            if c - q.flush_floor < NR_COLORS as u64 - 1 {
                q.work_color += 1;
            }
            c
        });
        loop {
            let done = self.lock_and(|st| {
                let q = &mut st.wqs[usize::from(wq.0)];
                while q.flush_floor < q.work_color && q.color_idle(q.flush_floor) {
                    q.flush_floor += 1;
                }
                (q.flush_floor..=target).all(|c| q.color_idle(c))
            });
            if done {
                return;
            }
            wait();
        }
    }

    /// Flushes `wq` until it is empty (Linux's `drain_workqueue`): while it drains, queueing
    /// on it is refused except by its own items ([`queue_work_from`](Self::queue_work_from)),
    /// so items that re-queue themselves may finish their chains.
    pub fn drain_workqueue(&self, wq: WqId, wait: &mut dyn FnMut()) {
        self.drain(wq, false, wait);
    }

    /// Drains `wq`, then marks it destroyed: every later queueing is refused (Linux's
    /// `destroy_workqueue`). Returns [`Action::StopRescuer`](crate::Action::StopRescuer) for a
    /// `WQ_MEM_RECLAIM` queue. A delayed item still on its timer is not waited for (Linux
    /// warns): cancel those first.
    pub fn destroy_workqueue(&self, wq: WqId, wait: &mut dyn FnMut()) -> Actions {
        self.drain(wq, true, wait);
        let mut actions = Actions::new();
        if self.lock().wqs[usize::from(wq.0)]
            .flags
            .contains(crate::WqFlags::WQ_MEM_RECLAIM)
        {
            actions.push(crate::Action::StopRescuer { wq });
        }
        actions
    }

    fn drain(&self, wq: WqId, destroy: bool, wait: &mut dyn FnMut()) {
        self.lock_and(|st| st.wqs[usize::from(wq.0)].nr_drainers += 1);
        loop {
            self.flush_workqueue(wq, wait);
            // Empty, and (when destroying) closed in the same critical section, so nothing
            // can slip in between.
            let empty = self.lock_and(|st| {
                let q = &mut st.wqs[usize::from(wq.0)];
                let empty = q.in_flight() == 0;
                if empty {
                    q.nr_drainers -= 1;
                    q.destroyed |= destroy;
                }
                empty
            });
            if empty {
                return;
            }
        }
    }
}
