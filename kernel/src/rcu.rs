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

use alloc::sync::Arc;
use alloc::vec::Vec;

use rcu::Rcu;
use spin::Once;

use kcore::cpu::MAX_CPUS;
use kcore::sync::rcu::{HeadList, RcuBackend, RcuCallback};
pub use kcore::sync::rcu::{RcuReadGuard, call_rcu, rcu_barrier, read_lock, synchronize_rcu};
use kcore::sync::{IrqSave, WaitQueue};

// The grace-period crate tracks at most `rcu::MAX_CPUS` CPUs; the kernel's limit must fit.
const _: () = assert!(MAX_CPUS <= rcu::MAX_CPUS);

/// The grace-period machine, and each CPU's callback thread's wait queue.
struct State {
    rcu: Rcu<HeadList>,
    callback_waiters: [WaitQueue; MAX_CPUS],
}

static STATE: Once<State> = Once::new();

fn state() -> &'static State {
    STATE.get().expect("rcu::init has run")
}

/// Sets RCU up (once memory is up, before the first CPU is marked online).
pub fn init() {
    STATE.call_once(|| State {
        rcu: Rcu::with_lists(MAX_CPUS),
        callback_waiters: [const { WaitQueue::new() }; MAX_CPUS],
    });
    kcore::sync::rcu::set_backend(&Backend);
    kcore::sched::CONTEXT_SWITCH_HOOK.set(note_context_switch);
    kcore::cpu::ONLINE_HOOK.set(cpu_online);
}

/// Grace periods wait for CPU `cpu` from now on. Called by each CPU as it comes online, once
/// its timer ticks (so that it reports quiescent states).
pub fn cpu_online(cpu: usize) {
    let _irq = IrqSave::new();
    state().rcu.cpu_online(cpu);
}

/// Starts the callback thread of every online CPU (after SMP bring-up).
pub fn start_callback_threads() {
    for cpu in kcore::cpu::online() {
        let id = cpu.id;
        let name = alloc::format!("rcuc/{id}");
        kcore::sched::spawn_on(id, &name, move || callback_thread(id))
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
        kcore::sync::rcu::run_callback(cb);
    }
}

/// The grace-period machinery, as the core's RCU calls reach it.
struct Backend;

impl RcuBackend for Backend {
    fn call_rcu(&self, cb: RcuCallback) {
        let _irq = IrqSave::new();
        state().rcu.call_rcu(kcore::cpu::current_id(), cb);
    }

    fn rcu_barrier(&self) {
        rcu_barrier_all();
    }
}

/// Queues one barrier head on every online CPU and waits for all of them: since each CPU runs
/// its list in order, every callback queued before has run. Allocates nothing (the core's
/// static per-CPU barrier heads), so the slab allocator's destroy work can wait for RCU when
/// memory is exhausted.
fn rcu_barrier_all() {
    kcore::sync::rcu::barrier(kcore::cpu::online().map(|c| c.id), |cpu, cb| {
        let _irq = IrqSave::new();
        state().rcu.call_rcu(cpu, cb);
    });
}

/// A context switch on the calling CPU: a quiescent state. Called by `schedule` (interrupts
/// off).
pub fn note_context_switch() {
    if let Some(s) = STATE.get() {
        s.rcu.quiescent_state(kcore::cpu::current_id());
    }
}

/// The timer tick on the calling CPU (interrupt handler): a quiescent state if the interrupted
/// code had preemption enabled, and a wake-up for the callback thread if callbacks are ready.
pub fn tick() {
    let Some(s) = STATE.get() else { return };
    let cpu = kcore::cpu::current_id();
    if kcore::cpu::preempt_count() == 0 {
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

#[crate::ktest]
fn synchronize_rcu_waits_for_a_reader_on_another_cpu() {
    use core::sync::atomic::{AtomicU32, Ordering};
    let other = kcore::cpu::other_online_ids()
        .next()
        .expect("the test needs two CPUs");
    // 0: not yet reading, 1: inside the read-side section, 2: left it.
    let phase = Arc::new(AtomicU32::new(0));
    let p = phase.clone();
    let reader = kcore::sched::spawn_on(other, "ktest-reader", move || {
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
    let before = counters().1;
    let threads: Vec<_> = kcore::cpu::online()
        .map(|c| {
            let ran = ran.clone();
            kcore::sched::spawn_on(c.id, "ktest-call-rcu", move || {
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
    let readers: Vec<_> = kcore::cpu::other_online_ids()
        .map(|cpu| {
            let (objs, current, stop) = (objs.clone(), current.clone(), stop.clone());
            kcore::sched::spawn_on(cpu, "ktest-rcu-reader", move || -> u64 {
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
                    kcore::sched::yield_now();
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
        crate::time::sleep_ticks(1);
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
