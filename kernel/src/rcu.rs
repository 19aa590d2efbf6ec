//! RCU (read-copy-update) in the kernel: the `rcu` crate's grace-period state machine plugged
//! into the scheduler, the timer tick and one callback thread per CPU.
//!
//! Readers run between [`read_lock`] and the drop of its guard, with preemption disabled: they
//! never sleep and never block writers. A writer publishes a new version of the data, then
//! waits for a *grace period* ([`synchronize_rcu`]) or queues a callback ([`call_rcu`]) before
//! freeing the old version: once every CPU has passed through a *quiescent state* (a point
//! where it cannot be inside a read-side section), no reader can still hold the old version.
//!
//! Sheaf's quiescent states, as in Linux's non-preemptible RCU:
//! * a context switch ([`note_context_switch`], from `schedule`, which runs with preemption
//!   enabled, so outside any read-side section);
//! * a timer tick that interrupted code with preemption enabled ([`tick`]), which also covers
//!   the idle loop, whose `hlt` only the tick or another interrupt ends.
//!
//! Callbacks run in process context, in the thread `rcuc/N` of the CPU whose list they were
//! queued on; the tick wakes it when its callbacks are ready. They may therefore sleep or take
//! any lock a thread may take. [`rcu_barrier`] queues one callback on every CPU and waits for
//! all of them: since each CPU runs its list in order, every callback queued before has run.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use rcu::Rcu;
use spin::Once;

use crate::cpu::{MAX_CPUS, PreemptGuard};
use crate::sync::{Completion, IrqSave, WaitQueue};

/// The grace-period machine, and each CPU's callback thread's wait queue.
struct State {
    rcu: Rcu,
    callback_waiters: [WaitQueue; MAX_CPUS],
}

static STATE: Once<State> = Once::new();

fn state() -> &'static State {
    STATE.get().expect("rcu::init has run")
}

/// Sets RCU up (once memory is up, before the first CPU is marked online).
pub fn init() {
    STATE.call_once(|| State {
        rcu: Rcu::new(MAX_CPUS),
        callback_waiters: [const { WaitQueue::new() }; MAX_CPUS],
    });
}

/// Grace periods wait for CPU `cpu` from now on. Called by each CPU as it comes online, once
/// its timer ticks (so that it reports quiescent states).
pub fn cpu_online(cpu: usize) {
    let _irq = IrqSave::new();
    state().rcu.cpu_online(cpu);
}

/// Starts the callback thread of every online CPU (after SMP bring-up).
pub fn start_callback_threads() {
    for cpu in crate::cpu::online() {
        let id = cpu.id;
        let name = alloc::format!("rcuc/{id}");
        crate::sched::spawn_on(id, &name, move || callback_thread(id))
            .expect("memory for the RCU callback threads at boot");
    }
}

