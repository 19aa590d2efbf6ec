//! The kernel's `extern "C"` surface for loadable modules: every function a module can call,
//! and the export table the loader links modules against ([`SYMBOLS`], Linux's `__ksymtab`).
//!
//! Each function is a thin `#[unsafe(no_mangle)] extern "C"` wrapper over the safe APIs of
//! the services and the core, with the C types of `include/sheaf/module.h`, which declares
//! exactly these functions (a test compares the two lists). A file per API (`print.rs`,
//! `slab.rs`, `module.rs`), each with its part of the table; keeping the whole surface in this
//! one directory of the top layer means the ABI can be read, reviewed and versioned in one
//! place, and that neither the core nor the services take a C shape by accident.
//!
//! The functions are `unsafe extern "C"`: their callers are C (or Rust through `kmod`), and
//! each states what it needs of its pointers. Bad pointers that can be told apart cheaply are
//! refused with a message rather than trusted: `kfree` and `kmem_cache_free` of something that
//! is not an object (the slab allocator checks the page owner), every `kmem_cache_*` function
//! given something that is not a cache (looked up on the cache list; see `slab.rs`),
//! `try_module_get`/`module_put` of something that is not a module.

use kcore::module::KernelSymbol;

/// An entry of [`SYMBOLS`] for a function or static of these files (Linux's
/// `EXPORT_SYMBOL`).
macro_rules! export_symbol {
    ($name:ident) => {
        kcore::module::KernelSymbol {
            name: stringify!($name),
            address: kcore::module::SymbolAddress($name as *const ()),
            gpl_only: false,
        }
    };
}

/// An entry of [`SYMBOLS`], for modules with a GPL-compatible license only (Linux's
/// `EXPORT_SYMBOL_GPL`).
#[allow(unused_macros)]
macro_rules! export_symbol_gpl {
    ($name:ident) => {
        kcore::module::KernelSymbol {
            name: stringify!($name),
            address: kcore::module::SymbolAddress($name as *const ()),
            gpl_only: true,
        }
    };
}

mod freeq;
mod misc;
mod module;
mod print;
mod rcu;
mod slab;
mod static_cache;
mod workqueue;

/// The kernel's export table, one part per file, registered with the loader at boot.
pub static SYMBOLS: [&[KernelSymbol]; 8] = [
    &print::SYMBOLS,
    &slab::SYMBOLS,
    &static_cache::SYMBOLS,
    &module::SYMBOLS,
    &rcu::SYMBOLS,
    &workqueue::SYMBOLS,
    &freeq::SYMBOLS,
    &misc::SYMBOLS,
];

/// The size and alignment of each structure a C module embeds, in the kernel ELF, where the
/// host reads them to write `include/generated/module_abi.h` (`cargo run -- --gen-headers`;
/// `boot/src/headers.rs`): `struct rcu_head`, `struct work_struct`, `struct delayed_work`,
/// `struct kmem_free_q_head`, each `[size, align]`.
#[unsafe(no_mangle)]
#[used]
pub static SHEAF_MODULE_ABI_LAYOUT: [u64; 8] = {
    use core::mem::{align_of, size_of};
    [
        size_of::<rcu::CRcuHead>() as u64,
        align_of::<rcu::CRcuHead>() as u64,
        size_of::<workqueue::CWork>() as u64,
        align_of::<workqueue::CWork>() as u64,
        size_of::<workqueue::CDelayedWork>() as u64,
        align_of::<workqueue::CDelayedWork>() as u64,
        size_of::<freeq::CFreeQHead>() as u64,
        align_of::<freeq::CFreeQHead>() as u64,
    ]
};

/// Registers [`SYMBOLS`] with the loader, and sets the console log level from the command
/// line as Linux does (`loglevel=N`, `debug` for 10, `quiet` for 4).
pub fn init() {
    kcore::module::set_kernel_symbols(&SYMBOLS);
    let level = match (
        kernel::cmdline::get("loglevel"),
        kernel::cmdline::get("debug"),
        kernel::cmdline::get("quiet"),
    ) {
        (Some(n), _, _) => n.parse().ok(),
        (None, Some(_), _) => Some(10),
        (None, None, Some(_)) => Some(4),
        _ => None,
    };
    match level {
        Some(l) => {
            kcore::console::set_loglevel(l);
        }
        None if kernel::cmdline::get("loglevel").is_some() => {
            log::warn!("loglevel: not a number: ignored");
        }
        None => {}
    }
}
