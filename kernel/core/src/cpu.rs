//! Per-CPU data, reached through the GS segment base.
//!
//! Every CPU has one [`Cpu`] structure. Its address is written to the CPU's `GS_BASE` register
//! and the structure's first field points at itself, so `mov rax, gs:[0]` yields "my `Cpu`" in
//! one instruction on any CPU, with no table lookup and no lock.
//!
//! # The rules
//!
//! - A thread may be preempted and moved to another CPU at any instruction where preemption is
//!   enabled. [`this_cpu`] tells which CPU the caller was on *when it asked*; to act on
//!   CPU-local state, disable preemption first ([`preempt_disable`] or a [`PreemptGuard`]) and
//!   keep it disabled until done.
//! - State also touched by interrupt handlers on the same CPU needs interrupts off as well
//!   ([`crate::sync::IrqSave`] or an irq-safe lock).
//! - Other CPUs may read a `Cpu` (statistics for the `cpus` command): fields they can see are
//!   atomics.
//! - The preemption counter is changed with single `gs:`-relative instructions, so the update
//!   can never land on another CPU's counter even if it races with an interrupt.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

// The most CPUs Sheaf supports: the kernel's one limit, owned by the `consts` crate, which the
// slab and RCU crates size their per-CPU arrays with too.
pub use consts::MAX_CPUS;

/// One CPU's private data. Reached through [`this_cpu`] on the CPU itself or [`cpu`] by index.
#[repr(C)]
pub struct Cpu {
    /// Points at this structure: `gs:[0]`.
    self_ptr: AtomicPtr<Cpu>,
    /// Preemption-disable nesting count: `gs:[8]`. Preemption is allowed when zero.
    preempt_count: AtomicU32,
    /// Interrupt handlers running on this CPU (Linux's hardirq count): `gs:[12]`.
    irq_count: AtomicU32,
    /// This CPU's slot in every cache's per-CPU array (`slab::base::cpu_slot(id)`, never 0)
    /// while its sheaves are free, 0 while a slab fast path holds them: the slab allocator's
    /// per-CPU trylock (Linux's `local_trylock` on `cpu_sheaves`; see
    /// [`slab_fast_path_enter`]). While it is 0 the thread is not preempted.
    slab_slot: AtomicUsize,
    /// Logical CPU number, 0 for the boot CPU.
    pub id: usize,
    /// Local APIC id.
    pub apic_id: AtomicU32,
    /// Set once the CPU runs kernel code and takes interrupts ([`set_online`]).
    online: AtomicBool,
    /// Timer ticks handled on this CPU.
    pub ticks: AtomicU64,
    /// Context switches made on this CPU.
    pub context_switches: AtomicU64,
    /// Allocations made through the global allocator (`kmalloc`) on this CPU, counted with one
    /// `gs`-relative increment (see [`allocations`]).
    allocations: AtomicU64,
    /// The id of the thread running on this CPU, kept by the scheduler at each switch, so
    /// that code that must not lock (the slab allocator's caller tracking) can name it: see
    /// [`current_tid`].
    current_tid: AtomicU64,
}

impl Cpu {
    /// A CPU structure for logical CPU `id`, not yet registered.
    const fn new(id: usize, apic_id: u32) -> Self {
        Self {
            self_ptr: AtomicPtr::new(core::ptr::null_mut()),
            preempt_count: AtomicU32::new(0),
            irq_count: AtomicU32::new(0),
            slab_slot: AtomicUsize::new(slab::base::cpu_slot(id)),
            id,
            apic_id: AtomicU32::new(apic_id),
            online: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            context_switches: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            current_tid: AtomicU64::new(0),
        }
    }

    /// Whether the CPU runs kernel code and takes interrupts.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Publishes the structure as CPU `self.id`.
    fn publish(&'static self) {
        let ptr = core::ptr::from_ref(self).cast_mut();
        self.self_ptr.store(ptr, Ordering::Release);
        CPUS[self.id].store(ptr, Ordering::Release);
        NR_CPUS.fetch_max(self.id + 1, Ordering::AcqRel);
    }
}

const PREEMPT_COUNT_OFFSET: usize = 8;
const _: () = assert!(core::mem::offset_of!(Cpu, preempt_count) == PREEMPT_COUNT_OFFSET);
const IRQ_COUNT_OFFSET: usize = core::mem::offset_of!(Cpu, irq_count);
const ALLOCATIONS_OFFSET: usize = core::mem::offset_of!(Cpu, allocations);
const SLAB_SLOT_OFFSET: usize = core::mem::offset_of!(Cpu, slab_slot);

