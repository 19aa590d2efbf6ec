//! The Sheaf kernel's services, in safe Rust over the core.
//!
//! Sheaf is a small x86_64 kernel built to learn, test and measure a modern slab allocator. The
//! kernel is three layers (docs/README.md draws them):
//! - [`kcore`] (`kernel/core`): the only kernel crate with `unsafe`: CPUs, interrupts, memory,
//!   threads, locks, RCU, workqueues, the console, behind a safe API;
//! - this crate: the services built on that API: sleeping ([`time`]), the scheduling policy
//!   ([`sched_policy`]), the initramfs and command line, kmalloc's boot options ([`kmalloc`]),
//!   the shell, and the on-target tests that need services (`selftest`, in the kernel
//!   `cargo test` builds). `unsafe_code` is forbidden here, so the compiler checks that every
//!   service is safe code;
//! - `kernel/entry`: the binary: the entry point the bootloader jumps to (and, to come, the
//!   `extern "C"` surface for loadable modules).
//!
//! The core's modules that services use by name are re-exported here (`crate::sched`,
//! `crate::cpu`, ...), so a service reads the same whichever layer a name comes from. Logic that
//! needs no hardware lives in `no_std` crates under `kernel/crates/` that also build and test on
//! the host.
//!
//! Start-up order (see [`init`]): the core's part ([`kcore::init`]: per-CPU area → console →
//! CPU tables (GDT, TSS, IDT) → memory (bootstrap frames, page tables, bootstrap heap) → TSC
//! clock → scheduler → ACPI → buddy page allocator (per NUMA node)) → initramfs and command
//! line → slab allocator (kmalloc becomes the global allocator) → the services' hooks →
//! [`kcore::start_cpus`] (RCU → local/I-O APICs and the timer tick → serial input interrupt →
//! the other CPUs → RCU's callback threads → workqueues). After that the entry point starts a
//! thread that runs the on-target tests the command line asks for, or the shell, and the boot
//! context becomes CPU 0's idle thread.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cmdline;
pub mod initramfs;
pub mod kmalloc;
pub mod sched_policy;
#[cfg(feature = "ktest")]
mod selftest;
pub mod shell;
pub mod time;

pub use kcore::sync::rcu;
pub use kcore::workqueue;
pub use kcore::{arch, boot, console, cpu, ktest, memory, print, println, sched, sync};

use bootloader_api::BootInfo;

/// Brings the kernel up, in the order the crate documentation gives, ending with every CPU
/// online.
///
/// Called once, first thing, by the entry point with the boot information.
pub fn init(boot_info: &'static mut BootInfo) {
    kcore::init(boot_info);
    initramfs::init();
    if let Some(table) = initramfs::file("boot/kallsyms") {
        match kcore::backtrace::set_kernel_symbols(table) {
            Some(count) => log::info!("kallsyms: {count} kernel symbols for backtraces"),
            None => {
                log::warn!("kallsyms: boot/kallsyms is not a symbol table; traces show addresses")
            }
        }
    }
    cmdline::init();
    kmalloc::init();
    sched_policy::init();
    kcore::time::TICK_HOOK.set(tick);
    let online = kcore::start_cpus();
    log::info!("{online} CPU(s) online");
    log::info!(
        "boot complete: {} firmware, {} MiB usable, initramfs {} bytes",
        boot::firmware(),
        memory::page_alloc::stats().total * memory::PAGE_SIZE as u64 / (1024 * 1024),
        initramfs::bytes().len()
    );
}

/// The services' share of every timer tick, on every CPU (interrupt context): the sleepers,
/// so a thread woken now can be scheduled at this very tick (the core's tick then does the
/// workqueues' timers, RCU's share and the scheduler's).
fn tick() {
    time::tick();
}

/// Runs what the command line asks for in a thread of its own: the on-target tests
/// (`ktest=...`) or the shell. Called by the entry point once [`init`] is done.
pub fn start_main_thread() {
    let main = match cmdline::get("ktest") {
        Some(request) => sched::spawn("ktest", move || {
            ktest::run_request(request, cmdline::get("ktest.only").unwrap_or(""))
        }),
        None => sched::spawn("shell", shell::run),
    };
    main.expect("memory for the first thread");
}
