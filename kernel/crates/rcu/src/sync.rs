//! The lock and atomic types used by [`Rcu`](crate::Rcu).
//!
//! Normally a spinning `spin::Mutex` and the atomics of [`core::sync::atomic`]: they work both
//! in the kernel (which calls every [`Rcu`](crate::Rcu) method with local interrupts disabled,
//! so a spin lock can never be taken twice on one CPU) and on the host. Under `--cfg loom` they
//! become `loom`'s mutex and atomics (accessed only by read-modify-writes, see
//! the `ksync` crate), so that loom can explore every interleaving of the grace-period
//! machinery.

pub use ksync::{AtomicBool, AtomicU64, Mutex, MutexGuard, Ordering};
