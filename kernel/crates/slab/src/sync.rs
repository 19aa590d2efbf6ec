//! The lock type used for barns and per-node slab lists.
//!
//! Normally a spinning [`spin::Mutex`]: it works both in the kernel (where the per-CPU guard has
//! already disabled preemption and interrupts) and on the host.
//!
//! The rule that makes a spinning lock safe in the kernel: **every barn and node-list lock is
//! taken pinned** ([`crate::platform::Pinned`], interrupts off in the kernel). A holder that could
//! be preempted, or interrupted by code that takes the same lock, would leave the CPU spinning
//! with interrupts off for a lock its holder can never release. The fast and slow allocation
//! paths are pinned anyway; the functions that also serve unpinned callers (shrink, destroy,
//! RCU callbacks, statistics) pin themselves before they lock (pins nest). Under `--cfg loom` it becomes a
//! `loom` mutex so that loom can explore every interleaving of the barn's lock holders.

#[cfg(not(loom))]
pub use spin::{Mutex, MutexGuard};

#[cfg(loom)]
pub use loom_mutex::{Mutex, MutexGuard};

#[cfg(loom)]
mod loom_mutex {
    /// A loom mutex with the same `lock()` signature as `spin::Mutex`.
    pub struct Mutex<T>(loom::sync::Mutex<T>);
    /// The guard of [`Mutex`].
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// Creates an unlocked mutex.
        pub fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }
        /// Locks the mutex (loom decides which thread wins).
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }
}
