//! Kernel threads: creation, start, exit and join.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::memory::cache_alloc::{CacheAlloc, CacheTag, StaticCache};
use crate::memory::stack::KernelStack;
use crate::sync::arc_list::{Linked, ListLink};
use crate::sync::{Completion, IrqSpinLock, SpinLock};

/// What a thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// On a CPU right now.
    Running = 0,
    /// Waiting in a run queue for a CPU.
    Runnable = 1,
    /// Asleep until someone wakes it.
    Blocked = 2,
    /// Finished; waiting to be joined and freed.
    Exited = 3,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => State::Running,
            1 => State::Runnable,
            2 => State::Blocked,
            _ => State::Exited,
        }
    }
}

/// The static cache of thread structures (Linux's `task_struct_cachep`): `/sys/kernel/slab/
/// task_struct`, set up at the first thread made once the slab allocator is up (the boot
/// CPU's idle thread comes before, from the bootstrap heap).
pub struct ThreadCache;

impl CacheTag for ThreadCache {
    fn cache() -> &'static StaticCache {
        static CACHE: StaticCache = StaticCache::new("task_struct");
        &CACHE
    }
}

/// The allocator of [`Thread`]s: their static cache.
pub type ThreadAlloc = CacheAlloc<ThreadCache>;

/// A shared reference to a thread (an `Arc` in the thread cache's memory).
pub type ThreadRef = Arc<Thread, ThreadAlloc>;

/// A kernel thread.
pub struct Thread {
    /// Unique id (the boot CPU's idle thread is 0).
    pub id: u64,
    /// Name shown by `ps`.
    pub name: String,
    state: AtomicU8,
    /// Whether this thread may only run on its CPU.
    pub pinned: bool,
    /// Whether this is a CPU's idle thread (never queued; runs when nothing else can).
    pub(super) idle: bool,
    /// The CPU whose run queue the thread belongs to.
    pub(super) cpu: AtomicUsize,
    /// True from the moment a CPU switches to the thread until its context is saved again;
    /// another CPU must not resume it before (see `schedule`).
    pub(super) on_cpu: AtomicBool,
    /// Saved stack pointer while not running.
    pub(super) rsp: UnsafeCell<u64>,
    /// The thread's stack; `None` for a CPU's boot context adopted as its idle thread.
    _stack: Option<KernelStack>,
    /// The code to run, taken when the thread starts.
    entry: SpinLock<Option<Box<dyn FnOnce() + Send>>>,
    /// Completed when the thread has exited and is off its stack.
    pub(super) exited: Completion,
    /// Where the thread is linked while it waits in its CPU's run queue: queueing a thread
    /// never allocates.
    run_link: ListLink<Thread, RunLink>,
    /// Where the thread is linked while it sleeps on a [`WaitQueue`](crate::sync::WaitQueue)
    /// (Linux's `wait_queue_entry`, there on the sleeper's stack): going to sleep never
    /// allocates. A thread sleeps on one wait queue at a time, and takes itself off it before
    /// its wait returns.
    wait_link: ListLink<Thread, WaitLink>,
}

/// The marker of a thread's run-queue link (`ArcList<Thread, RunLink, ThreadAlloc>`).
pub struct RunLink;

/// The marker of a thread's wait-queue link (`ArcList<Thread, WaitLink, ThreadAlloc>`).
pub struct WaitLink;

impl Linked<RunLink> for Thread {
    fn link(&self) -> &ListLink<Thread, RunLink> {
        &self.run_link
    }
}

impl Linked<WaitLink> for Thread {
    fn link(&self) -> &ListLink<Thread, WaitLink> {
        &self.wait_link
    }
}

// SAFETY: `rsp` is only touched by the scheduler of the CPU that owns the thread, with
// interrupts off and ordered by `on_cpu`; all other fields are atomics, locks or immutable.
unsafe impl Sync for Thread {}
// SAFETY: as above; nothing in a thread is tied to the CPU that created it.
unsafe impl Send for Thread {}

