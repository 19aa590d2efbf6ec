//! The lock and atomic types used by the crate.
//!
//! Normally a spinning [`spin::Mutex`] and [`core::sync::atomic::AtomicU64`]: they work in the
//! kernel (which calls the [`Workqueues`](crate::Workqueues) methods with local interrupts
//! disabled, or at least never from an interrupt handler that could interrupt a holder of the
//! lock on the same CPU) and on the host. Under `--cfg loom` they become `loom`'s mutex and
//! atomics, so that loom explores every interleaving of the pending-bit protocol.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub use spin::{Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::atomic::Ordering;
#[cfg(loom)]
pub use loom_atomic::AtomicU64;
#[cfg(loom)]
pub use loom_mutex::{Mutex, MutexGuard};

/// A pause inside a short busy-wait (Linux's `cpu_relax()`): a spin-loop hint, or a yield to
/// the other loom threads under loom (a loom spin loop must yield or it never ends).
pub fn cpu_relax() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Loom atomics whose every access is a read-modify-write.
///
/// As in the `sheaf-rcu` crate (see its `sync` module): loom's DPOR remembers only the last
/// access to an atomic and does not see that a plain load races with a later store of
/// another thread (tokio-rs/loom#166), so loads are modelled as `fetch_or(0)` and stores as
/// `swap`. Every access then conflicts with every other one and loom tries both orders.
#[cfg(loom)]
mod loom_atomic {
    use loom::sync::atomic::Ordering;

    /// `loom::sync::atomic::AtomicU64` with read-modify-write loads and stores.
    pub struct AtomicU64(loom::sync::atomic::AtomicU64);

    impl AtomicU64 {
        /// A new atomic holding `v`.
        pub fn new(v: u64) -> Self {
            Self(loom::sync::atomic::AtomicU64::new(v))
        }
        /// Reads the value (as `fetch_or(0, order)`).
        pub fn load(&self, order: Ordering) -> u64 {
            self.0.fetch_or(0, order)
        }
        /// Stores `v` (as `swap(v, order)`).
        pub fn store(&self, v: u64, order: Ordering) {
            self.0.swap(v, order);
        }
        /// `fetch_or`.
        pub fn fetch_or(&self, v: u64, order: Ordering) -> u64 {
            self.0.fetch_or(v, order)
        }
        /// `fetch_and`.
        pub fn fetch_and(&self, v: u64, order: Ordering) -> u64 {
            self.0.fetch_and(v, order)
        }
        /// `compare_exchange`.
        pub fn compare_exchange(
            &self,
            current: u64,
            new: u64,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u64, u64> {
            self.0.compare_exchange(current, new, success, failure)
        }
    }
}

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
