//! Wait queues: where threads sleep until a condition holds.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use super::IrqSpinLock;
use crate::sched::{self, Thread};

/// A queue of sleeping threads. Sleepers re-check their condition after every wake-up, so a
/// spurious or early wake-up is harmless.
pub struct WaitQueue {
    waiters: IrqSpinLock<VecDeque<Arc<Thread>>>,
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            waiters: IrqSpinLock::new(VecDeque::new()),
        }
    }

    /// Sleeps until `ready` returns `Some`, and returns that value.
    ///
    /// `ready` runs with the queue's lock held, so a waker that changes the condition and then
    /// calls [`wake_one`](Self::wake_one) or [`wake_all`](Self::wake_all) cannot slip between
    /// the check and the sleep. `ready` must not sleep or take this queue's lock.
    pub fn wait_until<R>(&self, mut ready: impl FnMut() -> Option<R>) -> R {
        loop {
            let mut waiters = self.waiters.lock();
            if let Some(value) = ready() {
                return value;
            }
            let me = sched::current();
            me.mark_blocked();
            waiters.push_back(me);
            drop(waiters);
            // Being preempted between here and `schedule` is fine: a blocked thread is not put
            // back on the run queue, and a wake-up in between makes it runnable again.
            sched::schedule();
        }
    }

    /// Wakes the longest-waiting thread. Returns whether there was one.
    pub fn wake_one(&self) -> bool {
        let thread = self.waiters.lock().pop_front();
        thread.map(|t| sched::wake(&t)).is_some()
    }

    /// Wakes every waiting thread.
    pub fn wake_all(&self) {
        let waiters = core::mem::take(&mut *self.waiters.lock());
        for thread in waiters {
            sched::wake(&thread);
        }
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}
