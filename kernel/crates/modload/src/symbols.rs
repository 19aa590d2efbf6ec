//! Step 2: the symbol table, every symbol's name, binding, type and section checked.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::Sym as _;

use crate::elf::{ElfFile, SYM_SIZE, string_at};
use crate::error::{Error, ErrorKind, Location, Result};

type RawSym = elf::Sym64<LE>;

/// Where a symbol's value is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// `SHN_UNDEF`: to be resolved against the kernel's and other modules' exports.
    Undefined,
    /// `SHN_ABS`: the value is an absolute number.
    Absolute,
    /// Defined at `value` bytes into this section.
    Section(usize),
}

/// A checked symbol.
#[derive(Clone, Debug)]
pub struct Symbol<'a> {
    /// The name (empty for section and some local symbols).
    pub name: &'a str,
    /// `st_value`: the offset in its section (or the absolute value).
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// `STT_*` from `st_info`.
    pub kind: u8,
    /// `STB_*` from `st_info`.
    pub bind: u8,
    /// `st_shndx`, decoded.
    pub place: Place,
}

impl Symbol<'_> {
    /// Whether the symbol is visible to other objects (`STB_GLOBAL` or `STB_WEAK`).
    pub fn is_global(&self) -> bool {
        self.bind != elf::STB_LOCAL
    }
}

/// The checked symbol table, and an index of its defined global names.
#[derive(Debug)]
pub struct SymbolTable<'a> {
    /// All symbols, index 0 (the null symbol) included.
    pub symbols: Vec<Symbol<'a>>,
    /// Defined global symbols by name.
    pub globals: BTreeMap<&'a str, usize>,
}

fn sym_err(kind: ErrorKind, index: usize, name: &str, msg: impl Into<String>) -> Error {
    Error::new(
        kind,
        Location::Symbol {
            index,
            name: name.into(),
        },
        msg,
    )
}

impl<'a> SymbolTable<'a> {
    /// Reads and checks every symbol of `file`'s symbol table.
    pub fn parse(file: &ElfFile<'a>) -> Result<Self> {
        let st = &file.sections[file.symtab];
        let strtab = file.sections[st.link as usize].data;
        if strtab.first() != Some(&0) || strtab.last() != Some(&0) {
            return Err(Error::new(
                ErrorKind::BadStringTable,
                file.sections[st.link as usize].loc(),
                "the symbol string table does not begin and end with a NUL",
            ));
        }
        let raw: &[RawSym] = object::pod::slice_from_all_bytes(st.data).map_err(|_| {
            Error::new(
                ErrorKind::BadSymbolTable,
                st.loc(),
                "the symbol table is not a whole number of symbols",
            )
        })?;
        let first_global = st.info as usize;
        if first_global == 0 || first_global > raw.len() {
            return Err(Error::new(
                ErrorKind::BadSymbolTable,
                st.loc(),
                format!(
                    "sh_info {first_global}: the first non-local symbol is not in 1..={}",
                    raw.len()
                ),
            ));
        }
        debug_assert_eq!(st.size / SYM_SIZE, raw.len() as u64);
        let mut symbols = Vec::with_capacity(raw.len());
        let mut globals = BTreeMap::new();
        for (index, s) in raw.iter().enumerate() {
            let sym = check_symbol(file, strtab, index, s, index < first_global)?;
            if sym.is_global()
                && sym.place != Place::Undefined
                && let Some(prev) = globals.insert(sym.name, index)
            {
                return Err(sym_err(
                    ErrorKind::BadSymbol,
                    index,
                    sym.name,
                    format!("defined a second time (first as symbol {prev})"),
                ));
            }
            symbols.push(sym);
        }
        Ok(SymbolTable { symbols, globals })
    }

    /// The symbol at `index` (checked by the caller to be in range).
    pub fn get(&self, index: usize) -> &Symbol<'a> {
        &self.symbols[index]
    }
}

