//! The Sheaf kernel's core: the one kernel crate that may use `unsafe`.
//!
//! Sheaf follows the rule of Asterinas' OSTD: everything that touches the hardware or raw memory
//! lives here, behind a small safe API, and the kernel's services (the `kernel` crate: sleeping,
//! the scheduling policy, the shell, the initramfs, the command line, kmalloc's set-up, the
//! tests) are written in safe Rust on top of it, with `unsafe_code` forbidden by the compiler.
//! A service that needs `unsafe` gets a small safe API here instead, and `docs/safety.md`
//! argues, for every public safe function here that wraps `unsafe`, why no safe caller can break
//! memory through it.
//!
//! ```text
//!   kernel/entry  entry point; the extern "C" surface for modules (to come)     unsafe allowed
//!        │
//!   kernel        services: sleeping, sched policy, shell, initramfs, cmdline,  unsafe forbidden
//!        │        slab options
//!   kcore         this crate, in layers (below)                                 unsafe allowed
//!        │
//!   crates/*      no_std logic tested on the host: slab, buddy, rcu, workqueue, kobject, cpio,
//!                 consts
//! ```
//!
//! Imports run one way, down. Where the core must call up into a service it calls what the
//! service registered at start-up, for policy only ([`Hook`]: the services' tick;
//! [`sched::set_policy`]): the core never names a service. Inside the core, imports run down
//! its layers (checked by `tests/house_rules.rs`, drawn in `docs/README.md`), bottom first:
//!
//! 1. base: [`memory::layout`] (the address map), [`boot`], [`time`] (the clock),
//!    `arch::{vectors, trampoline}`;
//! 2. CPUs and spin locks: [`cpu`] (per-CPU data through `GS`, preemption counting), `sync::spin`;
//! 3. hardware and memory: `arch::{acpi, apic, gdt, ipi}`, [`memory`]'s frames, page tables,
//!    stacks, bootstrap heap and owned mappings ([`memory::vmap`]);
//! 4. tasks and the slab allocator: [`sched`], [`sync`]'s sleeping locks and RCU
//!    ([`sync::rcu`], grace periods included: running a callback is what frees an object's
//!    memory, so only trusted code may decide a grace period has passed), [`workqueue`], the
//!    slab allocator's platform ([`memory::kmalloc`]), [`kobject`], [`console`];
//! 5. modules: [`module`], the loader's kernel side (module memory in owned mappings,
//!    symbols, refcounts, `/sys/module`; `docs/modules.md`);
//! 6. top: start-up ([`init`], [`start_cpus`]), `arch::{interrupts, smp}` (every interrupt and
//!    exception handler, the tick, AP bring-up), [`panic`], [`ktest`], [`selftest`] (the core's
//!    benchmarks, and with the `ktest` feature its self-tests that need raw memory).
#![no_std]
#![feature(abi_x86_interrupt)]
// `Box::try_new` and `Arc::try_new`: spawning a thread fails cleanly when memory is out; and
// `Allocator` with `Arc::new_in`: kernel objects from their static caches
// (`memory::cache_alloc`).
#![feature(allocator_ext)]

extern crate alloc;

pub mod arch;
pub mod backtrace;
pub mod boot;
pub mod console;
pub mod cpu;
pub mod kobject;
pub mod ktest;
pub mod memory;
pub mod module;
pub mod panic;
pub mod rand;
pub mod sched;
#[cfg(feature = "ktest")]
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
    backtrace::MODULE_LOOKUP.set(module::symbolize);
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
