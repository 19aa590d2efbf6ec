//! Step 3: the relocation tables, every entry's type, symbol index and offset checked.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::Rela as _;

use crate::elf::{ElfFile, Section, is_loaded};
use crate::error::{Error, ErrorKind, Location, Result};
use crate::symbols::{Place, SymbolTable};

type RawRela = elf::Rela64<LE>;

/// The relocation types the loader applies (x86_64 psABI names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelocType {
    /// `R_X86_64_NONE`: nothing to do.
    None,
    /// `R_X86_64_64`: `S + A`, 64 bits.
    Abs64,
    /// `R_X86_64_PC32`: `S + A - P`, signed 32 bits.
    Pc32,
    /// `R_X86_64_PLT32`: `L + A - P`; modules have no PLT, so as `PC32`.
    Plt32,
    /// `R_X86_64_32`: `S + A`, zero-extended 32 bits.
    Abs32,
    /// `R_X86_64_32S`: `S + A`, sign-extended 32 bits.
    Abs32S,
    /// `R_X86_64_PC64`: `S + A - P`, 64 bits.
    Pc64,
    /// `R_X86_64_GOTPCREL`: `G + GOT + A - P`, signed 32 bits, through the module's GOT.
    GotPcRel,
    /// `R_X86_64_GOTPCRELX`: as `GOTPCREL` (relaxation allowed, not done).
    GotPcRelX,
    /// `R_X86_64_REX_GOTPCRELX`: as `GOTPCREL` (relaxation allowed, not done).
    RexGotPcRelX,
}

impl RelocType {
    /// The type for an `r_type` the loader applies, or `None` for a type it refuses.
    pub fn from_raw(r: u32) -> Option<Self> {
        Some(match r {
            elf::R_X86_64_NONE => RelocType::None,
            elf::R_X86_64_64 => RelocType::Abs64,
            elf::R_X86_64_PC32 => RelocType::Pc32,
            elf::R_X86_64_PLT32 => RelocType::Plt32,
            elf::R_X86_64_32 => RelocType::Abs32,
            elf::R_X86_64_32S => RelocType::Abs32S,
            elf::R_X86_64_PC64 => RelocType::Pc64,
            elf::R_X86_64_GOTPCREL => RelocType::GotPcRel,
            elf::R_X86_64_GOTPCRELX => RelocType::GotPcRelX,
            elf::R_X86_64_REX_GOTPCRELX => RelocType::RexGotPcRelX,
            _ => return None,
        })
    }

    /// The psABI name (`"R_X86_64_PC32"`).
    pub fn name(self) -> &'static str {
        match self {
            RelocType::None => "R_X86_64_NONE",
            RelocType::Abs64 => "R_X86_64_64",
            RelocType::Pc32 => "R_X86_64_PC32",
            RelocType::Plt32 => "R_X86_64_PLT32",
            RelocType::Abs32 => "R_X86_64_32",
            RelocType::Abs32S => "R_X86_64_32S",
            RelocType::Pc64 => "R_X86_64_PC64",
            RelocType::GotPcRel => "R_X86_64_GOTPCREL",
            RelocType::GotPcRelX => "R_X86_64_GOTPCRELX",
            RelocType::RexGotPcRelX => "R_X86_64_REX_GOTPCRELX",
        }
    }

    /// Bytes the relocation writes.
    pub fn width(self) -> u64 {
        match self {
            RelocType::None => 0,
            RelocType::Abs64 | RelocType::Pc64 => 8,
            _ => 4,
        }
    }

    /// Whether the value goes through a GOT slot.
    pub fn uses_got(self) -> bool {
        matches!(
            self,
            RelocType::GotPcRel | RelocType::GotPcRelX | RelocType::RexGotPcRelX
        )
    }
}

/// The psABI name of a refused `r_type`, for the error message.
pub fn refused_name(r: u32) -> &'static str {
    const NAMES: [&str; 43] = [
        "R_X86_64_NONE",
        "R_X86_64_64",
        "R_X86_64_PC32",
        "R_X86_64_GOT32",
        "R_X86_64_PLT32",
        "R_X86_64_COPY",
        "R_X86_64_GLOB_DAT",
        "R_X86_64_JUMP_SLOT",
        "R_X86_64_RELATIVE",
        "R_X86_64_GOTPCREL",
        "R_X86_64_32",
        "R_X86_64_32S",
        "R_X86_64_16",
        "R_X86_64_PC16",
        "R_X86_64_8",
        "R_X86_64_PC8",
        "R_X86_64_DTPMOD64",
        "R_X86_64_DTPOFF64",
        "R_X86_64_TPOFF64",
        "R_X86_64_TLSGD",
        "R_X86_64_TLSLD",
        "R_X86_64_DTPOFF32",
        "R_X86_64_GOTTPOFF",
        "R_X86_64_TPOFF32",
        "R_X86_64_PC64",
        "R_X86_64_GOTOFF64",
        "R_X86_64_GOTPC32",
        "R_X86_64_GOT64",
        "R_X86_64_GOTPCREL64",
        "R_X86_64_GOTPC64",
        "R_X86_64_GOTPLT64",
        "R_X86_64_PLTOFF64",
        "R_X86_64_SIZE32",
        "R_X86_64_SIZE64",
        "R_X86_64_GOTPC32_TLSDESC",
        "R_X86_64_TLSDESC_CALL",
        "R_X86_64_TLSDESC",
        "R_X86_64_IRELATIVE",
        "R_X86_64_RELATIVE64",
        "(unused 39)",
        "(unused 40)",
        "R_X86_64_GOTPCRELX",
        "R_X86_64_REX_GOTPCRELX",
    ];
    NAMES.get(r as usize).copied().unwrap_or("an unknown type")
}

