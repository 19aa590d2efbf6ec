//! The scheduler: kernel threads on per-CPU run queues, preempted on the timer tick.
//!
//! Each CPU has a run queue of threads ready to run (an intrusive list through a link in each
//! [`Thread`], so waking a thread never allocates), the thread it runs now and an idle thread
//! (its boot context) that halts when there is nothing else. A thread is either pinned to one
//! CPU or placed, when spawned, on the CPU the policy picks; threads do not migrate after that.
//! The policy ([`SchedPolicy`], registered by the services: round robin with a time slice of
//! one tick, new threads on the least loaded CPU) decides placement and time slices; this module
//! is the mechanism.
//!
//! Switching happens in [`schedule`], called when a thread yields or sleeps, when preemption is
//! re-enabled with a reschedule pending, and on the way out of the timer and reschedule
//! interrupts. A thread that was woken on one CPU may be resumed by another only after its
//! context is saved: `on_cpu` guards that hand-over, as in Linux.

mod policy;
mod switch;
mod thread;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

pub use policy::{SchedPolicy, set_policy};
pub use thread::{
    JoinHandle, RunLink, SpawnError, State, Thread, ThreadAlloc, ThreadCache, ThreadRef, WaitLink,
    registered_threads, threads, try_threads,
};

use policy::POLICY;

use crate::cpu::{Cpu, MAX_CPUS, this_cpu};
use crate::sync::arc_list::ArcList;
use crate::sync::{IrqSave, IrqSpinLock};

/// A CPU's scheduler state: its run queue and whether it must reschedule. The scheduler owns
/// one per CPU ([`cpu_sched`]); the CPU layer below knows nothing of it.
pub struct CpuSched {
    rq: IrqSpinLock<RunQueue>,
    need_resched: AtomicBool,
}

struct RunQueue {
    /// Threads ready to run, linked through their run link: waking a thread never allocates.
    queue: ArcList<Thread, RunLink, ThreadAlloc>,
    current: Option<ThreadRef>,
    idle: Option<ThreadRef>,
    /// The thread switched away from, until the switch is finished.
    prev: Option<ThreadRef>,
}

impl CpuSched {
    /// An empty scheduler state, before the CPU adopts its idle thread.
    pub const fn new() -> Self {
        Self {
            rq: IrqSpinLock::new(RunQueue {
                queue: ArcList::new(),
                current: None,
                idle: None,
                prev: None,
            }),
            need_resched: AtomicBool::new(false),
        }
    }

    /// Threads waiting in this CPU's run queue.
    pub fn queued(&self) -> usize {
        self.rq.lock().queue.len()
    }

    /// The thread running on this CPU.
    pub fn current(&self) -> Option<ThreadRef> {
        self.rq.lock().current.clone()
    }
}

