//! The lock and atomic types used by [`Rcu`](crate::Rcu).
//!
//! Normally a spinning [`spin::Mutex`] and the atomics of [`core::sync::atomic`]: they work both
//! in the kernel (which calls every [`Rcu`](crate::Rcu) method with local interrupts disabled,
//! so a spin lock can never be taken twice on one CPU) and on the host. Under `--cfg loom` they
//! become `loom`'s mutex and atomics (accessed only by read-modify-writes, see
//! `loom_atomic` below), so that loom can explore every interleaving of the grace-period
//! machinery.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use spin::{Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::atomic::Ordering;
#[cfg(loom)]
pub use loom_atomic::{AtomicBool, AtomicU64};
#[cfg(loom)]
pub use loom_mutex::{Mutex, MutexGuard};

/// Loom atomics whose every access is a read-modify-write.
///
/// Loom's DPOR remembers only the *last* access to each atomic, and a load does not conflict
/// with a load. So when thread A loads `gp_seq`, then thread B loads it and then stores it,
/// loom checks B's store against B's own load only, never sees that it races with A's load,
/// and never tries the order "B's store before A's load" (tokio-rs/loom#166). That is exactly
/// the race that matters here (a CPU reading `gp_seq` while another ends a grace period), and
/// the loom tests did miss a planted bug because of it. A read-modify-write conflicts with
/// every access, so loads are modelled as `fetch_add(0)` / `fetch_or(false)`; stores become
/// `swap`, because loom 0.7 orders a plain store after earlier read-modify-writes imprecisely
/// (a thread could read back an older value than the one it had just stored).
///
/// This loses the behaviours where a load returns an older value than the latest; for this
/// crate those only delay things (a callback seen ready later, a QS reported at the next
/// call), never make anything happen early. The memory orderings are passed through as given.
#[cfg(loom)]
mod loom_atomic {
    use loom::sync::atomic::Ordering;

    /// `loom::sync::atomic::AtomicU64` with read-modify-write loads.
    pub struct AtomicU64(loom::sync::atomic::AtomicU64);
    /// `loom::sync::atomic::AtomicBool` with read-modify-write loads.
    pub struct AtomicBool(loom::sync::atomic::AtomicBool);

    impl AtomicU64 {
        /// A new atomic holding `v`.
        pub fn new(v: u64) -> Self {
            Self(loom::sync::atomic::AtomicU64::new(v))
        }
        /// Reads the value (as `fetch_add(0, order)`).
        pub fn load(&self, order: Ordering) -> u64 {
            self.0.fetch_add(0, order)
        }
        /// Stores `v` (as `swap(v, order)`).
        pub fn store(&self, v: u64, order: Ordering) {
            self.0.swap(v, order);
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
