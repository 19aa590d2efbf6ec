//! Locks and waiting: what kernel code uses to share data between threads, CPUs and interrupts.
//!
//! | type | waits by | use from | notes |
//! | --- | --- | --- | --- |
//! | [`SpinLock`] | spinning | threads | disables preemption while held |
//! | [`IrqSpinLock`] | spinning | threads and interrupt handlers | also disables local interrupts |
//! | [`Mutex`] | sleeping | threads only | may be held across sleeps |
//! | [`Completion`] | sleeping | wait in threads, signal anywhere | "wait until this happened" |
//! | [`WaitQueue`] | sleeping | building block of the above | |
//!
//! Rule of thumb: data an interrupt handler touches needs an [`IrqSpinLock`]; otherwise a
//! [`SpinLock`] for short sections, a [`Mutex`] when the holder may sleep or hold it long.
//! Never sleep while holding a spin lock.

pub mod arc_list;
mod completion;
mod mutex;
pub mod rcu;
mod spin;
mod waitqueue;

pub use completion::Completion;
pub use mutex::{Mutex, MutexGuard};
pub use spin::{
    IrqSave, IrqSpinLock, IrqSpinLockGuard, SpinLock, SpinLockGuard, interrupts_enabled,
};
pub use waitqueue::WaitQueue;