/// `rcuc/N`: runs CPU `cpu`'s callbacks as their grace periods end.
fn callback_thread(cpu: usize) -> ! {
    let s = state();
    loop {
        let ready = s.callback_waiters[cpu].wait_until(|| {
            let _irq = IrqSave::new();
            let cbs = s.rcu.take_ready_callbacks(cpu);
            (!cbs.is_empty()).then_some(cbs)
        });
        for cb in ready {
            cb();
        }
    }
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
pub fn call_rcu_boxed(cb: rcu::Callback) {
    let Some(s) = STATE.get() else {
        // Before RCU is set up no CPU is online, so nobody can be reading: run it now.
        return cb();
    };
    let _irq = IrqSave::new();
    s.rcu.call_rcu(crate::cpu::current_id(), cb);
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
    if STATE.get().is_none() {
        return; // Nothing can have been queued.
    }
    let done: Vec<Arc<Completion>> = crate::cpu::online()
        .map(|cpu| {
            let done = Arc::new(Completion::new());
            let signal = done.clone();
            let _irq = IrqSave::new();
            state()
                .rcu
                .call_rcu(cpu.id, Box::new(move || signal.complete()));
            done
        })
        .collect();
    for d in done {
        d.wait();
    }
}

/// A context switch on the calling CPU: a quiescent state. Called by `schedule` (interrupts
/// off).
pub fn note_context_switch() {
    if let Some(s) = STATE.get() {
        s.rcu.quiescent_state(crate::cpu::current_id());
    }
}

/// The timer tick on the calling CPU (interrupt handler): a quiescent state if the interrupted
/// code had preemption enabled, and a wake-up for the callback thread if callbacks are ready.
pub fn tick() {
    let Some(s) = STATE.get() else { return };
    let cpu = crate::cpu::current_id();
    if crate::cpu::preempt_count() == 0 {
        s.rcu.quiescent_state(cpu);
    }
    if s.rcu.has_ready_callbacks(cpu) {
        s.callback_waiters[cpu].wake_all();
    }
}

/// Figures for the shell: (grace-period sequence number, grace periods completed, callbacks
/// queued on each online CPU).
pub fn stats() -> (u64, u64, Vec<(usize, usize)>) {
    let s = state();
    let _irq = IrqSave::new();
    let pending = crate::cpu::online()
        .map(|c| (c.id, s.rcu.pending_callbacks(c.id)))
        .collect();
    (s.rcu.gp_seq(), s.rcu.completed_gps(), pending)
}

#[crate::ktest]
fn synchronize_rcu_waits_for_a_reader_on_another_cpu() {
    use core::sync::atomic::{AtomicU32, Ordering};
    let other = crate::cpu::other_online_ids()
        .next()
        .expect("the test needs two CPUs");
    // 0: not yet reading, 1: inside the read-side section, 2: left it.
    let phase = Arc::new(AtomicU32::new(0));
    let p = phase.clone();
    let reader = crate::sched::spawn_on(other, "ktest-reader", move || {
        let guard = read_lock();
        p.store(1, Ordering::SeqCst);
        // Stay inside for several ticks: their interrupts must not count as quiescent.
        crate::time::delay_us(60_000);
        p.store(2, Ordering::SeqCst);
        drop(guard);
    })
    .expect("thread");
    while phase.load(Ordering::SeqCst) == 0 {
        core::hint::spin_loop();
    }
    synchronize_rcu();
    assert_eq!(
        phase.load(Ordering::SeqCst),
        2,
        "the grace period ended while a reader that began before it was still inside"
    );
    reader.join();
}

#[crate::ktest]
fn rcu_barrier_waits_for_every_queued_callback() {
    use core::sync::atomic::{AtomicUsize, Ordering};
    let ran = Arc::new(AtomicUsize::new(0));
    let before = stats().1;
    let threads: Vec<_> = crate::cpu::online()
        .map(|c| {
            let ran = ran.clone();
            crate::sched::spawn_on(c.id, "ktest-call-rcu", move || {
                for _ in 0..25 {
                    let ran = ran.clone();
                    call_rcu(move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
            .expect("thread")
        })
        .collect();
    let queued = 25 * threads.len();
    for t in threads {
        t.join();
    }
    rcu_barrier();
    assert_eq!(ran.load(Ordering::SeqCst), queued, "every callback ran");
    assert!(stats().1 > before, "grace periods completed");
}

#[crate::ktest]
fn readers_never_see_an_object_freed_after_a_grace_period() {
    use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
    /// An RCU-protected object; `magic` is cleared just before it is freed.
    struct Obj {
        magic: AtomicU64,
        value: u64,
    }
    const MAGIC: u64 = 0x5eaf_0bec_7000_0000;
    /// Half a read-side section: longer than a tick (10 ms), so a grace period that ended too
    /// early would free the object under the reader.
    const SECTION_US: u64 = 12_000;
    let current = Arc::new(AtomicPtr::new(Box::into_raw(Box::new(Obj {
        magic: AtomicU64::new(MAGIC),
        value: 0,
    }))));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = crate::cpu::other_online_ids()
        .map(|cpu| {
            let (current, stop) = (current.clone(), stop.clone());
            crate::sched::spawn_on(cpu, "ktest-rcu-reader", move || -> u64 {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    {
                        let _guard = read_lock();
                        let p = current.load(Ordering::Acquire);
                        // SAFETY: `p` was published and is only freed a grace period after
                        // it was replaced; we are inside a read-side section.
                        let obj = unsafe { &*p };
                        // Look twice, more than a tick apart: the object must stay alive in
                        // between, although the writer replaces it meanwhile.
                        for _ in 0..2 {
                            let magic = obj.magic.load(Ordering::Relaxed);
                            assert_eq!(magic, MAGIC ^ obj.value, "a reader saw a freed object");
                            crate::time::delay_us(SECTION_US);
                        }
                    }
                    reads += 1;
                    // Like Linux's `cond_resched()` in a long loop: a quiescent state, and a
                    // chance for this CPU's callback thread to run.
                    crate::sched::yield_now();
                }
                reads
            })
            .expect("thread")
        })
        .collect();
    for value in 1..=40u64 {
        let new = Box::into_raw(Box::new(Obj {
            magic: AtomicU64::new(MAGIC ^ value),
            value,
        }));
        let old = current.swap(new, Ordering::AcqRel) as usize;
        call_rcu(move || {
            // SAFETY: `old` was replaced a grace period ago: no reader holds it any more.
            let old = unsafe { Box::from_raw(old as *mut Obj) };
            old.magic.store(0, Ordering::Relaxed);
            drop(old);
        });
        crate::time::sleep_ticks(1);
    }
    rcu_barrier();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join() > 0, "every reader read");
    }
    // SAFETY: the last object was never replaced and nobody reads it any more.
    drop(unsafe { Box::from_raw(current.load(Ordering::Acquire)) });
}
