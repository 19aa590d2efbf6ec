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
use core::sync::atomic::{AtomicBool, Ordering};

use barrier::barrier;
pub use gp::{counters, pending_callbacks};
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

/// Per CPU: whether its RCU callback thread is running a callback ([`run_callback`]).
static IN_CALLBACK: [AtomicBool; crate::cpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; crate::cpu::MAX_CPUS];

/// Runs `cb`, marking this CPU as running an RCU callback meanwhile: the callback threads
/// (`gp.rs`; pinned) run every callback through it, so that [`may_sleep`] says no
/// inside one (a callback that waited for a grace period would wait for itself: the thread
/// running it is the one that runs the next callbacks of its CPU).
pub(crate) fn run_callback(cb: RcuCallback) {
    let cpu = crate::cpu::current_id();
    IN_CALLBACK[cpu].store(true, Ordering::Relaxed);
    cb.run();
    IN_CALLBACK[cpu].store(false, Ordering::Relaxed);
}

/// Whether the caller may wait for a grace period now: a thread (not an interrupt handler)
/// with interrupts on and preemption enabled (so outside every read-side section and spin
/// lock), not running an RCU callback.
pub fn may_sleep() -> bool {
    crate::sync::interrupts_enabled()
        && !crate::cpu::in_interrupt()
        && crate::cpu::preemptible()
        && !IN_CALLBACK[crate::cpu::current_id()].load(Ordering::Relaxed)
}

/// [`synchronize_rcu`] that allocates nothing: the callback's head and the flag it sets live
/// on the caller's stack, and the caller polls the flag, yielding the CPU meanwhile (each
/// yield is a quiescent state of this CPU), so it works when memory is exhausted. It busies
/// the CPU for the grace period: for rare fallbacks (`kfree_rcu` out of memory), not as the
/// usual wait. Only where [`may_sleep`] holds.
pub fn synchronize_rcu_polling() {
    /// The on-stack callback: the head first, so the callback finds the flag from it.
    #[repr(C)]
    struct Waiter {
        head: RcuHead,
        done: AtomicBool,
    }
    /// Sets the flag of the [`Waiter`] around `head`; its last access to the waiter.
    ///
    /// # Safety
    /// `head` is the head of a live `Waiter` (queued by `synchronize_rcu_polling`).
    unsafe fn wake(head: NonNull<RcuHead>) {
        // SAFETY: the head is the first field of a `#[repr(C)]` `Waiter`, which its owner
        // keeps alive until it sees `done` (set here, last).
        let waiter = unsafe { &*head.cast::<Waiter>().as_ptr() };
        waiter.done.store(true, Ordering::Release);
    }
    let waiter = Waiter {
        head: RcuHead::new(),
        done: AtomicBool::new(false),
    };
    // SAFETY: the waiter stays on this stack, untouched, until `wake` has set `done`, which
    // this function waits for before returning; `wake` only sets the flag.
    unsafe { call_rcu_head(NonNull::from(&waiter.head), wake) };
    while !waiter.done.load(Ordering::Acquire) {
        crate::sched::yield_now();
    }
}

/// Waits until every callback queued so far, on any CPU, has run (`rcu_barrier`). Sleeps.
pub fn rcu_barrier() {
    gp::rcu_barrier_all();
}
