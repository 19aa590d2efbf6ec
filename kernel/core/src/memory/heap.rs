//! The bootstrap heap: `linked_list_allocator` over a fixed virtual range.
//!
//! The slab allocator needs memory for its own structures before it can serve anything, as
//! Linux's slab needs its boot caches. Until [`super::kmalloc`] takes over, every `Box` and `Vec`
//! comes from this first-fit heap; afterwards it only takes back what it gave out. It is simple
//! and slow, which makes it the baseline the slab allocator is measured against.

use core::alloc::Layout;
use core::ptr::NonNull;
use linked_list_allocator::Heap;
use x86_64::VirtAddr;
use x86_64::structures::paging::Size4KiB;
use x86_64::structures::paging::mapper::MapToError;

use crate::sync::IrqSpinLock;

use super::PAGE_SIZE;
use super::layout;

/// Start of the heap's virtual range ([`layout::HEAP`] in the address map).
pub const HEAP_START: u64 = layout::HEAP.start;
/// Size of the bootstrap heap.
pub const HEAP_SIZE: u64 = layout::HEAP.size();

/// Behind an irq-safe lock: interrupt handlers may allocate, and a thread holding the heap
/// lock must not be preempted or interrupted by code that wants it too.
static HEAP: IrqSpinLock<Heap> = IrqSpinLock::new(Heap::empty());

/// Maps the heap range and hands it to the allocator.
pub(crate) fn init() -> Result<(), MapToError<Size4KiB>> {
    super::paging::map_fresh(VirtAddr::new(HEAP_START), HEAP_SIZE / PAGE_SIZE as u64)?;
    // SAFETY: the range was just mapped, writable, and nothing else uses it; `init` runs once.
    unsafe { HEAP.lock().init(HEAP_START as *mut u8, HEAP_SIZE as usize) };
    Ok(())
}

/// Whether `ptr` points into the bootstrap heap.
pub fn contains(ptr: *const u8) -> bool {
    (HEAP_START..HEAP_START + HEAP_SIZE).contains(&(ptr as u64))
}

/// Allocates from the bootstrap heap (null when full).
pub fn alloc(layout: Layout) -> *mut u8 {
    HEAP.lock()
        .allocate_first_fit(layout)
        .map_or(core::ptr::null_mut(), NonNull::as_ptr)
}

/// Gives a block back to the bootstrap heap.
///
/// # Safety
/// `ptr` must come from [`alloc`] with this `layout` and not be used afterwards.
pub unsafe fn dealloc(ptr: *mut u8, layout: Layout) {
    // SAFETY: forwarded from the caller; `ptr` is non-null because `alloc` returned it.
    unsafe { HEAP.lock().deallocate(NonNull::new_unchecked(ptr), layout) }
}

/// Bytes of the heap in use and free.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.used(), heap.free())
}
