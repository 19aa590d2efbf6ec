//! RCU's interface: the read side, and the calls that wait for a grace period.
//!
//! Readers run between [`read_lock`] and the drop of its guard, with preemption disabled (Linux's
//! non-preemptible RCU). Grace periods are detected by [`gp`]: quiescent states at context
//! switches and ticks (the scheduler and the tick call it directly), callbacks run by one
//! thread per CPU. Before RCU is set up (`kcore::start_cpus`) no CPU is online and nobody can
//! be reading, so a callback runs at once.
//!
//! The primitive is Linux's: [`call_rcu_head`] queues an [`RcuHead`] embedded in the object
//! to free, and never allocates; the slab allocator hands its sheaves and caches to RCU that
//! way (`KernelPlatform::call_rcu_head`). [`call_rcu`] (a closure) is a convenience on top
//! that boxes the closure with its head (one allocation).

mod barrier;
mod gp;
mod head;

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::ptr::NonNull;

use barrier::barrier;
pub use gp::stats;
pub(crate) use gp::{cpu_online, init, note_context_switch, start_callback_threads, tick};
use head::{HeadList, RcuCallback};
pub use head::{RcuFunc, RcuHead};

use crate::cpu::PreemptGuard;
use crate::sync::Completion;

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

/// Queues `head` so that `func(head)` runs in process context after a grace period: after
/// every read-side section that may have begun before this call has ended (Linux's
/// `call_rcu(head, func)`). Never allocates.
///
/// # Safety
/// `head` must stay valid, and untouched by anyone else, until `func` runs, and calling
/// `func(head)` then, on any CPU in process context, must be sound. Typically `head` is
/// embedded in an object nobody will use after the grace period, and `func` frees the object.
pub unsafe fn call_rcu_head(head: NonNull<RcuHead>, func: RcuFunc) {
    // SAFETY: forwarded contract.
    let cb = unsafe { RcuCallback::new(head, func) };
    gp::call(cb);
}

/// A closure boxed together with the head that queues it.
#[repr(C)]
struct Closure<F> {
    /// First, so that the head's address is the box's.
    head: RcuHead,
    f: F,
}

/// The [`RcuFunc`] of a [`Closure`]: takes the box back and calls the closure.
///
/// # Safety
/// `head` is the head of a leaked `Box<Closure<F>>` (see [`call_rcu`]).
unsafe fn run_closure<F: FnOnce()>(head: NonNull<RcuHead>) {
    // SAFETY: `Closure` is `repr(C)` with the head first, and the box was leaked by `call_rcu`
    // and is taken back exactly once, here.
    let closure = unsafe { Box::from_raw(head.as_ptr().cast::<Closure<F>>()) };
    (closure.f)();
}

/// Runs `f` in process context after a grace period (`call_rcu` with a closure). A
/// convenience over [`call_rcu_head`]: it allocates the closure's box (with its head).
pub fn call_rcu<F: FnOnce() + Send + 'static>(f: F) {
    gp::call(RcuCallback::from_closure(f));
}

impl RcuCallback {
    /// A callback that runs `f`, boxed with its head (one allocation).
    fn from_closure<F: FnOnce() + Send + 'static>(f: F) -> Self {
        let closure = Box::new(Closure {
            head: RcuHead::new(),
            f,
        });
        let head = NonNull::from(Box::leak(closure)).cast::<RcuHead>();
        // SAFETY: the head is inside a leaked box that only `run_closure` takes back, when the
        // callback runs; the closure is `Send + 'static`, so running it later on any CPU is
        // sound.
        unsafe { RcuCallback::new(head, run_closure::<F>) }
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
    gp::rcu_barrier_all();
}
