//! `rust_user`: a Rust module linked against the C `exporter` module (its GPL-only
//! `exporter_add` and its `exporter_calls` counter), so `exporter` cannot be unloaded while
//! this one is loaded. It also holds a reference on itself (`THIS_MODULE`) during init, and
//! exports `rust_user_answer` (GPL-only) with `export_symbol_gpl!`.

#![no_std]

use kmod::mem::ModuleRef;
use kmod::{Errno, pr_info};

unsafe extern "C" {
    /// `long exporter_add(long a, long b)`, exported GPL-only by `exporter`.
    fn exporter_add(a: i64, b: i64) -> i64;
    /// `long exporter_calls`, exported by `exporter`.
    static exporter_calls: i64;
}

kmod::module! {
    name: "rust_user",
    license: "Dual MIT/GPL",
    description: "Calls the exporter module from Rust",
    init: rust_user_init,
    exit: rust_user_exit,
}

kmod::modinfo!("depends", "exporter");

fn rust_user_init() -> Result<(), Errno> {
    let _me = ModuleRef::this_module().ok_or(Errno::ENODEV)?;
    // SAFETY: exporter_add is a plain function of two longs; the loader resolved it, and
    // `exporter` cannot go away while this module uses it.
    let sum = unsafe { exporter_add(40, 2) };
    // SAFETY: a long the exporter module owns; read once (a racy read of a counter is fine).
    let calls = unsafe { core::ptr::read_volatile(&raw const exporter_calls) };
    pr_info!("rust_user: exporter_add(40, 2) = {sum}, {calls} calls so far\n");
    Ok(())
}

/// Exported to modules loaded after this one (GPL-only: the license is GPL-compatible).
#[unsafe(no_mangle)]
pub extern "C" fn rust_user_answer() -> i64 {
    42
}
kmod::export_symbol_gpl!(rust_user_answer);

fn rust_user_exit() {
    pr_info!("rust_user: bye\n");
}
