//! RCU's interface: the read side, and the calls that wait for a grace period.
//!
//! Readers run between [`read_lock`] and the drop of its guard, with preemption disabled (Linux's
//! non-preemptible RCU): that part is a core primitive, like a lock. Detecting grace periods
//! (quiescent states at context switches and ticks, callback threads) is a service: the
//! services' `rcu` module registers itself as the [`RcuBackend`] at start-up, and
//! [`call_rcu`], [`synchronize_rcu`] and [`rcu_barrier`] go to it. Before a backend is set no CPU
//! is online and nobody can be reading, so [`call_rcu`] runs its callback at once.

use alloc::boxed::Box;
use alloc::sync::Arc;

use crate::Hook;
use crate::cpu::PreemptGuard;
use crate::sync::Completion;

/// A callback to run after a grace period.
pub type Callback = Box<dyn FnOnce() + Send>;

/// The grace-period machinery behind [`call_rcu`] and [`rcu_barrier`] (the services' `rcu`).
pub trait RcuBackend: Sync {
    /// Queues `cb` to run in process context after a grace period.
    fn call_rcu(&self, cb: Callback);
    /// Waits until every callback queued so far, on any CPU, has run. Sleeps.
    fn rcu_barrier(&self);
}

static BACKEND: Hook<&'static dyn RcuBackend> = Hook::new();

/// Registers the grace-period machinery (once, before the first CPU is marked online).
/// Returns `false` if one was registered already.
pub fn set_backend(backend: &'static dyn RcuBackend) -> bool {
    BACKEND.set(backend)
}

/// A read-side critical section: preemption stays off until the guard is dropped.
pub struct RcuReadGuard {
    _preempt: PreemptGuard,
}

/// Enters a read-side critical section (`rcu_read_lock`); leaving it is dropping the guard
/// (`rcu_read_unlock`). The section must not sleep.
pub fn read_lock() -> RcuReadGuard {
    RcuReadGuard {
        _preempt: PreemptGuard::new(),
    }
}

/// Runs `f` in process context after a grace period (`call_rcu`): after every read-side
/// section that may have begun before this call has ended.
pub fn call_rcu(f: impl FnOnce() + Send + 'static) {
    call_rcu_boxed(Box::new(f));
}

/// [`call_rcu`] for a callback already boxed (the slab allocator's `kfree_rcu`).
pub fn call_rcu_boxed(cb: Callback) {
    match BACKEND.get() {
        Some(backend) => backend.call_rcu(cb),
        // Before RCU is set up no CPU is online, so nobody can be reading: run it now.
        None => cb(),
    }
}

/// Waits for a grace period (`synchronize_rcu`). Sleeps: process context only.
pub fn synchronize_rcu() {
    let done = Arc::new(Completion::new());
    let signal = done.clone();
    call_rcu(move || signal.complete());
    done.wait();
}

/// Waits until every callback queued so far, on any CPU, has run (`rcu_barrier`). Sleeps.
pub fn rcu_barrier() {
    if let Some(backend) = BACKEND.get() {
        backend.rcu_barrier();
    }
}
