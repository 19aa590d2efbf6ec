//! The lock type used for barns and per-node slab lists.
//!
//! Normally a spinning [`spin::Mutex`]: it works both in the kernel (where the per-CPU guard has
//! already disabled preemption and interrupts) and on the host. Under `--cfg loom` it becomes a
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
