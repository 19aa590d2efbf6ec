//! The lock and atomic types used by the crate.
//!
//! Normally a spinning `spin::Mutex` and [`core::sync::atomic::AtomicU64`]: they work in the
//! kernel (which calls the [`Workqueues`](crate::Workqueues) methods with local interrupts
//! disabled, or at least never from an interrupt handler that could interrupt a holder of the
//! lock on the same CPU) and on the host. Under `--cfg loom` they become `loom`'s mutex and
//! atomics, so that loom explores every interleaving of the pending-bit protocol.

pub use ksync::{AtomicU64, Mutex, MutexGuard, Ordering, cpu_relax};
