//! The lock and atomic types shared by Sheaf's host-testable crates (`sheaf-slab`, `sheaf-rcu`,
//! `sheaf-workqueue`), so that one build switch turns all of them into loom models.
//!
//! Normally a spinning [`spin::Mutex`] and the atomics of [`core::sync::atomic`]: they work
//! both in the kernel (which calls into those crates with local interrupts disabled, so a spin
//! lock is never taken twice on one CPU) and on the host. Under `--cfg loom` they become
//! `loom`'s mutex and atomics, so that loom explores every interleaving of the code using them.
//!
//! # Why loom atomics are read-modify-writes here
//!
//! Loom's DPOR remembers only the *last* access to each atomic, and a load does not conflict
//! with a load. So when thread A loads a counter, then thread B loads it and stores it, loom
//! checks B's store against B's own load only, never sees that it races with A's load, and
//! never tries the order "B's store before A's load" (tokio-rs/loom#166). The RCU crate's loom
//! tests missed a planted bug because of that. A read-modify-write conflicts with every access,
//! so loads are modelled as `fetch_or(0)` (`fetch_or(false)`) and stores as `swap`, which also
//! avoids loom 0.7 ordering a plain store imprecisely after earlier read-modify-writes.
//!
//! This loses the behaviours where a load returns an older value than the latest one; in the
//! crates using it those only delay things, never make them happen early. The memory orderings
//! are passed through as given.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use spin::{Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::atomic::Ordering;
#[cfg(loom)]
pub use loom_impl::{AtomicBool, AtomicU64, Mutex, MutexGuard};

/// A pause inside a short busy-wait (Linux's `cpu_relax()`): a spin-loop hint, or a yield to
/// the other loom threads under loom (a loom spin loop must yield or it never ends).
pub fn cpu_relax() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

#[cfg(loom)]
mod loom_impl {
    use loom::sync::atomic::Ordering;

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
        /// Locks the mutex if it is free, else `None` at once.
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }
        /// Whether the mutex is held right now (as `spin::Mutex::is_locked`: a hint that may
        /// be stale as soon as it is returned).
        pub fn is_locked(&self) -> bool {
            self.0.try_lock().is_err()
        }
    }

    /// `loom::sync::atomic::AtomicU64` whose every access is a read-modify-write.
    pub struct AtomicU64(loom::sync::atomic::AtomicU64);
    /// `loom::sync::atomic::AtomicBool` whose every access is a read-modify-write.
    pub struct AtomicBool(loom::sync::atomic::AtomicBool);

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
        /// `swap`.
        pub fn swap(&self, v: u64, order: Ordering) -> u64 {
            self.0.swap(v, order)
        }
        /// `fetch_add`.
        pub fn fetch_add(&self, v: u64, order: Ordering) -> u64 {
            self.0.fetch_add(v, order)
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

    impl AtomicBool {
        /// A new atomic holding `v`.
        pub fn new(v: bool) -> Self {
            Self(loom::sync::atomic::AtomicBool::new(v))
        }
        /// Reads the value (as `fetch_or(false, order)`).
        pub fn load(&self, order: Ordering) -> bool {
            self.0.fetch_or(false, order)
        }
        /// Stores `v` (as `swap(v, order)`).
        pub fn store(&self, v: bool, order: Ordering) {
            self.0.swap(v, order);
        }
    }
}
