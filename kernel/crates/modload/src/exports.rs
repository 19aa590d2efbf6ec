//! The module's own export table, for modules loaded after it.
//!
//! Format (Sheaf's, simpler than Linux's `__ksymtab` entries): the sections `.sheaf.exports`
//! and `.sheaf.exports_gpl` hold NUL-terminated symbol names, one per `EXPORT_SYMBOL` /
//! `EXPORT_SYMBOL_GPL` (or `export_symbol!`/`export_symbol_gpl!`), byte-aligned, runs of NULs
//! skipped. Each name must be a global symbol the module defines in a loaded section; its
//! address comes from the module's own symbol table, so the table needs no relocations. The
//! loader does not load these sections.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::elf::{EXPORTS, EXPORTS_GPL, ElfFile, is_loaded};
use crate::error::{Error, ErrorKind, Result};
use crate::symbols::{Place, SymbolTable};

/// One symbol the module exports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleExport<'a> {
    /// The symbol's name.
    pub name: &'a str,
    /// Its index in the module's symbol table.
    pub sym: usize,
    /// Exported with `EXPORT_SYMBOL_GPL`: only GPL-compatible modules may use it.
    pub gpl_only: bool,
}

/// Reads both export sections.
pub fn parse<'a>(file: &ElfFile<'a>, syms: &SymbolTable<'a>) -> Result<Vec<ModuleExport<'a>>> {
    let mut out: Vec<ModuleExport<'a>> = Vec::new();
    let mut seen = BTreeSet::new();
    for s in file
        .sections
        .iter()
        .filter(|s| s.name == EXPORTS || s.name == EXPORTS_GPL)
    {
        let bad = |m: String| Err(Error::new(ErrorKind::BadExport, s.loc(), m));
        if s.is_nobits() || s.data.last().is_some_and(|&b| b != 0) {
            return bad("the table is not NUL-terminated names".into());
        }
        for raw in s.data.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let Ok(name) = core::str::from_utf8(raw) else {
                return bad("an exported name is not UTF-8".into());
            };
            let Some(&sym) = syms.globals.get(name) else {
                return bad(format!(
                    "`{name}` is exported but not a global symbol the module defines"
                ));
            };
            if let Place::Section(si) = syms.get(sym).place
                && !is_loaded(&file.sections[si])
            {
                return bad(format!("`{name}` is in section {si}, which is not loaded"));
            }
            if !seen.insert(name) {
                return Err(Error::new(
                    ErrorKind::DuplicateExport,
                    s.loc(),
                    format!("`{name}` is exported twice by the module"),
                ));
            }
            out.push(ModuleExport {
                name,
                sym,
                gpl_only: s.name == EXPORTS_GPL,
            });
        }
    }
    Ok(out)
}
