//! The Sheaf kernel's core: the one kernel crate that may use `unsafe`.
//!
//! Sheaf follows the rule of Asterinas' OSTD: everything that touches the hardware or raw memory
//! lives here, behind a small safe API, and the kernel's services (the `kernel` crate: RCU,
//! timers, the shell, the initramfs, the command line, kmalloc's set-up, the tests) are written
//! in safe Rust on top of it, with `unsafe_code` forbidden by the compiler. A service that needs
//! `unsafe` gets a small safe API here instead.
//!
//! ```text
//!   kernel/entry  entry point; the extern "C" surface for modules (to come)     unsafe allowed
//!        │
//!   kernel        services: rcu, timer, shell, initramfs, cmdline, slab set-up  unsafe forbidden
//!        │
//!   kcore         this crate: arch, cpu, sched, sync, memory, time, console     unsafe allowed
//!        │
//!   crates/*      no_std logic tested on the host: slab, buddy, rcu, cpio
//! ```
//!
//! Imports run one way, down. Where the core must call up into a service (the timer tick's
//! timers, the workqueues' hooks, the slab allocator's work item), the service registers a
//! function with the core at start-up ([`Hook`]): the core never names a service. RCU's
//! grace-period machine is the core's own ([`sync::rcu`]): running a callback is what frees an
//! object's memory, so only trusted code may decide a grace period has passed.
//!
//! Modules, in the order a reader can take them:
//! - [`memory::layout`]: the virtual-address map and the page size (one owner of each);
//! - [`cpu`]: per-CPU data through `GS`, preemption counting, CPU numbers;
//! - [`sync`]: spin locks, sleeping locks, wait queues, completions, RCU's read side;
//! - [`arch`]: GDT/TSS, IDT and exception handlers, APICs, ACPI tables, SMP start-up, IPIs;
//! - [`sched`]: kernel threads, run queues and the context switch;
//! - [`memory`]: the frame and page allocator, page tables, stacks, the bootstrap heap and the
//!   slab allocator's platform (kmalloc as the global allocator);
//! - [`time`], [`console`], [`boot`]: the clock and tick, the serial console, boot information;
//! - [`ktest`], [`panic`], [`selftest`]: the on-target test harness, the panic handler, and the
//!   core's self-tests that need raw memory (deliberate corruption, raw frees).
#![no_std]
#![feature(abi_x86_interrupt)]
// `Box::try_new` and `Arc::try_new`: spawning a thread fails cleanly when memory is out; and
// `Allocator` with `Arc::new_in`: kernel objects from their static caches
// (`memory::cache_alloc`).
#![feature(allocator_ext)]

extern crate alloc;

pub mod arch;
pub mod boot;
pub mod console;
pub mod cpu;
pub mod kobject;
pub mod ktest;
pub mod memory;
pub mod panic;
pub mod sched;
pub mod selftest;
pub mod sync;
pub mod time;
pub mod workqueue;

mod hook;

pub use hook::Hook;
pub use ktest_macros::ktest;

use bootloader_api::BootInfo;

/// Brings up what the services stand on, on the boot CPU: per-CPU area → console → CPU tables
/// (GDT, TSS, IDT) → memory (bootstrap frames, page tables, bootstrap heap) → TSC clock →
/// scheduler → ACPI → buddy page allocator (per NUMA node). Interrupts stay off.
///
/// Called once, first thing, by the services' `init`; the slab allocator
/// ([`memory::kmalloc::init`]) and [`start_cpus`] follow.
pub fn init(boot_info: &'static mut BootInfo) {
    time::mark_boot();
    cpu::init_boot_cpu();
    console::init();
    log::info!("Sheaf {} booting", env!("CARGO_PKG_VERSION"));
    arch::init();
    boot::init(boot_info);
    memory::init(boot::info());
    time::init();
    sched::init_cpu();
    arch::acpi::init();
    memory::page_alloc::init_buddy(|addr| arch::acpi::platform().node_of_addr(addr) as usize);
}

/// Starts the machine running: RCU's grace-period machine, the boot CPU's local APIC and timer
/// tick, the console's input interrupt, interrupts on, then every other CPU, then one RCU
/// callback thread per CPU and the workqueues (their manager thread, the system queues). Returns how many CPUs are online. Called once by the services'
/// `init`, after the slab allocator is up and the services registered their tick hook (the
/// tick calls it at once).
pub fn start_cpus() -> usize {
    sync::rcu::init();
    arch::apic::init_bsp();
    cpu::set_online();
    sync::rcu::cpu_online(cpu::current_id());
    console::enable_input_interrupt();
    x86_64::instructions::interrupts::enable();
    let online = arch::smp::start_aps();
    sync::rcu::start_callback_threads();
    workqueue::init();
    online
}