static CPUS: [AtomicPtr<Cpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static NR_CPUS: AtomicUsize = AtomicUsize::new(0);

/// The boot CPU's structure: static, so it exists before the heap does.
static BOOT_CPU: Cpu = Cpu::new(0, 0);

/// Sets up the boot CPU's structure and points its GS base at it. The very first thing the
/// kernel does: locks and the preemption counter need it.
pub(crate) fn init_boot_cpu() {
    BOOT_CPU.publish();
    install(&BOOT_CPU);
}

/// Creates the structure of application processor `id` (it lives forever) and records it.
pub(crate) fn register(id: usize, apic_id: u32) -> &'static Cpu {
    assert!(
        id > 0 && id < MAX_CPUS,
        "CPU {id} is the boot CPU or beyond MAX_CPUS"
    );
    let cpu: &'static Cpu = alloc::boxed::Box::leak(alloc::boxed::Box::new(Cpu::new(id, apic_id)));
    cpu.publish();
    cpu
}

/// Makes `cpu` the structure `this_cpu` returns on the calling CPU (writes `GS_BASE`).
pub(crate) fn install(cpu: &'static Cpu) {
    x86_64::registers::model_specific::GsBase::write(x86_64::VirtAddr::from_ptr(cpu));
}

/// The calling CPU's structure. See the module rules about migration.
#[inline]
pub fn this_cpu() -> &'static Cpu {
    let ptr: *const Cpu;
    // SAFETY: `install` pointed GS_BASE at a `Cpu` whose first field points at itself, on every
    // CPU before it runs code that can reach here; the structure is never freed.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags));
        &*ptr
    }
}

/// The calling CPU's logical id (see [`this_cpu`] on migration).
#[inline]
pub fn current_id() -> usize {
    this_cpu().id
}

/// CPU `id`'s structure, if that CPU exists.
pub fn cpu(id: usize) -> Option<&'static Cpu> {
    // SAFETY: non-null entries point at leaked, never-freed `Cpu`s.
    unsafe { CPUS.get(id)?.load(Ordering::Acquire).as_ref() }
}

/// Marks the calling CPU online (it runs kernel code, its timer ticks and it takes
/// interrupts). Called once per CPU at start-up, which then has RCU wait for it too.
pub(crate) fn set_online() {
    this_cpu().online.store(true, Ordering::Release);
}

/// Number of CPU structures registered (online or starting).
pub fn count() -> usize {
    NR_CPUS.load(Ordering::Acquire)
}

/// Every registered CPU, in id order.
pub fn all() -> impl Iterator<Item = &'static Cpu> {
    (0..count()).filter_map(cpu)
}

/// Every online CPU, in id order.
pub fn online() -> impl Iterator<Item = &'static Cpu> {
    all().filter(|c| c.is_online())
}

/// The ids of the online CPUs other than the calling one (the one it runs on now: pin the
/// caller if that must stay true).
pub fn other_online_ids() -> impl Iterator<Item = usize> {
    let me = current_id();
    online().map(|c| c.id).filter(move |&c| c != me)
}

