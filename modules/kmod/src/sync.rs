//! Safe wrappers over the RCU, time and CPU exports: a read-side guard, the grace-period
//! waits, `msleep`, `jiffies` and the CPU numbers.

use crate::ffi;

/// A read-side critical section (`rcu_read_lock`), left when dropped (`rcu_read_unlock`).
/// Preemption is off meanwhile: do not sleep while holding it. Not `Send`: it belongs to the
/// CPU it was taken on.
pub struct RcuReadGuard {
    _not_send: core::marker::PhantomData<*const ()>,
}

impl RcuReadGuard {
    /// Enters a read-side critical section.
    pub fn new() -> Self {
        // SAFETY: no arguments; the guard's drop undoes it on the same CPU (not `Send`).
        unsafe { ffi::rcu_read_lock() };
        Self {
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Default for RcuReadGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RcuReadGuard {
    fn drop(&mut self) {
        // SAFETY: matches the `rcu_read_lock` of `new`.
        unsafe { ffi::rcu_read_unlock() };
    }
}

/// Waits for a grace period (`synchronize_rcu`; refused by the kernel, with a message, where
/// sleeping is not allowed).
pub fn synchronize_rcu() {
    // SAFETY: no arguments; the kernel checks the context.
    unsafe { ffi::synchronize_rcu() };
}

/// Waits until every RCU callback queued so far has run (`rcu_barrier`): a module whose
/// callbacks may be in flight calls it before it unloads.
pub fn rcu_barrier() {
    // SAFETY: no arguments; the kernel checks the context.
    unsafe { ffi::rcu_barrier() };
}

/// Waits until every object given to `kvfree_call_rcu` so far is freed.
pub fn kvfree_rcu_barrier() {
    // SAFETY: no arguments; the kernel checks the context.
    unsafe { ffi::kvfree_rcu_barrier() };
}

/// Sleeps at least `ms` milliseconds (`msleep`).
pub fn msleep(ms: u32) {
    // SAFETY: no pointers; the kernel checks the context.
    unsafe { ffi::msleep(ms) };
}

/// Timer ticks since boot (`jiffies`, [`ffi::HZ`] a second).
pub fn jiffies() -> u64 {
    // SAFETY: the kernel's counter, an aligned word it only increments: read once, volatile.
    unsafe { core::ptr::read_volatile(&raw const ffi::jiffies) }
}

/// The CPU the caller runs on (`smp_processor_id`; stable only inside an [`RcuReadGuard`]).
pub fn smp_processor_id() -> u32 {
    // SAFETY: no arguments.
    unsafe { ffi::smp_processor_id() }
}

/// The number of online CPUs (`num_online_cpus`).
pub fn num_online_cpus() -> u32 {
    // SAFETY: no arguments.
    unsafe { ffi::num_online_cpus() }
}
