//! Sheaf's machine constants, each defined once, here.
//!
//! Every crate that needs one of these imports it from this crate: the kernel's core (its
//! address map, `kernel/core/src/memory/layout.rs`), the host-tested `no_std` crates (slab,
//! buddy, RCU, kobject), the kernel's build script (where it links the kernel) and the host
//! launcher (which loads the kernel's symbols for GDB). A crate that could do with a smaller
//! value than the kernel's (a test's own CPU count) still takes its capacity from here, so the
//! kernel and its crates cannot disagree.
#![no_std]
#![forbid(unsafe_code)]

/// Size of a page and of a page frame: 4 KiB.
pub const PAGE_SIZE: usize = 4096;

/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// The most CPUs Sheaf supports: the size of every per-CPU array (the core's CPU table, each
/// slab cache's per-CPU slots, RCU's per-CPU lists).
pub const MAX_CPUS: usize = 64;

/// Where the kernel image is linked and runs: the start of the top 2 GiB of the address space,
/// as Linux's `__START_KERNEL_map`, so that code built with the kernel code model
/// (`-mcmodel=kernel`, modules included) reaches it with 32-bit sign-extended addresses.
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

const _: () = assert!(PAGE_SIZE == 1 << PAGE_SHIFT);
