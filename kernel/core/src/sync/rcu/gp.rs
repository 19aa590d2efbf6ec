//! Grace-period detection: the `rcu` crate's state machine plugged into the scheduler, the
//! timer tick and one callback thread per CPU (Linux's tree RCU, non-preemptible flavour).
//!
//! Sheaf's quiescent states, as in Linux's non-preemptible RCU:
//! * a context switch ([`note_context_switch`], called by `schedule`, which runs with
//!   preemption enabled, so outside any read-side section);
//! * a timer tick that interrupted code with preemption enabled ([`tick`], called by the core's
//!   tick), which also covers the idle loop, whose `hlt` only the tick or another interrupt
//!   ends.
//!
//! Callbacks run in process context, in the thread `rcuc/N` of the CPU whose list they were
//! queued on; the tick wakes it when its callbacks are ready. They may therefore sleep or take
//! any lock a thread may take. [`rcu_barrier_all`] queues one callback on every CPU and waits
//! for all of them: since each CPU runs its list in order, every callback queued before has
//! run.
//!
//! This lives in the core, not with the services, because running a callback is what makes an
//! object's memory free: only the code that knows a grace period has passed may do it
//! ([`RcuCallback::run`](super::RcuCallback) is crate-private).

use rcu::Rcu;
use spin::Once;

use super::{HeadList, RcuCallback};
use crate::cpu::MAX_CPUS;
use crate::sync::{IrqSave, WaitQueue};

/// The grace-period machine, and each CPU's callback thread's wait queue.
struct State {
    rcu: Rcu<HeadList>,
    callback_waiters: [WaitQueue; MAX_CPUS],
}

static STATE: Once<State> = Once::new();

fn state() -> &'static State {
    STATE.get().expect("rcu::init has run")
}

/// Sets RCU up (once memory is up, before the first CPU is marked online). Until then no CPU
/// is online and nobody can be reading, so a callback runs at once.
pub(crate) fn init() {
    STATE.call_once(|| State {
        rcu: Rcu::with_lists(MAX_CPUS),
        callback_waiters: [const { WaitQueue::new() }; MAX_CPUS],
    });
}

/// Queues `cb` on the calling CPU's list, to run after a grace period; runs it at once before
/// RCU is set up (no CPU is online then, so nobody can be reading).
pub(crate) fn call(cb: RcuCallback) {
    match STATE.get() {
        Some(s) => {
            let _irq = IrqSave::new();
            s.rcu.call_rcu(crate::cpu::current_id(), cb);
        }
        None => cb.run(),
    }
}

/// Grace periods wait for CPU `cpu` from now on. Called by each CPU as it comes online, once
/// its timer ticks (so that it reports quiescent states).
pub(crate) fn cpu_online(cpu: usize) {
    if let Some(s) = STATE.get() {
        let _irq = IrqSave::new();
        s.rcu.cpu_online(cpu);
    }
}

/// Starts the callback thread of every online CPU (after SMP bring-up).
pub(crate) fn start_callback_threads() {
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
        let cb = s.callback_waiters[cpu].wait_until(|| {
            let _irq = IrqSave::new();
            s.rcu.pop_ready_callback(cpu)
        });
        crate::sync::rcu::run_callback(cb);
    }
}

/// Queues one barrier head on every online CPU and waits for all of them: since each CPU runs
/// its list in order, every callback queued before has run. Allocates nothing (the core's
/// static per-CPU barrier heads), so the slab allocator's destroy work can wait for RCU when
/// memory is exhausted.
pub(crate) fn rcu_barrier_all() {
    if STATE.get().is_none() {
        // Before RCU is set up every callback ran when it was queued.
        return;
    }
    super::barrier(crate::cpu::online().map(|c| c.id), |cpu, cb| {
        let _irq = IrqSave::new();
        state().rcu.call_rcu(cpu, cb);
    });
}

/// A context switch on the calling CPU: a quiescent state. Called by `schedule` (interrupts
/// off).
pub(crate) fn note_context_switch() {
    if let Some(s) = STATE.get() {
        s.rcu.quiescent_state(crate::cpu::current_id());
    }
}

