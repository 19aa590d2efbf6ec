//! The Sheaf kernel.
//!
//! Sheaf is a small x86_64 kernel built to learn, test and measure a modern slab allocator. This
//! crate is the kernel proper: it boots through [`bootloader_api`], sets up the CPU and memory,
//! and offers a serial shell and an on-target test harness. Logic that needs no hardware lives in
//! `no_std` crates under `kernel/crates/` that also build and test on the host.
//!
//! Start-up order (see [`init`]): per-CPU area → console → CPU tables (GDT, TSS, IDT) → memory
//! (bootstrap frames, page tables, bootstrap heap) → TSC clock → initramfs and command line →
//! scheduler → ACPI → buddy page allocator (per NUMA node) → slab allocator (kmalloc becomes
//! the global allocator) → local/I-O APICs and the timer tick → serial input interrupt → the
//! other CPUs. After that `main.rs` starts a thread that runs the on-target tests the command
//! line asks for, or the shell, and the boot context becomes CPU 0's idle thread.
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

pub mod arch;
pub mod boot;
pub mod cmdline;
pub mod console;
pub mod cpu;
pub mod initramfs;
pub mod ktest;
pub mod memory;
pub mod panic;
pub mod rcu;
pub mod sched;
pub mod shell;
pub mod sync;
pub mod time;

pub use ktest_macros::ktest;

use bootloader_api::BootInfo;

/// Brings the kernel up, in the order the crate documentation gives, ending with every CPU
/// online.
///
/// Called once, first thing, by the entry point with the boot information.
pub fn init(boot_info: &'static mut BootInfo) {
    time::mark_boot();
    cpu::init_boot_cpu();
    console::init();
    log::info!("Sheaf {} booting", env!("CARGO_PKG_VERSION"));
    arch::init();
    boot::init(boot_info);
    memory::init(boot::info());
    time::init();
    initramfs::init(boot::info());
    cmdline::init();
    sched::init_cpu();
    arch::acpi::init();
    memory::page_alloc::init_buddy(|addr| arch::acpi::platform().node_of_addr(addr) as usize);
    memory::kmalloc::init();
    rcu::init();
    arch::apic::init_bsp();
    cpu::this_cpu()
        .online
        .store(true, core::sync::atomic::Ordering::Release);
    rcu::cpu_online(cpu::current_id());
    console::enable_input_interrupt();
    x86_64::instructions::interrupts::enable();
    let online = arch::smp::start_aps();
    log::info!("{online} CPU(s) online");
    rcu::start_callback_threads();
    log::info!(
        "boot complete: {} firmware, {} MiB usable, initramfs {} bytes",
        boot::firmware(),
        memory::page_alloc::stats().total * 4096 / (1024 * 1024),
        initramfs::bytes().len()
    );
}
