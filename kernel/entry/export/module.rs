//! Module references for modules: `try_module_get`, `module_put`.

use core::ffi::c_void;

use kcore::module::KernelSymbol;

/// This file's exports.
pub(super) static SYMBOLS: [KernelSymbol; 2] =
    [export_symbol!(try_module_get), export_symbol!(module_put)];

/// Takes a reference on `module` (Linux's `try_module_get`): false if it is going away.
#[unsafe(no_mangle)]
pub extern "C" fn try_module_get(module: *const c_void) -> bool {
    kcore::module::try_module_get(module as usize)
}

/// Drops a reference `try_module_get` took (Linux's `module_put`).
#[unsafe(no_mangle)]
pub extern "C" fn module_put(module: *const c_void) {
    kcore::module::module_put(module as usize)
}