/// Disables preemption on this CPU (nests). Pair with [`preempt_enable`].
#[inline]
pub fn preempt_disable() {
    // SAFETY: a single gs-relative increment of this CPU's own counter (see the module docs).
    unsafe {
        core::arch::asm!("inc dword ptr gs:[{off}]", off = const PREEMPT_COUNT_OFFSET, options(nostack))
    };
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Re-enables preemption after [`preempt_disable`]. If this was the outermost level and a
/// reschedule is pending, the scheduler runs now.
#[inline]
pub fn preempt_enable() {
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    // SAFETY: a single gs-relative decrement of this CPU's own counter.
    unsafe {
        core::arch::asm!("dec dword ptr gs:[{off}]", off = const PREEMPT_COUNT_OFFSET, options(nostack))
    };
    if preempt_count() == 0 {
        crate::sched::preempt_point();
    }
}

/// A slab fast path takes this CPU's sheaves (the trylock): returns the CPU's slot and
/// leaves 0 in its place, or returns 0 if another context holds them (this one interrupted
/// it, or runs inside its slow path). Give the result back to [`slab_fast_path_exit`].
///
/// Two instructions, a load and a store of `gs`-relative memory: an interrupt between them
/// takes the sheaves, uses them and puts the slot back before this context continues, so it
/// finds what it read. While the slot is taken the thread is not preempted
/// ([`preemptible`]), so it stays its CPU's.
///
/// Crate-private: only the slab platform ([`crate::memory::kmalloc`]) takes the slot, and
/// only through a guard that puts it back.
#[inline(always)]
pub(crate) fn slab_fast_path_enter() -> usize {
    let slot: usize;
    // SAFETY: reads and clears this CPU's own word (see above for interrupts). Not `nomem`:
    // the sheaf accesses that follow must stay after it.
    unsafe {
        core::arch::asm!(
            "mov {slot}, qword ptr gs:[{off}]",
            "mov qword ptr gs:[{off}], 0",
            slot = out(reg) slot,
            off = const SLAB_SLOT_OFFSET,
            options(nostack, preserves_flags)
        );
    }
    slot
}

/// Ends what [`slab_fast_path_enter`] began, with what it returned: puts the slot back (a
/// nested holder puts back its 0). A reschedule that became due meanwhile waits for the next
/// interrupt exit or preemption point (at most a tick).
///
/// # Safety
/// `slot` is what the matching [`slab_fast_path_enter`] returned, on this CPU, in this
/// context, and each hold is ended once, the latest first. The fast path uses the word as an
/// unchecked offset into every cache's per-CPU array, and a slot put back twice, on another
/// CPU, or made up would let two contexts use one CPU's sheaves at once.
#[inline(always)]
pub(crate) unsafe fn slab_fast_path_exit(slot: usize) {
    // SAFETY: a single gs-relative store to this CPU's own word, of the slot this context took
    // from it (the caller's contract). Not `nomem`: the sheaf accesses before it must stay
    // before it.
    unsafe {
        core::arch::asm!(
            "mov qword ptr gs:[{off}], {slot}",
            slot = in(reg) slot,
            off = const SLAB_SLOT_OFFSET,
            options(nostack, preserves_flags)
        )
    };
}

/// Whether a slab fast path holds this CPU's sheaves (see [`slab_fast_path_enter`]).
#[inline]
pub fn slab_fast_path_held() -> bool {
    let slot: usize;
    // SAFETY: reads this CPU's own word.
    unsafe {
        core::arch::asm!("mov {}, qword ptr gs:[{off}]", out(reg) slot, off = const SLAB_SLOT_OFFSET, options(nostack, readonly, preserves_flags))
    };
    slot == 0
}

/// Whether the running thread may be switched away from now: preemption is not disabled and
/// no slab fast path holds the CPU's sheaves.
#[inline]
pub fn preemptible() -> bool {
    preempt_count() == 0 && !slab_fast_path_held()
}

/// The calling CPU's preemption-disable depth.
#[inline]
pub fn preempt_count() -> u32 {
    let count: u32;
    // SAFETY: reads this CPU's own counter.
    unsafe {
        core::arch::asm!("mov {:e}, dword ptr gs:[{off}]", out(reg) count, off = const PREEMPT_COUNT_OFFSET, options(nostack, readonly, preserves_flags))
    };
    count
}

/// Marks the start of an interrupt handler on this CPU (Linux's `irq_enter`): until the
/// matching [`irq_leave`], [`in_interrupt`] is true here.
#[inline]
pub(crate) fn irq_enter() {
    // SAFETY: a single gs-relative increment of this CPU's own counter.
    unsafe {
        core::arch::asm!("inc dword ptr gs:[{off}]", off = const IRQ_COUNT_OFFSET, options(nostack))
    };
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Marks the end of an interrupt handler (before it may switch threads on its way out).
#[inline]
pub(crate) fn irq_leave() {
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    // SAFETY: a single gs-relative decrement of this CPU's own counter.
    unsafe {
        core::arch::asm!("dec dword ptr gs:[{off}]", off = const IRQ_COUNT_OFFSET, options(nostack))
    };
}

/// Whether the caller runs in an interrupt handler (Linux's `in_hardirq`): code that behaves
/// differently for the interrupted thread (the workqueues' chained queueing) asks this first.
#[inline]
pub fn in_interrupt() -> bool {
    let count: u32;
    // SAFETY: reads this CPU's own counter.
    unsafe {
        core::arch::asm!("mov {:e}, dword ptr gs:[{off}]", out(reg) count, off = const IRQ_COUNT_OFFSET, options(nostack, readonly, preserves_flags))
    };
    count != 0
}

/// Counts an allocation of the global allocator on this CPU: one gs-relative increment, so it
/// never lands on another CPU's counter even if it races with an interrupt.
#[inline]
pub(crate) fn count_allocation() {
    // SAFETY: a single gs-relative increment of this CPU's own counter.
    unsafe {
        core::arch::asm!("inc qword ptr gs:[{off}]", off = const ALLOCATIONS_OFFSET, options(nostack))
    };
}

/// Allocations made through the global allocator (`Box`, `Vec`, ... on `kmalloc`) on the
/// calling CPU since boot. With local interrupts off nothing else runs on this CPU, so the
/// difference of two readings is exactly what the caller allocated in between (how the tests
/// check that a path does not allocate).
#[inline]
pub fn allocations() -> u64 {
    this_cpu().allocations.load(Ordering::Relaxed)
}

/// The id of the thread running on the calling CPU (Linux's `current->pid`; in an interrupt
/// handler, the interrupted thread's), read without a lock. 0 before the scheduler starts
/// on this CPU (the boot CPU's idle thread is 0 too).
#[inline]
pub fn current_tid() -> u64 {
    this_cpu().current_tid.load(Ordering::Relaxed)
}

/// Records that thread `tid` now runs on the calling CPU (the scheduler, at each switch).
pub(crate) fn set_current_tid(tid: u64) {
    this_cpu().current_tid.store(tid, Ordering::Relaxed);
}

/// Keeps preemption disabled while alive: the CPU the holder runs on cannot change.
pub struct PreemptGuard {
    _not_send: core::marker::PhantomData<*const ()>,
}

impl PreemptGuard {
    /// Disables preemption until the guard is dropped.
    #[inline]
    pub fn new() -> Self {
        preempt_disable();
        Self {
            _not_send: core::marker::PhantomData,
        }
    }

    /// The CPU the holder is pinned to.
    #[inline]
    pub fn cpu(&self) -> &'static Cpu {
        this_cpu()
    }
}

impl Default for PreemptGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PreemptGuard {
    #[inline]
    fn drop(&mut self) {
        preempt_enable();
    }
}

#[crate::ktest]
fn per_cpu_variables_are_distinct_per_cpu() {
    use alloc::vec::Vec;
    let handles: Vec<_> = all()
        .map(|c| {
            crate::sched::spawn_on(c.id, "percpu-test", || {
                let _pin = PreemptGuard::new();
                let me = this_cpu();
                (me.id, core::ptr::from_ref(me) as usize, preempt_count())
            })
            .expect("spawn")
        })
        .collect();
    let seen: Vec<(usize, usize, u32)> = handles.into_iter().map(|h| h.join()).collect();
    for (cpu, (id, _, depth)) in seen.iter().enumerate() {
        assert_eq!(
            *id, cpu,
            "a thread pinned to CPU {cpu} sees CPU {cpu}'s data"
        );
        assert_eq!(
            *depth, 1,
            "the preemption counter is per CPU and counts the guard"
        );
    }
    let mut addresses: Vec<usize> = seen.iter().map(|s| s.1).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(
        addresses.len(),
        seen.len(),
        "every CPU has its own structure"
    );
}

#[crate::ktest]
fn in_interrupt_is_true_in_interrupt_handlers_only() {
    use alloc::sync::Arc;
    assert!(!in_interrupt(), "a thread");
    let target = other_online_ids().next().expect("a second CPU");
    let seen = Arc::new(AtomicU32::new(0));
    let s = seen.clone();
    crate::arch::ipi::smp_call_function(target, move || {
        s.store(1 + u32::from(in_interrupt()), Ordering::SeqCst);
    })
    .expect("online");
    assert_eq!(seen.load(Ordering::SeqCst), 2, "in the call-function IPI");
    assert!(!in_interrupt(), "still a thread");
}

#[crate::ktest]
fn allocations_counts_this_cpus_allocations() {
    let _irq = crate::sync::IrqSave::new();
    let before = allocations();
    let b = alloc::boxed::Box::new([7u8; 100]);
    let v: alloc::vec::Vec<u32> = alloc::vec![1, 2, 3];
    assert_eq!(
        allocations() - before,
        2,
        "two allocations, nothing else on this CPU"
    );
    drop((b, v));
    assert_eq!(allocations() - before, 2, "frees are not counted");
}