impl Thread {
    /// The thread's state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(super) fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Moves `from` → `to` if the thread is in `from`; returns whether it did.
    pub(super) fn transition(&self, from: State, to: State) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks the running thread as about to sleep. It stops being scheduled at its next call
    /// to `schedule` unless woken first. Used by wait queues and timers.
    pub fn mark_blocked(&self) {
        self.set_state(State::Blocked);
    }

    /// The CPU the thread last ran on or is queued on.
    pub fn cpu(&self) -> usize {
        self.cpu.load(Ordering::Relaxed)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Every thread that has not been freed, for `ps`. A thread's entry goes when the thread is
/// freed (its `Drop`), so an exited thread that nobody joins (a detached one, such as a retired
/// workqueue worker) leaves nothing behind: its stack goes back to the stack cache and its
/// structure to kmalloc as soon as its last reference is dropped (by the CPU that switched
/// away from it, or by its `JoinHandle`, whichever is last). Irq-safe: the last reference may
/// in principle be dropped anywhere.
static THREADS: IrqSpinLock<Vec<Weak<Thread, ThreadAlloc>>> = IrqSpinLock::new(Vec::new());

/// Live threads, oldest first.
pub fn threads() -> Vec<ThreadRef> {
    let list = THREADS.lock();
    list.iter().filter_map(Weak::upgrade).collect()
}

/// [`threads`] without infallible allocation (for the shell's `ps`): `None` when there is no
/// memory for the list.
pub fn try_threads() -> Option<Vec<ThreadRef>> {
    let mut out = Vec::new();
    loop {
        let want = THREADS.lock().len();
        // Reserved with the lock dropped; threads made meanwhile: reserve again.
        out.try_reserve_exact(want).ok()?;
        let list = THREADS.lock();
        if list.len() <= out.capacity() {
            out.extend(list.iter().filter_map(Weak::upgrade));
            return Some(out);
        }
    }
}

/// How many threads are registered (not freed yet), exited ones whose last reference is still
/// held included: the length of the list [`threads`] reads. Every entry of a thread that was
/// freed is gone, so once exited threads are released this is the number of live threads.
pub fn registered_threads() -> usize {
    THREADS.lock().len()
}

impl Drop for Thread {
    fn drop(&mut self) {
        // Take this thread's entry out of the registry. Its `Weak` still points at this
        // allocation (`as_ptr` stays valid for comparison while a weak count is held), so
        // dropping it after the unlock only lowers the weak count: the `Arc` frees the block
        // when this drop returns.
        let me: *const Thread = self;
        let entry = {
            let mut list = THREADS.lock();
            list.iter()
                .position(|w| core::ptr::eq(w.as_ptr(), me))
                .map(|i| list.remove(i))
        };
        drop(entry);
    }
}

/// Wraps the current context of CPU `cpu` as its idle thread (it keeps its stack).
pub(super) fn adopt_idle(cpu: usize) -> ThreadRef {
    let thread = Arc::new_in(
        Thread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: alloc::format!("idle/{cpu}"),
            state: AtomicU8::new(State::Running as u8),
            pinned: true,
            idle: true,
            cpu: AtomicUsize::new(cpu),
            on_cpu: AtomicBool::new(true),
            rsp: UnsafeCell::new(0),
            _stack: None,
            entry: SpinLock::new(None),
            exited: Completion::new(),
            run_link: ListLink::new(),
            wait_link: ListLink::new(),
        },
        ThreadAlloc::new(),
    );
    THREADS.lock().push(Arc::downgrade(&thread));
    thread
}

/// Error from [`spawn`](super::spawn) and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// No memory for the thread: its stack, its structure, its name, the closure it runs or
    /// its entry in the thread registry. Nothing of the attempt is left behind.
    OutOfMemory,
    /// The requested CPU does not exist or is not online.
    NoSuchCpu,
}