/// One checked relocation entry.
#[derive(Clone, Copy, Debug)]
pub struct Rela {
    /// Offset of the field in the target section (`offset + width <= size`).
    pub offset: u64,
    /// Symbol index (in range; not 0 unless the type is `NONE`).
    pub sym: usize,
    /// The type.
    pub rtype: RelocType,
    /// `r_addend`.
    pub addend: i64,
}

/// A checked relocation table and the section it patches.
#[derive(Clone, Debug)]
pub struct RelaSection {
    /// Index of the `SHT_RELA` section.
    pub index: usize,
    /// Index of the section it patches (`sh_info`).
    pub target: usize,
    /// The entries, in file order.
    pub entries: Vec<Rela>,
}

pub(crate) fn rel_loc(rs: &Section<'_>, index: usize) -> Location {
    Location::Relocation {
        section: rs.index,
        section_name: String::from(rs.name),
        index,
    }
}

/// Checks every relocation table whose target section is `SHF_ALLOC` (like Linux, tables for
/// debug sections are not applied, and so not read).
pub fn parse(file: &ElfFile<'_>, syms: &SymbolTable<'_>) -> Result<Vec<RelaSection>> {
    let mut out = Vec::new();
    for rs in file.sections.iter().filter(|s| s.sh_type == elf::SHT_RELA) {
        let target = &file.sections[rs.info as usize];
        if !target.is_alloc() {
            continue;
        }
        let raw: &[RawRela] = object::pod::slice_from_all_bytes(rs.data).map_err(|_| {
            Error::new(
                ErrorKind::BadSectionLink,
                rs.loc(),
                "not a whole number of relocations",
            )
        })?;
        let mut entries = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            entries.push(check_rela(file, syms, rs, target, i, r)?);
        }
        out.push(RelaSection {
            index: rs.index,
            target: target.index,
            entries,
        });
    }
    Ok(out)
}

fn check_rela(
    file: &ElfFile<'_>,
    syms: &SymbolTable<'_>,
    rs: &Section<'_>,
    target: &Section<'_>,
    i: usize,
    r: &RawRela,
) -> Result<Rela> {
    let e = LE;
    let fail = |k: ErrorKind, m: String| Err(Error::new(k, rel_loc(rs, i), m));
    let (raw_type, sym) = (r.r_type(e, false), r.r_sym(e, false) as usize);
    let Some(rtype) = RelocType::from_raw(raw_type) else {
        return fail(
            ErrorKind::UnknownRelocation,
            format!(
                "type {raw_type} ({}) is not one the module loader applies",
                refused_name(raw_type)
            ),
        );
    };
    if sym >= syms.symbols.len() {
        return fail(
            ErrorKind::BadSymbolIndex,
            format!(
                "symbol index {sym} is past the symbol table ({} symbols)",
                syms.symbols.len()
            ),
        );
    }
    if sym == 0 && rtype != RelocType::None {
        return fail(
            ErrorKind::BadSymbolIndex,
            format!("{} against the null symbol", rtype.name()),
        );
    }
    let offset = r.r_offset(e);
    if offset
        .checked_add(rtype.width())
        .is_none_or(|end| end > target.size)
    {
        return fail(
            ErrorKind::RelocationOutOfBounds,
            format!(
                "{} at offset {offset:#x} ({} bytes) lies outside section {} `{}` ({:#x} bytes)",
                rtype.name(),
                rtype.width(),
                target.index,
                target.name,
                target.size
            ),
        );
    }
    if target.is_nobits() && rtype != RelocType::None {
        return fail(
            ErrorKind::BadRelocation,
            format!("relocation into `{}`, which has no file bytes", target.name),
        );
    }
    let s = syms.get(sym);
    if let Place::Section(si) = s.place
        && rtype != RelocType::None
        && !is_loaded(&file.sections[si])
    {
        return fail(
            ErrorKind::SymbolNotLoaded,
            format!(
                "symbol {sym} `{}` is in section {si} `{}`, which is not loaded",
                s.name, file.sections[si].name
            ),
        );
    }
    Ok(Rela {
        offset,
        sym,
        rtype,
        addend: r.r_addend(e),
    })
}