/// The timer tick on the calling CPU (interrupt handler): a quiescent state if the interrupted
/// code had preemption enabled, and a wake-up for the callback thread if callbacks are ready.
pub(crate) fn tick() {
    let Some(s) = STATE.get() else { return };
    let cpu = crate::cpu::current_id();
    if crate::cpu::preempt_count() == 0 {
        s.rcu.quiescent_state(cpu);
    }
    if s.rcu.has_ready_callbacks(cpu) {
        s.callback_waiters[cpu].wake_all();
    }
}

/// Figures for the shell: the grace-period sequence number and the grace periods completed;
/// [`pending_callbacks`] gives each CPU's queue. Allocates nothing.
pub fn counters() -> (u64, u64) {
    let s = state();
    let _irq = IrqSave::new();
    (s.rcu.gp_seq(), s.rcu.completed_gps())
}

/// Callbacks queued on CPU `cpu`. Allocates nothing.
pub fn pending_callbacks(cpu: usize) -> usize {
    let _irq = IrqSave::new();
    state().rcu.pending_callbacks(cpu)
}

#[cfg(feature = "ktest")]
use super::{call_rcu, rcu_barrier, read_lock};
#[cfg(feature = "ktest")]
use alloc::sync::Arc;
#[cfg(feature = "ktest")]
use alloc::vec::Vec;

// The reader-on-another-CPU test of `synchronize_rcu` is the RCU lab's graded
// `selftest::lab_rcu::synchronize_rcu_waits_for_a_reader_on_another_cpu` (it runs in every
// `cargo test`, and gives up after 5 s instead of hanging when grace periods stop).

#[crate::ktest]
fn rcu_barrier_waits_for_every_queued_callback() {
    use core::sync::atomic::{AtomicUsize, Ordering};
    let ran = Arc::new(AtomicUsize::new(0));
    let before = counters().1;
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
    assert!(counters().1 > before, "grace periods completed");
}

#[crate::ktest]
fn readers_never_see_an_object_freed_after_a_grace_period() {
    use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    /// An RCU-protected object; `magic` is cleared when it is "freed", a grace period after it
    /// was replaced (the objects live in one array, so the test needs no raw pointers).
    struct Obj {
        magic: AtomicU64,
        value: u64,
    }
    const MAGIC: u64 = 0x5eaf_0bec_7000_0000;
    const VERSIONS: u64 = 40;
    /// Half a read-side section: longer than a tick (10 ms), so a grace period that ended too
    /// early would free the object under the reader.
    const SECTION_US: u64 = 12_000;
    let objs: Arc<Vec<Obj>> = Arc::new(
        (0..=VERSIONS)
            .map(|value| Obj {
                magic: AtomicU64::new(MAGIC ^ value),
                value,
            })
            .collect(),
    );
    // The published version: an index into `objs`.
    let current = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = crate::cpu::other_online_ids()
        .map(|cpu| {
            let (objs, current, stop) = (objs.clone(), current.clone(), stop.clone());
            crate::sched::spawn_on(cpu, "ktest-rcu-reader", move || -> u64 {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    {
                        let _guard = read_lock();
                        let obj = &objs[current.load(Ordering::Acquire)];
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
    for value in 1..=VERSIONS as usize {
        let old = current.swap(value, Ordering::AcqRel);
        let objs = objs.clone();
        // Replaced a grace period ago: no reader can hold it any more.
        call_rcu(move || objs[old].magic.store(0, Ordering::Relaxed));
        let tick = crate::time::jiffies();
        while crate::time::jiffies() == tick {
            crate::sched::yield_now();
        }
    }
    rcu_barrier();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join() > 0, "every reader read");
    }
    let freed = objs.iter().filter(|o| o.magic.load(Ordering::Relaxed) == 0);
    assert_eq!(
        freed.count(),
        VERSIONS as usize,
        "every replaced version was freed"
    );
}
