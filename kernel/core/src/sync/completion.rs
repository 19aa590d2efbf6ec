//! Completions: wait until something has happened.

use core::sync::atomic::{AtomicBool, Ordering};

use super::WaitQueue;

/// A one-shot event. [`complete`](Self::complete) latches it and wakes every waiter; after
/// that, [`wait`](Self::wait) returns at once. May be completed from an interrupt handler.
pub struct Completion {
    done: AtomicBool,
    waiters: WaitQueue,
}

impl Completion {
    /// A completion that has not happened yet.
    pub const fn new() -> Self {
        Self {
            done: AtomicBool::new(false),
            waiters: WaitQueue::new(),
        }
    }

    /// Marks the event as happened and wakes all waiters.
    pub fn complete(&self) {
        self.done.store(true, Ordering::Release);
        self.waiters.wake_all();
    }

    /// Whether the event has happened.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Sleeps until the event has happened.
    pub fn wait(&self) {
        self.waiters.wait_until(|| self.is_done().then_some(()));
    }
}

impl Default for Completion {
    fn default() -> Self {
        Self::new()
    }
}
