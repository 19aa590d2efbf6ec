//! Deferred frees for the whole kernel: while a [`DeferFrees`] guard lives, the blocks the
//! global allocator is asked to free on this CPU are queued on the CPU's free queue
//! (`slab::free_q`, Linux's `kmem_free_q`) instead, and freed when the outermost guard drops.
//!
//! Rust code rarely calls `kfree`: memory goes back when a `Box`, a `Vec` or the last
//! reference of an `Arc` is dropped, often inside a critical section, where the drop cannot be
//! rewritten as an explicit `kmem_free_q_add`. Taking the guard *before* the lock moves those
//! frees past the unlock without touching the code in between:
//!
//! ```ignore
//! let _deferred = DeferFrees::new(); // dropped last: frees what the section dropped
//! let mut list = LOCK.lock();
//! list.retain(|x| x.is_alive());      // the drops free nothing yet
//! ```
//!
//! The guard keeps preemption off (the queue is the CPU's). Interrupt handlers that free on
//! the CPU meanwhile queue too (each add runs with interrupts off). Blocks the queue refuses
//! (under 16 bytes: `kmalloc-8`, and anything not from kmalloc) are freed at once, as without
//! the guard; a block queued twice is reported (a double free) and freed once.
//!
//! Used by [`crate::sched::threads`] (see `docs/slab.md`, "Deferred free queue").

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use slab::{KmemFreeQHead, SlabErrorKind, SlabReport};
use spin::Mutex;

use super::kmalloc::{KernelPlatform, slab};
use crate::cpu::{MAX_CPUS, PreemptGuard};
use crate::sync::IrqSave;

/// A CPU's free queue and how many [`DeferFrees`] guards are alive on it.
struct CpuQueue {
    depth: usize,
    head: KmemFreeQHead<'static, KernelPlatform>,
}

/// Each CPU's queue, touched only by that CPU, with interrupts off.
static QUEUES: [Mutex<CpuQueue>; MAX_CPUS] = [const {
    Mutex::new(CpuQueue {
        depth: 0,
        head: KmemFreeQHead::new(),
    })
}; MAX_CPUS];

/// Guards alive on all CPUs: when 0, [`defer`] costs the global allocator one load.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Defers the frees of this CPU until dropped (see the module docs). Nests; not `Send`.
#[must_use = "frees are deferred only while the guard lives"]
pub struct DeferFrees {
    _preempt: PreemptGuard,
}

impl DeferFrees {
    /// Starts deferring this CPU's frees (and disables preemption until dropped).
    pub fn new() -> Self {
        let preempt = PreemptGuard::new();
        let _irq = IrqSave::new();
        let mut q = QUEUES[crate::cpu::current_id()].lock();
        if q.depth == 0 {
            ACTIVE.fetch_add(1, Ordering::Relaxed);
        }
        q.depth += 1;
        Self { _preempt: preempt }
    }
}

impl Default for DeferFrees {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DeferFrees {
    fn drop(&mut self) {
        let mut head = {
            let _irq = IrqSave::new();
            let mut q = QUEUES[crate::cpu::current_id()].lock();
            q.depth -= 1;
            if q.depth > 0 {
                return;
            }
            ACTIVE.fetch_sub(1, Ordering::Relaxed);
            core::mem::take(&mut q.head)
        };
        let result = slab().kmem_free_up_q(&mut head);
        for report in &result.reports {
            log::error!("deferred kfree: {report}");
        }
    }
}

/// The global allocator's hook: queues `ptr` if this CPU defers its frees. `true` when the
/// block was taken care of (queued, or a double free reported), `false` when the caller must
/// free it now.
///
/// # Safety
/// `ptr` is a block from kmalloc that the caller gives up if this returns `true`.
pub(super) unsafe fn defer(ptr: *mut u8) -> bool {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let Some(obj) = NonNull::new(ptr) else {
        return false;
    };
    let _irq = IrqSave::new();
    let mut q = QUEUES[crate::cpu::current_id()].lock();
    if q.depth == 0 {
        return false;
    }
    // SAFETY: a kmalloc'ed block the caller gives up (contract); on an error it stays the
    // caller's, except for a double free, which is no longer anybody's.
    match unsafe { slab().kmem_free_q_add(&mut q.head, None, obj) } {
        Ok(()) => true,
        Err(SlabReport {
            kind: SlabErrorKind::DoubleFree,
            ..
        }) => true,
        Err(_) => false,
    }
}

/// Objects queued on this CPU now (for tests).
pub fn queued_on_this_cpu() -> usize {
    let _irq = IrqSave::new();
    QUEUES[crate::cpu::current_id()].lock().head.len()
}

#[crate::ktest]
fn frees_under_a_guard_wait_for_its_drop() {
    use alloc::boxed::Box;
    let before = queued_on_this_cpu();
    let lock = crate::sync::SpinLock::new(alloc::vec::Vec::with_capacity(16));
    let guard = DeferFrees::new();
    {
        let mut list = lock.lock();
        list.extend((0..10u64).map(|i| Box::new([i; 8])));
        list.push(Box::new([0u64; 8]));
        list.clear();
    }
    // Eleven 64-byte boxes: queued, not freed. An 8-byte one is too small: freed at once.
    assert_eq!(queued_on_this_cpu(), before + 11);
    drop(Box::new(7u64));
    assert_eq!(queued_on_this_cpu(), before + 11);
    let nested = DeferFrees::new();
    drop(nested);
    assert_eq!(
        queued_on_this_cpu(),
        before + 11,
        "an inner guard frees nothing"
    );
    drop(guard);
    assert_eq!(queued_on_this_cpu(), 0);
}
