//! The lock type used for barns and per-node slab lists.
//!
//! Normally a spinning `spin::Mutex`: it works both in the kernel (where the per-CPU guard has
//! already disabled preemption and interrupts) and on the host.
//!
//! The rule that makes a spinning lock safe in the kernel: **every barn and node-list lock is
//! taken pinned** ([`crate::platform::Pinned`], interrupts off in the kernel). A holder that could
//! be preempted, or interrupted by code that takes the same lock, would leave the CPU spinning
//! with interrupts off for a lock its holder can never release. The fast and slow allocation
//! paths are pinned anyway; the functions that also serve unpinned callers (shrink, destroy,
//! RCU callbacks, statistics) pin themselves before they lock (pins nest). Under `--cfg loom` it becomes a
//! `loom` mutex so that loom can explore every interleaving of the barn's lock holders.

pub use ksync::{Mutex, MutexGuard};
