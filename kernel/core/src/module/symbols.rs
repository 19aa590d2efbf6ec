//! The symbols modules link against: the kernel's export table (`kernel/entry/export/`,
//! registered at boot with [`set_kernel_symbols`]) and the exports of live modules.

use modload::{Exported, SymbolSource};
use spin::Once;

use super::{Listed, ModPtr, State};

/// A symbol's address in the kernel image, as the export table holds it: a function's or a
/// static's, never dereferenced by the loader (only written into modules).
#[derive(Clone, Copy, Debug)]
pub struct SymbolAddress(pub *const ());

// SAFETY: an address that the kernel only copies into relocations, never reads through.
unsafe impl Sync for SymbolAddress {}
// SAFETY: as above.
unsafe impl Send for SymbolAddress {}

/// One entry of the kernel's export table (Linux's `struct kernel_symbol`, which
/// `EXPORT_SYMBOL` puts in `__ksymtab`).
#[derive(Clone, Copy, Debug)]
pub struct KernelSymbol {
    /// The name modules use.
    pub name: &'static str,
    /// Its address in the kernel image.
    pub address: SymbolAddress,
    /// Exported GPL-only (`EXPORT_SYMBOL_GPL`): refused to modules that are not GPL-compatible.
    pub gpl_only: bool,
}

static KERNEL_SYMBOLS: Once<&'static [&'static [KernelSymbol]]> = Once::new();

/// Registers the kernel's export table, in parts (once, at boot, by the entry point: the
/// table lives in the binary, above this layer, a part per file). Later calls are ignored.
pub fn set_kernel_symbols(parts: &'static [&'static [KernelSymbol]]) {
    KERNEL_SYMBOLS.call_once(|| parts);
}

/// The kernel's exports (none until [`set_kernel_symbols`]).
pub fn kernel_symbols() -> impl Iterator<Item = &'static KernelSymbol> {
    KERNEL_SYMBOLS
        .get()
        .copied()
        .unwrap_or(&[])
        .iter()
        .flat_map(|part| part.iter())
}

/// What a loading module links against: the kernel's table, then the live modules' exports
/// (a snapshot of the list, taken under its lock by the caller).
pub(super) struct Symbols<'l, 'g> {
    pub(super) list: &'l Listed<'g>,
}

impl SymbolSource for Symbols<'_, '_> {
    type Owner = ModPtr;

    fn lookup(&self, name: &str) -> Option<Exported<ModPtr>> {
        if let Some(k) = kernel_symbols().find(|k| k.name == name) {
            return Some(Exported {
                address: k.address.0 as u64,
                gpl_only: k.gpl_only,
                owner: None,
            });
        }
        self.list.modules().find_map(|(p, m)| {
            if m.state() != State::Live {
                return None;
            }
            m.exports.iter().find(|e| e.0 == name).map(|e| Exported {
                address: e.1,
                gpl_only: e.2,
                owner: Some(p),
            })
        })
    }
}

/// Whether `name` is exported by the kernel or a module on `modules` (coming modules
/// included: a name can be exported once).
pub(super) fn exported_anywhere(list: &Listed<'_>, name: &str) -> bool {
    kernel_symbols().any(|k| k.name == name)
        || list
            .modules()
            .any(|(_, m)| m.exports.iter().any(|e| e.0 == name))
}
