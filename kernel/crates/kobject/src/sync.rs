//! The lock and atomics used by the crate: `spin` and `core` normally, loom's under
//! `--cfg loom` (see the `ksync` crate).

pub use ksync::{AtomicU64, Mutex, MutexGuard, Ordering};
