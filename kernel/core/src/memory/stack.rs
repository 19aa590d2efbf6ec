//! Kernel stacks with guard pages, for threads and application processors.
//!
//! Each stack lives in its own slot of a dedicated virtual range: the top [`STACK_SIZE`] bytes
//! of the slot are mapped, the rest stays unmapped, so running off the bottom of a stack hits an
//! unmapped page (a page fault, which becomes a double fault on the IST stack) instead of
//! silently overwriting a neighbour. Freed stacks keep their mapping and are reused by the next
//! thread, as Linux caches freed virtually-mapped stacks: no unmapping, no TLB shoot-down.

use alloc::vec::Vec;
use x86_64::VirtAddr;

use super::PAGE_SIZE;
use super::layout::KERNEL_STACKS;
use crate::sync::SpinLock;

/// Usable size of a kernel stack.
pub const STACK_SIZE: u64 = 64 * 1024;
/// Distance between two stacks: the unmapped rest of each slot is its guard.
const SLOT_SIZE: u64 = 128 * 1024;
/// Start of the kernel-stack range ([`KERNEL_STACKS`] in the address map).
const STACKS_START: u64 = KERNEL_STACKS.start;
/// How many stacks the range holds.
const MAX_STACKS: u64 = KERNEL_STACKS.size() / SLOT_SIZE;

struct Slots {
    /// Slots never used so far start at this index.
    next: u64,
    /// Freed slots, still mapped. Its capacity is kept at least `next`, so that freeing a
    /// stack (in [`KernelStack`]'s `Drop`, maybe while memory is exhausted) never allocates.
    free: Vec<u64>,
    /// A slot whose mapping failed part-way (out of memory): the next new stack finishes
    /// mapping it rather than taking a fresh slot, so failures leak neither slots nor pages.
    partial: Option<u64>,
}

/// How many slots, from the first, are fully mapped: a copy of `Slots::next` (less a slot left
/// `partial`) that a backtrace reads without the lock ([`mapped_stack`]). Slots are never
/// unmapped, so a slot below it stays readable for ever.
static FULLY_MAPPED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The mapped stack `[bottom, top)` of the slot `addr` lies in, if that slot is fully mapped
/// (a thread's, live or cached, or a CPU's boot or double-fault stack). Takes no lock: a
/// backtrace may run with [`SLOTS`] held.
pub(crate) fn mapped_stack(addr: u64) -> Option<(u64, u64)> {
    if !(STACKS_START..STACKS_START + MAX_STACKS * SLOT_SIZE).contains(&addr) {
        return None;
    }
    let slot = (addr - STACKS_START) / SLOT_SIZE;
    if slot >= FULLY_MAPPED.load(core::sync::atomic::Ordering::Acquire) {
        return None;
    }
    let bottom = slot_bottom(slot).as_u64();
    let top = STACKS_START + (slot + 1) * SLOT_SIZE;
    (bottom..top).contains(&addr).then_some((bottom, top))
}

static SLOTS: SpinLock<Slots> = SpinLock::new(Slots {
    next: 0,
    free: Vec::new(),
    partial: None,
});

/// How many stack slots have ever been mapped (freed stacks are reused before a new slot is).
pub fn slots_mapped() -> u64 {
    SLOTS.lock().next
}

/// How many kernel stacks are in use: mapped and not back in the cache of freed stacks (one
/// per live thread that is not a CPU's boot context, plus those of the application processors'
/// boot).
pub fn stacks_in_use() -> u64 {
    let slots = SLOTS.lock();
    slots.next - slots.free.len() as u64
}

/// The stack slot the caller runs on, which names its thread for as long as the thread lives
/// (`None` on a stack outside the range: a CPU's boot stack). Reads no lock: the address of a
/// local variable.
pub fn current_slot() -> Option<u64> {
    let here = 0u8;
    let addr = core::ptr::from_ref(&here) as u64;
    (STACKS_START..STACKS_START + MAX_STACKS * SLOT_SIZE)
        .contains(&addr)
        .then(|| (addr - STACKS_START) / SLOT_SIZE)
}

/// A kernel stack. Freed (and cached for reuse) when dropped.
#[derive(Debug)]
pub struct KernelStack {
    slot: u64,
}

impl KernelStack {
    /// Allocates a stack, or `None` when out of memory or stack slots. Never panics for
    /// want of memory.
    pub fn new() -> Option<Self> {
        let mut slots = SLOTS.lock();
        if let Some(slot) = slots.free.pop() {
            return Some(Self { slot });
        }
        let pages = STACK_SIZE / PAGE_SIZE as u64;
        if let Some(slot) = slots.partial {
            // Map what the failed attempt left unmapped.
            super::paging::map_fresh_missing(slot_bottom(slot), pages).ok()?;
            slots.partial = None;
            // The partial slot is always the last one handed out (`next - 1`).
            FULLY_MAPPED.store(slots.next, core::sync::atomic::Ordering::Release);
            return Some(Self { slot });
        }
        if slots.next >= MAX_STACKS {
            return None;
        }
        // Room to cache every stack mapped so far, this one included (see `Slots::free`).
        let mapped = slots.next as usize + 1;
        let room = mapped.saturating_sub(slots.free.len());
        slots.free.try_reserve(room).ok()?;
        let slot = slots.next;
        slots.next += 1;
        if super::paging::map_fresh(slot_bottom(slot), pages).is_err() {
            // Mapped part-way: finished by the next attempt.
            slots.partial = Some(slot);
            return None;
        }
        FULLY_MAPPED.store(slots.next, core::sync::atomic::Ordering::Release);
        Some(Self { slot })
    }

    /// Lowest usable address.
    pub fn bottom(&self) -> VirtAddr {
        slot_bottom(self.slot)
    }

    /// One past the highest usable address: the initial stack pointer.
    pub fn top(&self) -> VirtAddr {
        VirtAddr::new(STACKS_START + (self.slot + 1) * SLOT_SIZE)
    }
}

fn slot_bottom(slot: u64) -> VirtAddr {
    VirtAddr::new(STACKS_START + slot * SLOT_SIZE + SLOT_SIZE - STACK_SIZE)
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let mut slots = SLOTS.lock();
        debug_assert!(
            slots.free.len() < slots.free.capacity(),
            "room reserved in `new`"
        );
        slots.free.push(self.slot);
    }
}