impl Default for CpuSched {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes the calling CPU's current context its idle thread. Called once per CPU at start-up,
/// before it takes interrupts.
pub(crate) fn init_cpu() {
    let cpu = this_cpu();
    let idle = thread::adopt_idle(cpu.id);
    let mut rq = cpu_sched(cpu).rq.lock();
    crate::cpu::set_current_tid(idle.id);
    rq.current = Some(idle.clone());
    rq.idle = Some(idle);
}

/// Spawns a kernel thread that may run on any CPU.
pub fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, SpawnError> {
    thread::create(name, None, f)
}

/// Spawns a kernel thread pinned to CPU `cpu`.
pub fn spawn_on<T: Send + 'static>(
    cpu: usize,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, SpawnError> {
    thread::create(name, Some(cpu), f)
}

/// Runs `f` once on every online CPU, each time in a kernel thread pinned to that CPU, and
/// returns when all have finished (the role of Linux's per-CPU work items in `flush_all`).
/// The threads run in process context, so `f` may take any lock a thread may take. If a
/// thread cannot be created, the CPUs not yet reached are skipped and the error returned;
/// the threads already started are still waited for.
pub fn run_on_each_cpu(name: &str, f: &(dyn Fn() + Sync)) -> Result<(), SpawnError> {
    /// `f`, sent to the threads without its lifetime.
    struct Job(*const (dyn Fn() + Sync + 'static));
    // SAFETY: the pointee is `Sync`, so calling it from other threads is allowed.
    unsafe impl Send for Job {}
    // SAFETY: only the lifetime is erased (same fat-pointer layout). Every thread that gets the
    // pointer is joined below before this function returns, so `f` outlives all its uses; a
    // panic in a thread stops the whole kernel, so no thread outlives us that way either.
    let job: *const (dyn Fn() + Sync + 'static) = unsafe { core::mem::transmute(f) };
    let mut handles = alloc::vec::Vec::new();
    let mut result = Ok(());
    for cpu in crate::cpu::online() {
        let job = Job(job);
        let run = move || {
            let job = job;
            // SAFETY: `f` is alive until every thread has been joined (see above).
            unsafe { (*job.0)() }
        };
        match spawn_on(cpu.id, name, run) {
            Ok(h) => handles.push(h),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    for h in handles {
        h.join();
    }
    result
}

/// The calling thread.
pub fn current() -> ThreadRef {
    this_sched()
        .current()
        .expect("sched::init_cpu has run on this CPU")
}

/// Gives up the CPU to the next runnable thread, if any.
pub fn yield_now() {
    schedule();
}

/// Runs the idle loop of the calling CPU forever: halt until an interrupt, run what is ready.
pub fn idle_loop() -> ! {
    loop {
        // Look for work with interrupts off, then `sti; hlt` as one step, so a wake-up
        // interrupt arriving between the check and the halt still ends the halt.
        x86_64::instructions::interrupts::disable();
        if this_sched().queued() > 0 {
            x86_64::instructions::interrupts::enable();
            schedule();
        } else {
            x86_64::instructions::interrupts::enable_and_hlt();
        }
    }
}

/// Ends the calling thread.
pub fn exit_current() -> ! {
    current().set_state(State::Exited);
    schedule();
    unreachable!("an exited thread was scheduled again");
}

/// Picks the next thread on this CPU and switches to it.
pub fn schedule() {
    assert!(
        crate::cpu::preemptible(),
        "scheduling while atomic (preemption disabled, or in a slab fast path)"
    );
    let _irq = IrqSave::new();
    // A context switch is a quiescent state (Linux's `rcu_note_context_switch`).
    crate::sync::rcu::note_context_switch();
    {
        let me = current();
        if me.state() == State::Blocked {
            // A workqueue worker that blocks lets its pool start another (concurrency
            // management, Linux's `wq_worker_sleeping`).
            crate::workqueue::on_block(&me);
        }
    }
    let cpu = this_cpu();
    cpu_sched(cpu).need_resched.store(false, Ordering::Relaxed);
    let mut rq = cpu_sched(cpu).rq.lock();
    let prev = rq
        .current
        .clone()
        .expect("sched::init_cpu has run on this CPU");
    // A running thread goes to the back of the queue; a blocked one stays off it; a Runnable
    // one was woken before it got here and is already queued; an exited one is done.
    if !prev.idle && prev.transition(State::Running, State::Runnable) {
        rq.queue.push_back(prev.clone());
    }
    let next = match rq.queue.pop_front() {
        Some(next) => next,
        None if prev.state() == State::Running => return,
        None => rq.idle.clone().expect("every CPU has an idle thread"),
    };
    next.set_state(State::Running);
    if Arc::ptr_eq(&next, &prev) {
        return;
    }
    // Wait until the CPU that ran `next` last has saved its context.
    while next.on_cpu.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    next.on_cpu.store(true, Ordering::Relaxed);
    next.cpu.store(cpu.id, Ordering::Relaxed);
    let save = prev.rsp.get();
    // SAFETY: `next` is not running anywhere (on_cpu was false), so its saved rsp is stable.
    let load = unsafe { *next.rsp.get() };
    crate::cpu::set_current_tid(next.id);
    rq.current = Some(next);
    rq.prev = Some(prev);
    cpu.context_switches.fetch_add(1, Ordering::Relaxed);
    drop(rq);
    // SAFETY: interrupts are off; `save` points into `prev`, kept alive by `rq.prev` until
    // `finish_switch`; `load` was saved by `switch_stacks` or built by `initial_stack`.
    unsafe { switch::switch_stacks(save, load) };
    finish_switch();
}

/// Runs on the new thread right after a switch: lets the previous thread be resumed elsewhere
/// and, if it exited, tells its joiners (its stack is no longer in use).
fn finish_switch() {
    let prev = this_sched().rq.lock().prev.take();
    if let Some(prev) = prev {
        prev.on_cpu.store(false, Ordering::Release);
        if prev.state() == State::Exited {
            prev.exited.complete();
        }
    }
}

/// Every CPU's scheduler state, by CPU id.
static CPU_SCHED: [CpuSched; MAX_CPUS] = [const { CpuSched::new() }; MAX_CPUS];

/// CPU `cpu`'s scheduler state.
pub fn cpu_sched(cpu: &Cpu) -> &'static CpuSched {
    &CPU_SCHED[cpu.id]
}

/// The calling CPU's scheduler state.
fn this_sched() -> &'static CpuSched {
    &CPU_SCHED[crate::cpu::current_id()]
}

/// Makes a blocked thread runnable again, on its CPU. Does nothing if it is not blocked.
pub fn wake(thread: &ThreadRef) {
    if thread.transition(State::Blocked, State::Runnable) {
        // Linux's `wq_worker_running`, on the waker's side, and before the thread can run:
        // once enqueued it may run on its CPU, finish this item, start the next one and block
        // in it (`on_block`) before a late `on_wake` here would count it running again, and
        // its pool, believing a worker runs, would start none for the items behind it.
        crate::workqueue::on_wake(thread);
        enqueue(thread, thread.cpu());
    }
}

/// Puts a runnable thread on CPU `cpu`'s run queue and makes sure that CPU notices.
fn enqueue(thread: &ThreadRef, cpu_id: usize) {
    let cpu = crate::cpu::cpu(cpu_id).expect("threads only live on existing CPUs");
    thread.cpu.store(cpu_id, Ordering::Relaxed);
    let idle = {
        let mut rq = cpu_sched(cpu).rq.lock();
        rq.queue.push_back(thread.clone());
        rq.current.as_ref().is_none_or(|c| c.idle)
    };
    if idle {
        kick(cpu);
    }
}

/// Asks `cpu` to reschedule: at once if it is this CPU, by IPI otherwise.
fn kick(cpu: &Cpu) {
    cpu_sched(cpu).need_resched.store(true, Ordering::Release);
    if cpu.id != this_cpu().id {
        crate::arch::ipi::send_reschedule(cpu);
    }
}

/// Where a new thread that is not pinned starts: on the CPU the policy picks if that CPU is
/// online, else (no policy yet, or a bad answer) on the calling CPU.
fn place_new_thread() -> usize {
    let here = crate::cpu::current_id();
    match POLICY.get() {
        Some(policy) => {
            let cpu = policy.select_cpu();
            if crate::cpu::cpu(cpu).is_some_and(Cpu::is_online) {
                cpu
            } else {
                here
            }
        }
        None => here,
    }
}

/// Called on every timer tick on every CPU: ends the current time slice if the policy says so.
pub(crate) fn tick() {
    let cpu = this_cpu();
    if POLICY.get().is_some_and(|policy| policy.tick_preempts(cpu)) {
        cpu_sched(cpu).need_resched.store(true, Ordering::Relaxed);
    }
}

/// Called at the end of an interrupt handler (interrupts still off): switches threads if a
/// reschedule is pending and the interrupted code allowed preemption.
pub(crate) fn irq_exit() {
    let cpu = this_cpu();
    if crate::cpu::preemptible() && cpu_sched(cpu).need_resched.load(Ordering::Relaxed) {
        schedule();
    }
}

/// Called by `preempt_enable` when the count drops to zero: reschedules if one is pending and
/// interrupts are on (with interrupts off, the next interrupt exit or enable will do it).
pub(crate) fn preempt_point() {
    if this_sched().need_resched.load(Ordering::Relaxed)
        && x86_64::instructions::interrupts::are_enabled()
        && !crate::cpu::slab_fast_path_held()
    {
        schedule();
    }
}
