//! The kernel's virtual-address map and page size: the one place that says where things are.
//!
//! ```text
//! 0xffff_8000_0000_0000 ┬───────────────────────────────────────────────────────────────┐
//!                       │ BOOTLOADER_DYNAMIC: the bootloader's own mappings: the        │
//!                       │ physical-memory map (at an offset it picks, see               │
//!                       │ `memory::phys_to_virt`), boot information, boot stack, ramdisk│
//! 0xffff_c000_0000_0000 ├───────────────────────────────────────────────────────────────┤
//!                       │ HEAP: the bootstrap heap (4 MiB)                              │
//! 0xffff_c800_0000_0000 ├───────────────────────────────────────────────────────────────┤
//!                       │ KERNEL_STACKS: 65536 slots of 128 KiB, each a 64 KiB stack    │
//!                       │ over an unmapped guard                                        │
//! 0xffff_d000_0000_0000 ├───────────────────────────────────────────────────────────────┤
//!                       │ MMIO: device registers (local and I/O APICs), bump-allocated  │
//! 0xffff_d800_0000_0000 ├───────────────────────────────────────────────────────────────┤
//!                       │ SCRATCH: pages tests map and unmap (TLB shoot-down)           │
//! 0xffff_e000_0000_0000 ├───────────────────────────────────────────────────────────────┤
//!                       │ SLAB_META: one slab descriptor per page frame, mapped on      │
//!                       │ demand (Linux's `struct slab` in the `vmemmap` array)         │
//! 0xffff_f000_0000_0000 ├───────────────────────────────────────────────────────────────┤
//!                       │ (unused)                                                      │
//! 0xffff_ffff_8000_0000 ├───────────────────────────────────────────────────────────────┤
//!                       │ KERNEL_IMAGE: the kernel ELF (512 MiB, as Linux's text map)   │
//! 0xffff_ffff_a000_0000 ├───────────────────────────────────────────────────────────────┤
//!                       │ MODULES: owned mappings (`memory::vmap`): loadable modules,   │
//!                       │ the benchmark heap; in the top 2 GiB so code built with       │
//!                       │ `-mcmodel=kernel` reaches the kernel                          │
//! 0xffff_ffff_ff00_0000 ┴───────────────────────────────────────────────────────────────┘
//! ```
//!
//! Every range here is used by exactly one module, which takes its bounds from this file; the
//! compile-time checks at the bottom keep the ranges in order and apart.

// The size of a page (and of a page frame), 4 KiB, and its log2: owned by the `consts` crate,
// which the slab, buddy and kobject crates use too.
pub use consts::{PAGE_SHIFT, PAGE_SIZE};

/// A range of virtual addresses: `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtRange {
    /// First address of the range.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

impl VirtRange {
    /// Size of the range in bytes.
    pub const fn size(&self) -> u64 {
        self.end - self.start
    }

    /// Whether `addr` lies in the range.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Where the bootloader may place its own mappings (physical-memory map, boot info, boot stack,
/// ramdisk). Everything above, up to [`KERNEL_IMAGE`], is the kernel's to lay out.
pub const BOOTLOADER_DYNAMIC: VirtRange = VirtRange {
    start: 0xffff_8000_0000_0000,
    end: 0xffff_c000_0000_0000,
};
/// The bootstrap heap (`memory::heap`).
pub const HEAP: VirtRange = VirtRange {
    start: 0xffff_c000_0000_0000,
    end: 0xffff_c000_0000_0000 + 4 * 1024 * 1024,
};
/// Kernel stacks with guard pages (`memory::stack`).
pub const KERNEL_STACKS: VirtRange = VirtRange {
    start: 0xffff_c800_0000_0000,
    end: 0xffff_d000_0000_0000,
};
/// Device registers (`memory::paging::map_mmio`).
pub const MMIO: VirtRange = VirtRange {
    start: 0xffff_d000_0000_0000,
    end: 0xffff_d800_0000_0000,
};
/// Pages that tests map and unmap on their own.
pub const SCRATCH: VirtRange = VirtRange {
    start: 0xffff_d800_0000_0000,
    end: 0xffff_e000_0000_0000,
};
/// The sparse array of slab descriptors, one per page frame (`memory::kmalloc`).
pub const SLAB_META: VirtRange = VirtRange {
    start: 0xffff_e000_0000_0000,
    end: 0xffff_f000_0000_0000,
};
/// The kernel image: the top 2 GiB begin here, where code built with the kernel code model
/// reaches the kernel with 32-bit displacements.
pub const KERNEL_IMAGE: VirtRange = VirtRange {
    start: consts::KERNEL_BASE,
    end: 0xffff_ffff_a000_0000,
};
/// Owned mappings with permissions (`memory::vmap::KernelMapping`): loadable modules (Linux's
/// `MODULES_VADDR`..`MODULES_END`), and other code's pages that must go back when done.
pub const MODULES: VirtRange = VirtRange {
    start: 0xffff_ffff_a000_0000,
    end: 0xffff_ffff_ff00_0000,
};

/// The ranges in address order (for the checks below and for anyone who wants to list them).
pub const ALL: [(&str, VirtRange); 8] = [
    ("bootloader", BOOTLOADER_DYNAMIC),
    ("heap", HEAP),
    ("kernel stacks", KERNEL_STACKS),
    ("mmio", MMIO),
    ("scratch", SCRATCH),
    ("slab descriptors", SLAB_META),
    ("kernel image", KERNEL_IMAGE),
    ("modules", MODULES),
];

const _: () = {
    let mut i = 0;
    while i < ALL.len() {
        let r = ALL[i].1;
        assert!(r.start < r.end, "a range is not empty");
        assert!(r.start.is_multiple_of(PAGE_SIZE as u64) && r.end.is_multiple_of(PAGE_SIZE as u64));
        if i > 0 {
            assert!(ALL[i - 1].1.end <= r.start, "ranges are in order and apart");
        }
        i += 1;
    }
};