impl From<alloc::alloc::AllocError> for SpawnError {
    fn from(_: alloc::alloc::AllocError) -> Self {
        SpawnError::OutOfMemory
    }
}

impl From<alloc::collections::TryReserveError> for SpawnError {
    fn from(_: alloc::collections::TryReserveError) -> Self {
        SpawnError::OutOfMemory
    }
}

/// Handle to a spawned thread: wait for it and take its result.
pub struct JoinHandle<T> {
    thread: ThreadRef,
    result: Arc<SpinLock<Option<T>>>,
}

impl<T> JoinHandle<T> {
    /// The thread.
    pub fn thread(&self) -> &ThreadRef {
        &self.thread
    }

    /// Sleeps until the thread has exited and returns what it returned.
    pub fn join(self) -> T {
        self.thread.exited.wait();
        self.result
            .lock()
            .take()
            .expect("an exited thread has stored its result")
    }
}

/// Creates a thread running `f`, on CPU `pin` (pinned) or on the least busy online CPU.
pub(super) fn create<T: Send + 'static>(
    name: &str,
    pin: Option<usize>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, SpawnError> {
    let cpu = match pin {
        Some(cpu) if crate::cpu::cpu(cpu).is_some_and(|c| c.is_online()) => cpu,
        Some(_) => return Err(SpawnError::NoSuchCpu),
        None => super::place_new_thread(),
    };
    // Every allocation is fallible: a thread that cannot be made is an error for the caller
    // (the workqueues then send a mayday to their rescuers), never a panic. What was allocated
    // before the failure is dropped: the stack goes back to the stack cache.
    let stack = KernelStack::new().ok_or(SpawnError::OutOfMemory)?;
    let mut thread_name = String::new();
    thread_name.try_reserve_exact(name.len())?;
    thread_name.push_str(name);
    let result = Arc::try_new(SpinLock::new(None))?;
    let slot = result.clone();
    let entry: Box<dyn FnOnce() + Send> = Box::try_new(move || {
        let value = f();
        *slot.lock() = Some(value);
    })?;
    let top = stack.top().as_u64();
    let thread = Arc::try_new_in(
        Thread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: thread_name,
            state: AtomicU8::new(State::Runnable as u8),
            pinned: pin.is_some(),
            idle: false,
            cpu: AtomicUsize::new(cpu),
            on_cpu: AtomicBool::new(false),
            rsp: UnsafeCell::new(0),
            _stack: Some(stack),
            entry: SpinLock::new(Some(entry)),
            exited: Completion::new(),
            run_link: ListLink::new(),
            wait_link: ListLink::new(),
        },
        ThreadAlloc::new(),
    )?;
    // The new thread's first switch calls `thread_start(ptr)`. The pointer stays valid: the
    // run queue holds a reference until the thread has exited and is off its stack.
    let arg = Arc::as_ptr(&thread) as u64;
    // SAFETY: `top` is the top of the fresh stack this thread owns; nothing else uses it.
    unsafe { *thread.rsp.get() = super::switch::initial_stack(top, arg) };
    {
        let mut list = THREADS.lock();
        if list.try_reserve(1).is_err() {
            drop(list);
            // Never started: dropping it frees its stack and structure (its `Drop` finds no
            // registry entry to take out).
            drop(thread);
            return Err(SpawnError::OutOfMemory);
        }
        list.push(Arc::downgrade(&thread));
    }
    // Queueing on the run queue does not allocate (the thread's run link).
    super::enqueue(&thread, cpu);
    Ok(JoinHandle { thread, result })
}

/// Where every new thread starts (called by the switch trampoline).
pub(super) extern "C" fn thread_start(thread: *const Thread) -> ! {
    super::finish_switch();
    x86_64::instructions::interrupts::enable();
    // SAFETY: `create` passed a pointer to the thread, which its run queue keeps alive.
    let thread = unsafe { &*thread };
    let entry = thread.entry.lock().take();
    if let Some(entry) = entry {
        entry();
    }
    super::exit_current()
}
