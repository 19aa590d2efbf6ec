//! `rcu_barrier`'s waiting, without allocating: one static head per CPU (Linux's
//! `rdp->barrier_head`), a count of those not run yet (`barrier_cpu_count`) and a slot for the
//! one waiting thread, all under a mutex (`barrier_mutex`). RCU's grace-period machine (`gp`)
//! queues the heads on its per-CPU lists ([`barrier`]); the slab allocator's destroy work waits for RCU this
//! way, also when memory is exhausted.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{RcuCallback, RcuHead};
use crate::cpu::MAX_CPUS;
use crate::sched::{self, ThreadRef};
use crate::sync::{IrqSpinLock, Mutex};

/// Serialises barriers: the heads, the count and the waiter slot are one barrier's at a time.
static BARRIER_MUTEX: Mutex<()> = Mutex::new(());
/// Each CPU's barrier head.
static BARRIER_HEADS: [RcuHead; MAX_CPUS] = [const { RcuHead::new() }; MAX_CPUS];
/// Barrier heads not run yet, plus one while they are being queued.
static BARRIER_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The thread waiting for the barrier (a slot, not a wait queue: a wait queue's sleepers are
/// kept in a growable deque, which allocates).
static BARRIER_WAITER: IrqSpinLock<Option<ThreadRef>> = IrqSpinLock::new(None);

/// Counts one barrier head done; the last wakes the waiter.
fn barrier_done() {
    if BARRIER_COUNT.fetch_sub(1, Ordering::AcqRel) == 1 {
        let waiter = BARRIER_WAITER.lock().take();
        if let Some(thread) = waiter {
            sched::wake(&thread);
        }
    }
}

/// The function of a barrier head (Linux's `rcu_barrier_callback`).
///
/// # Safety
/// None needed: it only counts (the heads are statics).
unsafe fn barrier_callback(_: NonNull<RcuHead>) {
    barrier_done();
}

/// Gives `queue` a callback on CPU `cpu`'s barrier head for every `cpu` of `cpus` (each must be
/// below [`MAX_CPUS`], each once) to queue on that CPU's list, then sleeps until all of them
/// have run (Linux's `rcu_barrier`, whose caller's lists run in order: every callback queued on
/// them before has run too). Allocates nothing. Process context only.
pub(crate) fn barrier(
    cpus: impl Iterator<Item = usize>,
    mut queue: impl FnMut(usize, RcuCallback),
) {
    let _serial = BARRIER_MUTEX.lock();
    let me = sched::current();
    *BARRIER_WAITER.lock() = Some(me.clone());
    // One for the queueing itself, so that heads running meanwhile cannot reach 0 early.
    BARRIER_COUNT.store(1, Ordering::Release);
    for cpu in cpus {
        BARRIER_COUNT.fetch_add(1, Ordering::AcqRel);
        // SAFETY: the barrier mutex makes this barrier the heads' only user, and the previous
        // one waited until each had run, so none is queued; the callback only counts, anywhere.
        let cb = unsafe { RcuCallback::new(NonNull::from(&BARRIER_HEADS[cpu]), barrier_callback) };
        queue(cpu, cb);
    }
    barrier_done();
    loop {
        let waiter = BARRIER_WAITER.lock();
        if BARRIER_COUNT.load(Ordering::Acquire) == 0 {
            break;
        }
        // Blocked before the lock is dropped: the last head's wake-up, which takes the lock
        // first, is not lost (a wake-up before `schedule` makes the thread runnable again).
        me.mark_blocked();
        drop(waiter);
        sched::schedule();
    }
    // The last head took the waiter out before waking it, unless the count was 0 already.
    BARRIER_WAITER.lock().take();
}