fn check_symbol<'a>(
    file: &ElfFile<'a>,
    strtab: &'a [u8],
    index: usize,
    s: &RawSym,
    local_part: bool,
) -> Result<Symbol<'a>> {
    let e = LE;
    let name = string_at(strtab, s.st_name(e)).ok_or_else(|| {
        sym_err(
            ErrorKind::BadStringIndex,
            index,
            "",
            format!(
                "st_name {} is not a UTF-8 string inside the symbol string table",
                s.st_name(e)
            ),
        )
    })?;
    let fail = |k: ErrorKind, m: String| Err(sym_err(k, index, name, m));
    let (bind, kind, shndx) = (s.st_bind(), s.st_type(), s.st_shndx(e));
    if index == 0 {
        if s.st_name(e) != 0
            || s.st_info() != 0
            || s.st_other() != 0
            || shndx != 0
            || s.st_value(e) != 0
            || s.st_size(e) != 0
        {
            return fail(
                ErrorKind::BadSymbol,
                "symbol 0 is not the all-zero null symbol".into(),
            );
        }
        return Ok(Symbol {
            name,
            value: 0,
            size: 0,
            kind,
            bind,
            place: Place::Undefined,
        });
    }
    if !matches!(bind, elf::STB_LOCAL | elf::STB_GLOBAL | elf::STB_WEAK) {
        return fail(
            ErrorKind::BadSymbol,
            format!("binding {bind} is not LOCAL, GLOBAL or WEAK"),
        );
    }
    if local_part != (bind == elf::STB_LOCAL) {
        return fail(
            ErrorKind::BadSymbol,
            format!("binding {bind} on the wrong side of the symbol table's first non-local index"),
        );
    }
    if !matches!(
        kind,
        elf::STT_NOTYPE | elf::STT_OBJECT | elf::STT_FUNC | elf::STT_SECTION | elf::STT_FILE
    ) {
        return fail(
            ErrorKind::BadSymbol,
            format!("type {kind} (TLS, IFUNC and common symbols are not supported)"),
        );
    }
    if s.st_other() & !3 != 0 {
        return fail(
            ErrorKind::BadSymbol,
            format!(
                "st_other {:#x} has bits besides the visibility",
                s.st_other()
            ),
        );
    }
    let (value, size) = (s.st_value(e), s.st_size(e));
    let place = match shndx {
        elf::SHN_UNDEF => {
            if bind == elf::STB_LOCAL || name.is_empty() {
                return fail(
                    ErrorKind::BadSymbol,
                    "an undefined symbol must be global and named".into(),
                );
            }
            Place::Undefined
        }
        elf::SHN_ABS => Place::Absolute,
        elf::SHN_COMMON => {
            return fail(
                ErrorKind::BadSymbolSection,
                "a common symbol: compile with -fno-common".into(),
            );
        }
        elf::SHN_XINDEX => {
            return fail(
                ErrorKind::BadSymbolSection,
                "extended section indices are not supported".into(),
            );
        }
        i if i >= elf::SHN_LORESERVE || usize::from(i) >= file.sections.len() => {
            return fail(
                ErrorKind::BadSymbolSection,
                format!("section index {i:#x} is not a section"),
            );
        }
        i => {
            let sec = &file.sections[usize::from(i)];
            if sec.sh_type == elf::SHT_NULL {
                return fail(
                    ErrorKind::BadSymbolSection,
                    format!("section {i} is a null section"),
                );
            }
            if value.checked_add(size).is_none_or(|end| end > sec.size) {
                return fail(
                    ErrorKind::BadSymbol,
                    format!(
                        "value {value:#x} + size {size:#x} lies outside section {i} `{}` ({:#x} bytes)",
                        sec.name, sec.size
                    ),
                );
            }
            Place::Section(usize::from(i))
        }
    };
    Ok(Symbol {
        name,
        value,
        size,
        kind,
        bind,
        place,
    })
}
