//! The bootstrap kernel heap: `linked_list_allocator` as the global allocator.
//!
//! A fixed range of virtual memory, above the bootloader's mappings, is mapped at boot and given
//! to a first-fit linked-list allocator, so `Box`, `Vec` and `BTreeMap` work. It is simple and
//! slow; the slab allocator (kmalloc) replaces it as the global allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;

use crate::sync::IrqSpinLock;
use x86_64::VirtAddr;
use x86_64::structures::paging::Size4KiB;
use x86_64::structures::paging::mapper::MapToError;

/// Start of the heap's virtual range (just above the bootloader's dynamic range).
pub const HEAP_START: u64 = 0xffff_c000_0000_0000;
/// Size of the bootstrap heap.
pub const HEAP_SIZE: u64 = 16 * 1024 * 1024;

/// The heap behind an irq-safe lock: interrupt handlers may allocate (waking a thread can grow
/// a run queue), and a thread holding the heap lock must not be preempted or interrupted by
/// code that wants it too.
struct KernelHeap(IrqSpinLock<Heap>);

// SAFETY: allocation and deallocation go to the linked-list heap under its lock; the heap
// returns blocks of at least `layout.size()` bytes aligned to `layout.align()`, or null.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a pointer this allocator returned for this layout.
        unsafe {
            self.0
                .lock()
                .deallocate(NonNull::new_unchecked(ptr), layout)
        }
    }
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqSpinLock::new(Heap::empty()));

/// Maps the heap range and hands it to the allocator.
pub fn init() -> Result<(), MapToError<Size4KiB>> {
    super::paging::map_fresh(VirtAddr::new(HEAP_START), HEAP_SIZE / 4096)?;
    // SAFETY: the range was just mapped, writable, and nothing else uses it; `init` runs once.
    unsafe {
        HEAP.0
            .lock()
            .init(HEAP_START as *mut u8, HEAP_SIZE as usize)
    };
    Ok(())
}

/// Bytes of the heap in use and free.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.0.lock();
    (heap.used(), heap.free())
}

#[crate::ktest]
fn box_vec_and_btreemap_work() {
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    let (used_before, _) = usage();
    {
        let b = Box::new(0x5eaf_u64);
        assert_eq!(*b, 0x5eaf);

        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(v.iter().sum::<u64>(), 10_000 * 9_999 / 2);

        let mut map = BTreeMap::new();
        for i in 0..1000u32 {
            map.insert(i.wrapping_mul(2_654_435_761), i);
        }
        assert_eq!(map.len(), 1000);
        assert_eq!(map.get(&7u32.wrapping_mul(2_654_435_761)), Some(&7));
        assert!(usage().0 > used_before, "the live objects are on the heap");
    }
    assert_eq!(
        usage().0,
        used_before,
        "dropping them gives every byte back"
    );
}
