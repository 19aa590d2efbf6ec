//! Memory: the page allocator, NUMA topology, the kernel page tables, stacks and the heap.
//!
//! The bootloader maps all physical memory at a fixed offset ([`phys_to_virt`]), so the kernel
//! can touch any frame, including page-table frames, through an ordinary pointer.

pub mod cache_alloc;
pub mod free_q;
pub mod heap;
pub mod kmalloc;
pub mod layout;
pub mod numa;
pub mod page_alloc;
pub mod paging;
pub mod stack;
pub mod static_cache;
pub mod track;
pub mod vmap;

use bootloader_api::BootInfo;
use spin::Once;
use x86_64::{PhysAddr, VirtAddr};

pub use layout::{PAGE_SHIFT, PAGE_SIZE};

static PHYS_OFFSET: Once<u64> = Once::new();
/// [`PHYS_OFFSET`] as a plain word (0 until set), for the slab allocator's `page_owner`, which
/// reads it on every `kfree`: no `Once` state to test.
static PHYS_MAP_BASE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Where the physical-memory map starts (0 before [`init`]).
#[inline]
pub fn phys_map_base() -> usize {
    PHYS_MAP_BASE.load(core::sync::atomic::Ordering::Relaxed)
}

/// The least usable memory the kernel needs to come up: the bootstrap heap (4 MiB), the buddy
/// allocator's metadata, page tables, the kmalloc caches' first slabs, and the stacks of the
/// idle, RCU and shell threads, with room to run. (The boot path needs more than this on QEMU:
/// see the launcher's `Firmware::min_memory_mib`.)
pub const MIN_USABLE_MEMORY: u64 = 8 * 1024 * 1024;

/// The kernel was handed less usable memory than [`MIN_USABLE_MEMORY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLittleMemory {
    /// Usable bytes the boot memory map reports.
    pub usable: u64,
}

impl core::fmt::Display for TooLittleMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "too little memory: {} KiB usable, the kernel needs at least {} KiB",
            self.usable / 1024,
            MIN_USABLE_MEMORY / 1024
        )
    }
}

/// Whether `usable` bytes of RAM are enough for the kernel to come up.
pub fn check_usable_memory(usable: u64) -> Result<(), TooLittleMemory> {
    if usable < MIN_USABLE_MEMORY {
        Err(TooLittleMemory { usable })
    } else {
        Ok(())
    }
}

/// Sets up the frame allocator, the page-table mapper and the heap, in that order. With less
/// usable memory than the kernel needs, it says so and powers off (with the failure status)
/// rather than failing somewhere later with no clear reason.
pub(crate) fn init(boot_info: &'static BootInfo) {
    let offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("the bootloader maps physical memory (BOOTLOADER_CONFIG asks it to)");
    PHYS_OFFSET.call_once(|| offset);
    PHYS_MAP_BASE.store(offset as usize, core::sync::atomic::Ordering::Relaxed);
    page_alloc::init(&boot_info.memory_regions);
    let usable = page_alloc::stats().total * PAGE_SIZE as u64;
    if let Err(err) = check_usable_memory(usable) {
        log::error!("{err}: powering off (give the machine more memory, e.g. --mem 512M)");
        drivers::qemu_exit::exit(drivers::qemu_exit::ExitCode::Failure);
    }
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

#[crate::ktest]
fn too_little_memory_is_refused_with_the_reason() {
    let err = check_usable_memory(MIN_USABLE_MEMORY - PAGE_SIZE as u64).unwrap_err();
    assert_eq!(
        alloc::format!("{err}"),
        "too little memory: 8188 KiB usable, the kernel needs at least 8192 KiB"
    );
    assert_eq!(check_usable_memory(MIN_USABLE_MEMORY), Ok(()));
    // This machine booted, so it has what the kernel needs.
    let usable = page_alloc::stats().total * PAGE_SIZE as u64;
    assert_eq!(check_usable_memory(usable), Ok(()));
}
