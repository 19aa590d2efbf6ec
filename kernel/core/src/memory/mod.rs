//! Memory: the page allocator, NUMA topology, the kernel page tables, stacks and the heap.
//!
//! The bootloader maps all physical memory at a fixed offset ([`phys_to_virt`]), so the kernel
//! can touch any frame, including page-table frames, through an ordinary pointer.

pub mod heap;
pub mod kmalloc;
pub mod layout;
pub mod numa;
pub mod page_alloc;
pub mod paging;
pub mod stack;

use bootloader_api::BootInfo;
use spin::Once;
use x86_64::{PhysAddr, VirtAddr};

pub use layout::{PAGE_SHIFT, PAGE_SIZE};

static PHYS_OFFSET: Once<u64> = Once::new();

/// Sets up the frame allocator, the page-table mapper and the heap, in that order.
pub(crate) fn init(boot_info: &'static BootInfo) {
    let offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("the bootloader maps physical memory (BOOTLOADER_CONFIG asks it to)");
    PHYS_OFFSET.call_once(|| offset);
    page_alloc::init(&boot_info.memory_regions);
    paging::init();
    heap::init().expect("the kernel heap must fit in memory");
}

/// The physical address behind `addr` if it lies in the physical-memory mapping.
pub fn virt_to_phys(addr: VirtAddr) -> Option<PhysAddr> {
    let offset = *PHYS_OFFSET.get()?;
    let phys = addr.as_u64().checked_sub(offset)?;
    (phys < PHYS_LIMIT).then(|| PhysAddr::new(phys))
}

/// Physical addresses the kernel treats as RAM (the direct map is at most this large).
const PHYS_LIMIT: u64 = 1 << 46;

/// The virtual address at which physical address `addr` is mapped.
pub fn phys_to_virt(addr: PhysAddr) -> VirtAddr {
    let offset = *PHYS_OFFSET.get().expect("memory::init has not run");
    VirtAddr::new(offset + addr.as_u64())
}
