//! Step 5: resolving undefined symbols (Linux's `simplify_symbols`/`resolve_symbol`).
//!
//! The kernel implements [`SymbolSource`] over its own export table and the exports of the
//! modules already loaded. The loader asks it for every undefined symbol, refuses GPL-only
//! symbols to a module whose license is not GPL-compatible, and records which modules
//! provided symbols (the new module's dependencies: it becomes their holder).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use object::elf;

use crate::error::{Error, ErrorKind, Location, Result};
use crate::exports::ModuleExport;
use crate::symbols::{Place, SymbolTable};

/// The symbol modules use for their own `struct module` (`THIS_MODULE` is `&__this_module`):
/// resolved to the address the kernel gives [`crate::Module::resolve`], never looked up.
pub const THIS_MODULE: &str = "__this_module";

/// An exported symbol, as the kernel's symbol table answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported<O> {
    /// Its address.
    pub address: u64,
    /// Exported GPL-only (`EXPORT_SYMBOL_GPL`).
    pub gpl_only: bool,
    /// The module that exports it, or `None` for the kernel itself.
    pub owner: Option<O>,
}

/// The exports a module can link against: the kernel's, then loaded modules' (implemented by
/// the kernel; tests use a map).
pub trait SymbolSource {
    /// How the kernel names a loaded module (an id, a handle).
    type Owner: Clone + PartialEq;
    /// The export called `name`, if any.
    fn lookup(&self, name: &str) -> Option<Exported<Self::Owner>>;
}

/// The outcome of resolution: an address for every undefined symbol, and the dependencies.
#[derive(Clone, Debug)]
pub struct Resolved<O> {
    /// For each symbol index: the address an undefined symbol resolved to (0 for a weak
    /// symbol nobody exports, as Linux; 0 for defined symbols, whose address is in the layout).
    pub addresses: Vec<u64>,
    /// The modules whose exports the new module uses, each once, in first-use order.
    pub uses: Vec<O>,
    /// Whether loading taints the kernel with `P` (proprietary: not GPL-compatible).
    pub taints_proprietary: bool,
}

/// Resolves every undefined symbol, and checks the module's exports against what is already
/// exported (a name can be exported once).
pub fn resolve<S: SymbolSource>(
    syms: &SymbolTable<'_>,
    exports: &[ModuleExport<'_>],
    source: &S,
    gpl_compatible: bool,
    license: Option<&str>,
    this_module: u64,
) -> Result<Resolved<S::Owner>> {
    for x in exports {
        if source.lookup(x.name).is_some() {
            return Err(Error::new(
                ErrorKind::DuplicateExport,
                Location::Symbol {
                    index: x.sym,
                    name: x.name.into(),
                },
                format!(
                    "`{}` is already exported by the kernel or a loaded module",
                    x.name
                ),
            ));
        }
    }
    let mut addresses = alloc::vec![0u64; syms.symbols.len()];
    let mut uses: Vec<S::Owner> = Vec::new();
    let mut missing: Vec<(usize, &str)> = Vec::new();
    for (i, s) in syms.symbols.iter().enumerate().skip(1) {
        if s.place != Place::Undefined {
            continue;
        }
        if s.name == THIS_MODULE {
            addresses[i] = this_module;
            continue;
        }
        // LAB(modules) BEGIN
        // LAB-HINT: ask `source` for the export called `s.name`; refuse a GPL-only one to a
        // LAB-HINT: module that is not GPL-compatible (ErrorKind::GplOnlySymbol, naming the symbol),
        // LAB-HINT: record its address in `addresses[i]` and its owner (once) in `uses`; a weak
        // LAB-HINT: symbol nobody exports is 0, any other unknown one goes to `missing`.
        // LAB-STUB: let _ = (source, gpl_compatible, elf::STB_WEAK);
        // LAB-STUB: let _ = license.map(String::from);
        // LAB-STUB: let _ = (&mut addresses, &mut uses, &mut missing);
        // LAB-STUB: return Err(Error::new(
        // LAB-STUB:     ErrorKind::UndefinedSymbol,
        // LAB-STUB:     Location::Symbol {
        // LAB-STUB:         index: i,
        // LAB-STUB:         name: s.name.into(),
        // LAB-STUB:     },
        // LAB-STUB:     format!("LAB: not implemented: resolving `{}` in resolve.rs", s.name),
        // LAB-STUB: ));
        match source.lookup(s.name) {
            Some(x) => {
                if x.gpl_only && !gpl_compatible {
                    return Err(Error::new(
                        ErrorKind::GplOnlySymbol,
                        Location::Symbol {
                            index: i,
                            name: s.name.into(),
                        },
                        format!(
                            "`{}` is exported GPL-only and the module's license {} is not GPL-compatible",
                            s.name,
                            license.map_or(String::from("(none)"), |l| format!("`{l}`"))
                        ),
                    ));
                }
                addresses[i] = x.address;
                if let Some(o) = x.owner
                    && !uses.contains(&o)
                {
                    uses.push(o);
                }
            }
            None if s.bind == elf::STB_WEAK => addresses[i] = 0,
            None => missing.push((i, s.name)),
        }
        // LAB(modules) END
    }
    if let Some(&(index, first)) = missing.first() {
        let names: Vec<&str> = missing.iter().map(|&(_, n)| n).collect();
        return Err(Error::new(
            ErrorKind::UndefinedSymbol,
            Location::Symbol {
                index,
                name: first.into(),
            },
            format!(
                "unknown symbol{} {}",
                if names.len() > 1 { "s" } else { "" },
                names.join(", ")
            ),
        ));
    }
    Ok(Resolved {
        addresses,
        uses,
        taints_proprietary: !gpl_compatible,
    })
}
