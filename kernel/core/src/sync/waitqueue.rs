//! Wait queues: where threads sleep until a condition holds.
//!
//! Going to sleep allocates nothing: a sleeping thread is linked on the queue through the wait
//! link its [`Thread`] embeds (Linux puts a `wait_queue_entry` on the sleeper's stack; a link
//! in the thread is the same thing, made once with the thread). So a thread may sleep and be
//! woken while memory is exhausted: RCU's callback threads, idle workqueue workers, flush
//! waiters, a mutex's waiters.

use super::IrqSpinLock;
use super::arc_list::ArcList;
use crate::sched::{self, Thread, ThreadAlloc, WaitLink};

/// A queue of sleeping threads. Sleepers re-check their condition after every wake-up, so a
/// spurious or early wake-up is harmless.
pub struct WaitQueue {
    /// The sleepers, oldest first, linked through their wait links. A thread is on at most one
    /// queue at a time: it is linked only while inside [`WaitQueue::wait_until`], and takes
    /// itself off (under this lock) before that returns.
    waiters: IrqSpinLock<ArcList<Thread, WaitLink, ThreadAlloc>>,
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            waiters: IrqSpinLock::new(ArcList::new()),
        }
    }

    /// Sleeps until `ready` returns `Some`, and returns that value. Allocates nothing.
    ///
    /// `ready` runs with the queue's lock held, so a waker that changes the condition and then
    /// calls [`wake_one`](Self::wake_one) or [`wake_all`](Self::wake_all) cannot slip between
    /// the check and the sleep. `ready` must not sleep or take this queue's lock.
    pub fn wait_until<R>(&self, mut ready: impl FnMut() -> Option<R>) -> R {
        let me = sched::current();
        loop {
            let mut waiters = self.waiters.lock();
            if let Some(value) = ready() {
                // Woken by someone else than this queue's wakers (or never asleep): still
                // linked here. Off the queue before returning, so that the link is free for
                // the next wait, on any queue (Linux's `finish_wait`).
                drop(waiters.remove(&me));
                return value;
            }
            me.mark_blocked();
            // Still linked after a wake-up from elsewhere: keep the place in the queue.
            if !waiters.contains(&me) {
                // Cloning the `Arc` only counts a reference: the link is in the thread.
                waiters.push_back(me.clone());
            }
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
    ///
    /// Each is taken off the queue under its lock and woken after the lock is dropped, one at
    /// a time (nothing is allocated to hold them meanwhile). At most as many as were waiting
    /// when the call began are woken: a thread that went back to sleep meanwhile (its
    /// condition did not hold) re-checked after the change its waker made, and stays asleep.
    pub fn wake_all(&self) {
        let waiting = self.waiters.lock().len();
        for _ in 0..waiting {
            let Some(thread) = self.waiters.lock().pop_front() else {
                return;
            };
            sched::wake(&thread);
        }
    }

    /// Whether no thread sleeps here.
    pub fn is_empty(&self) -> bool {
        self.waiters.lock().is_empty()
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}
