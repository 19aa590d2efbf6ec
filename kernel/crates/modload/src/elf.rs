//! Step 1: the ELF header and the section header table, every field checked before use.
//!
//! Reads with the `object` crate's raw ELF structures (no copying) and builds [`Section`]s
//! whose offsets, sizes, alignments, names and links are known good, so that nothing after this
//! file indexes the file with an unchecked number.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader as _};

use crate::error::{Error, ErrorKind, Location, Result};
use crate::{MAX_IMAGE_SIZE, PAGE_SIZE};

type Header = elf::FileHeader64<LE>;
type RawSection = elf::SectionHeader64<LE>;

/// Size of an ELF64 header, a section header, a symbol and a `Rela` entry.
pub(crate) const EHDR_SIZE: usize = 64;
const SHDR_SIZE: u64 = 64;
pub(crate) const SYM_SIZE: u64 = 24;
pub(crate) const RELA_SIZE: u64 = 24;

/// `SHT_LLVM_ADDRSIG`: the address-significance table rustc and clang emit (ignored).
const SHT_LLVM_ADDRSIG: u32 = 0x6fff_4c03;
/// `SHF_GNU_RETAIN` (`__attribute__((retain))`).
const SHF_GNU_RETAIN: u64 = 0x20_0000;
/// `SHF_X86_64_LARGE` (large code model data).
const SHF_X86_64_LARGE: u64 = 0x1000_0000;
const SHF_EXCLUDE: u64 = 0x8000_0000;
const KNOWN_FLAGS: u64 = (elf::SHF_WRITE
    | elf::SHF_ALLOC
    | elf::SHF_EXECINSTR
    | elf::SHF_MERGE
    | elf::SHF_STRINGS
    | elf::SHF_INFO_LINK
    | elf::SHF_LINK_ORDER
    | elf::SHF_OS_NONCONFORMING
    | elf::SHF_GROUP
    | elf::SHF_TLS
    | elf::SHF_COMPRESSED) as u64
    | SHF_GNU_RETAIN
    | SHF_X86_64_LARGE
    | SHF_EXCLUDE;

/// `.modinfo`: NUL-separated `key=value` strings (metadata, not loaded).
pub const MODINFO: &str = ".modinfo";
/// The module's exports: NUL-separated names of symbols it defines (metadata, not loaded).
pub const EXPORTS: &str = ".sheaf.exports";
/// The module's GPL-only exports, in the same format (metadata, not loaded).
pub const EXPORTS_GPL: &str = ".sheaf.exports_gpl";
/// The module's parameter descriptors (metadata, not loaded; see [`crate::params`]).
pub const PARAMS: &str = ".sheaf.params";

/// Whether a section takes memory in the loaded module: `SHF_ALLOC`, and not one of the
/// metadata sections the loader reads from the file (as Linux clears `SHF_ALLOC` on
/// `.modinfo`).
pub fn is_loaded(s: &Section<'_>) -> bool {
    s.is_alloc() && ![MODINFO, EXPORTS, EXPORTS_GPL, PARAMS].contains(&s.name)
}

/// A section header whose fields have been checked.
#[derive(Clone, Debug)]
pub struct Section<'a> {
    /// Index in the section header table.
    pub index: usize,
    /// Name from the section name string table.
    pub name: &'a str,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags` (only known bits).
    pub flags: u64,
    /// `sh_size`: bytes in memory (and in the file, except for `SHT_NOBITS`).
    pub size: u64,
    /// `sh_addralign`, at least 1 and at most a page.
    pub align: u64,
    /// `sh_link`.
    pub link: u32,
    /// `sh_info`.
    pub info: u32,
    /// Where `data` starts in the file (0 for `SHT_NOBITS`).
    pub file_offset: u64,
    /// The section's bytes in the file (empty for `SHT_NOBITS`).
    pub data: &'a [u8],
}

impl Section<'_> {
    /// `SHF_ALLOC`: occupies memory when loaded.
    pub fn is_alloc(&self) -> bool {
        self.flags & u64::from(elf::SHF_ALLOC) != 0
    }
    /// `SHF_WRITE`.
    pub fn is_write(&self) -> bool {
        self.flags & u64::from(elf::SHF_WRITE) != 0
    }
    /// `SHF_EXECINSTR`.
    pub fn is_exec(&self) -> bool {
        self.flags & u64::from(elf::SHF_EXECINSTR) != 0
    }
    /// `SHT_NOBITS` (`.bss`): memory without file contents.
    pub fn is_nobits(&self) -> bool {
        self.sh_type == elf::SHT_NOBITS
    }
    pub(crate) fn loc(&self) -> Location {
        Location::Section {
            index: self.index,
            name: self.name.into(),
        }
    }
}

/// The checked section table of a module file.
#[derive(Debug)]
pub struct ElfFile<'a> {
    /// All sections, index 0 (the null section) included.
    pub sections: Vec<Section<'a>>,
    /// Index of the one `SHT_SYMTAB` section.
    pub symtab: usize,
}

fn err(kind: ErrorKind, msg: impl Into<String>) -> Error {
    Error::new(kind, Location::File, msg)
}

fn sec_err(kind: ErrorKind, index: usize, name: &str, msg: impl Into<String>) -> Error {
    Error::new(
        kind,
        Location::Section {
            index,
            name: name.into(),
        },
        msg,
    )
}

/// The human name of an `e_type`.
fn type_name(t: u16) -> &'static str {
    match t {
        elf::ET_NONE => "ET_NONE",
        elf::ET_EXEC => "ET_EXEC (an executable)",
        elf::ET_DYN => "ET_DYN (a shared object)",
        elf::ET_CORE => "ET_CORE (a core dump)",
        _ => "unknown",
    }
}

/// Checks the ELF header (`elf_validity_check`'s first half, and the fields it leaves out).
fn check_header(data: &[u8]) -> Result<&Header> {
    if data.len() < EHDR_SIZE {
        return Err(err(
            ErrorKind::Truncated,
            format!(
                "the file is {} bytes, an ELF64 header alone is {EHDR_SIZE}",
                data.len()
            ),
        ));
    }
    // The identification bytes first: `object` refuses a header it does not support without
    // saying why, and each of these has its own kind.
    let ident = &data[..16];
    if ident[..4] != elf::ELFMAG {
        return Err(err(
            ErrorKind::BadMagic,
            format!("magic {:02x?}, not 7f 45 4c 46", &ident[..4]),
        ));
    }
    if ident[4] != elf::ELFCLASS64 {
        return Err(err(
            ErrorKind::BadClass,
            format!("EI_CLASS {}, not ELFCLASS64 (2)", ident[4]),
        ));
    }
    if ident[5] != elf::ELFDATA2LSB {
        return Err(err(
            ErrorKind::BadDataEncoding,
            format!("EI_DATA {}, not ELFDATA2LSB (1, little-endian)", ident[5]),
        ));
    }
    if ident[6] != elf::EV_CURRENT {
        return Err(err(
            ErrorKind::BadVersion,
            format!("EI_VERSION {}, not 1", ident[6]),
        ));
    }
    let h =
        Header::parse(data).map_err(|_| err(ErrorKind::Truncated, "cannot read the ELF header"))?;
    let id = h.e_ident();
    let e = LE;
    if id.version != elf::EV_CURRENT || h.e_version(e) != u32::from(elf::EV_CURRENT) {
        return Err(err(
            ErrorKind::BadVersion,
            format!(
                "EI_VERSION {} / e_version {}, not 1",
                id.version,
                h.e_version(e)
            ),
        ));
    }
    if !matches!(id.os_abi, elf::ELFOSABI_SYSV | elf::ELFOSABI_GNU) || id.abi_version != 0 {
        return Err(err(
            ErrorKind::BadOsAbi,
            format!(
                "EI_OSABI {} / EI_ABIVERSION {}, not System V or GNU, 0",
                id.os_abi, id.abi_version
            ),
        ));
    }
    if h.e_type(e) != elf::ET_REL {
        let t = h.e_type(e);
        return Err(err(
            ErrorKind::BadType,
            format!(
                "e_type {t} {}: a module is ET_REL (a relocatable object)",
                type_name(t)
            ),
        ));
    }
    if h.e_machine(e) != elf::EM_X86_64 {
        return Err(err(
            ErrorKind::BadMachine,
            format!("e_machine {}, not EM_X86_64 (62)", h.e_machine(e)),
        ));
    }
    let bad = |m: String| Err(err(ErrorKind::BadHeader, m));
    if usize::from(h.e_ehsize(e)) != EHDR_SIZE {
        return bad(format!("e_ehsize {}, not {EHDR_SIZE}", h.e_ehsize(e)));
    }
    if h.e_phoff(e) != 0 || h.e_phnum(e) != 0 {
        return bad(format!(
            "a relocatable object has no program headers (e_phoff {:#x}, e_phnum {})",
            h.e_phoff(e),
            h.e_phnum(e)
        ));
    }
    if h.e_entry(e) != 0 || h.e_flags(e) != 0 {
        return bad(format!(
            "e_entry {:#x} and e_flags {:#x} must be 0",
            h.e_entry(e),
            h.e_flags(e)
        ));
    }
    if u64::from(h.e_shentsize(e)) != SHDR_SIZE {
        return bad(format!("e_shentsize {}, not {SHDR_SIZE}", h.e_shentsize(e)));
    }
    let shnum = h.e_shnum(e);
    if shnum == 0 || u32::from(shnum) >= u32::from(elf::SHN_LORESERVE) {
        return bad(format!(
            "e_shnum {shnum}: between 1 and {:#x} sections (extended numbering is not supported)",
            elf::SHN_LORESERVE - 1
        ));
    }
    let shstrndx = h.e_shstrndx(e);
    if shstrndx == 0 || shstrndx >= shnum {
        return Err(err(
            ErrorKind::BadStringTable,
            format!("e_shstrndx {shstrndx}: no section name string table among {shnum} sections"),
        ));
    }
    Ok(h)
}

/// A string table's bytes, checked to begin and end with a NUL.
pub(crate) fn check_strtab<'a>(
    s: &RawSection,
    data: &'a [u8],
    index: usize,
    what: &str,
) -> Result<&'a [u8]> {
    let e = LE;
    let bad = |m: String| Err(sec_err(ErrorKind::BadStringTable, index, "", m));
    if s.sh_type(e) != elf::SHT_STRTAB {
        return bad(format!(
            "the {what} is section type {:#x}, not SHT_STRTAB",
            s.sh_type(e)
        ));
    }
    let bytes = s.data(e, data).map_err(|_| {
        sec_err(
            ErrorKind::SectionOutOfBounds,
            index,
            "",
            format!("the {what} lies past the end of the file"),
        )
    })?;
    if bytes.first() != Some(&0) || bytes.last() != Some(&0) {
        return bad(format!("the {what} does not begin and end with a NUL"));
    }
    Ok(bytes)
}

/// Reads the string at `offset` of a checked string table.
pub(crate) fn string_at(table: &[u8], offset: u32) -> Option<&str> {
    let rest = table.get(usize::try_from(offset).ok()?..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&rest[..end]).ok()
}

/// Checks one section header's type, flags, alignment and extent.
fn check_section<'a>(
    data: &'a [u8],
    index: usize,
    name: &'a str,
    s: &RawSection,
) -> Result<Section<'a>> {
    let e = LE;
    let (sh_type, flags) = (s.sh_type(e), s.sh_flags(e));
    let fail = |k: ErrorKind, m: String| Err(sec_err(k, index, name, m));
    if flags & !KNOWN_FLAGS != 0 {
        return fail(
            ErrorKind::BadSectionFlags,
            format!("unknown flag bits {:#x}", flags & !KNOWN_FLAGS),
        );
    }
    let alloc = flags & u64::from(elf::SHF_ALLOC) != 0;
    if flags & u64::from(elf::SHF_WRITE) != 0 && flags & u64::from(elf::SHF_EXECINSTR) != 0 {
        return fail(
            ErrorKind::WritableAndExecutable,
            "the section is both writable and executable".into(),
        );
    }
    if alloc && flags & u64::from(elf::SHF_TLS) != 0 {
        return fail(
            ErrorKind::BadSectionFlags,
            "thread-local storage (SHF_TLS) is not supported".into(),
        );
    }
    if alloc && flags & u64::from(elf::SHF_COMPRESSED) != 0 {
        return fail(
            ErrorKind::BadSectionFlags,
            "a loaded section cannot be compressed".into(),
        );
    }
    match sh_type {
        elf::SHT_REL => {
            return fail(
                ErrorKind::BadSectionType,
                "SHT_REL relocations: x86_64 modules use SHT_RELA".into(),
            );
        }
        elf::SHT_DYNAMIC | elf::SHT_DYNSYM | elf::SHT_HASH | elf::SHT_GNU_HASH => {
            return fail(
                ErrorKind::BadSectionType,
                format!("dynamic-linking section type {sh_type:#x}"),
            );
        }
        elf::SHT_SYMTAB_SHNDX => {
            return fail(
                ErrorKind::BadSectionType,
                "extended section indices are not supported".into(),
            );
        }
        elf::SHT_INIT_ARRAY | elf::SHT_FINI_ARRAY | elf::SHT_PREINIT_ARRAY if alloc => {
            return fail(
                ErrorKind::BadSectionType,
                "constructors and destructors are not run: use init_module".into(),
            );
        }
        elf::SHT_RELA | elf::SHT_SYMTAB | elf::SHT_STRTAB if alloc => {
            return fail(
                ErrorKind::BadSectionFlags,
                "a symbol, string or relocation table cannot be SHF_ALLOC".into(),
            );
        }
        elf::SHT_PROGBITS | elf::SHT_NOBITS | elf::SHT_NOTE | elf::SHT_X86_64_UNWIND => {}
        elf::SHT_NULL if alloc => {
            return fail(
                ErrorKind::BadSectionType,
                "an inactive (SHT_NULL) section cannot be SHF_ALLOC".into(),
            );
        }
        elf::SHT_NULL | elf::SHT_RELA | elf::SHT_SYMTAB | elf::SHT_STRTAB => {}
        elf::SHT_GROUP | SHT_LLVM_ADDRSIG | elf::SHT_GNU_ATTRIBUTES if !alloc => {}
        _ if alloc => {
            return fail(
                ErrorKind::BadSectionType,
                format!("a loaded section of unknown type {sh_type:#x}"),
            );
        }
        _ => {}
    }
    let align = s.sh_addralign(e);
    if align != 0 && !align.is_power_of_two() {
        return fail(
            ErrorKind::BadAlignment,
            format!("sh_addralign {align} is not a power of two"),
        );
    }
    if alloc && align > PAGE_SIZE {
        return fail(
            ErrorKind::BadAlignment,
            format!("sh_addralign {align} is more than a page ({PAGE_SIZE})"),
        );
    }
    let size = s.sh_size(e);
    let mut file_offset = 0;
    let sec_data: &[u8] = if sh_type == elf::SHT_NOBITS {
        if size > MAX_IMAGE_SIZE {
            return fail(
                ErrorKind::NobitsTooLarge,
                format!("{size} bytes of .bss, more than {MAX_IMAGE_SIZE}"),
            );
        }
        &[]
    } else if sh_type == elf::SHT_NULL {
        &[]
    } else {
        let off = s.sh_offset(e);
        let end = off
            .checked_add(size)
            .filter(|&end| end <= data.len() as u64);
        match end {
            Some(end) => {
                file_offset = off;
                &data[off as usize..end as usize]
            }
            None => {
                return fail(
                    ErrorKind::SectionOutOfBounds,
                    format!(
                        "offset {off:#x} + size {size:#x} lies past the end of the file ({:#x})",
                        data.len()
                    ),
                );
            }
        }
    };
    if alloc && size > MAX_IMAGE_SIZE {
        return fail(
            ErrorKind::TooLarge,
            format!("{size} bytes, more than a module may have ({MAX_IMAGE_SIZE})"),
        );
    }
    Ok(Section {
        index,
        name,
        sh_type,
        flags,
        size,
        align: align.max(1),
        link: s.sh_link(e),
        info: s.sh_info(e),
        file_offset,
        data: sec_data,
    })
}

/// No two sections' file bytes overlap, nor overlap the ELF header or the section header table.
fn check_overlaps(sections: &[Section<'_>], shoff: u64, shnum: u64) -> Result<()> {
    // (start, end, section index or usize::MAX for the headers)
    let mut ranges: Vec<(u64, u64, usize)> = sections
        .iter()
        .filter(|s| !s.data.is_empty())
        .map(|s| (s.file_offset, s.file_offset + s.data.len() as u64, s.index))
        .collect();
    ranges.push((0, EHDR_SIZE as u64, usize::MAX));
    ranges.push((shoff, shoff + shnum * SHDR_SIZE, usize::MAX - 1));
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.0 < a.1 {
            let name = |i: usize| match i {
                usize::MAX => String::from("the ELF header"),
                i if i == usize::MAX - 1 => String::from("the section header table"),
                i => format!("section {i} `{}`", sections[i].name),
            };
            let (at, other) = if b.2 < usize::MAX - 1 {
                (b.2, a.2)
            } else {
                (a.2, b.2)
            };
            let msg = format!(
                "bytes {:#x}..{:#x} overlap {}",
                b.0,
                a.1.min(b.1),
                name(other)
            );
            return Err(match sections.get(at) {
                Some(s) => Error::new(ErrorKind::OverlappingSections, s.loc(), msg),
                None => err(ErrorKind::OverlappingSections, msg),
            });
        }
    }
    Ok(())
}

impl<'a> ElfFile<'a> {
    /// Checks the header and every section header of `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let h = check_header(data)?;
        let e = LE;
        let shoff = h.e_shoff(e);
        let shnum = u64::from(h.e_shnum(e));
        let table_ok = shoff
            .checked_add(shnum * SHDR_SIZE)
            .is_some_and(|end| shoff >= EHDR_SIZE as u64 && end <= data.len() as u64);
        if !table_ok {
            return Err(err(
                ErrorKind::Truncated,
                format!(
                    "the section header table ({shnum} entries at {shoff:#x}) lies outside the file ({:#x} bytes)",
                    data.len()
                ),
            ));
        }
        let raw: &[RawSection] = h
            .section_headers(e, data)
            .map_err(|_| err(ErrorKind::Truncated, "cannot read the section header table"))?;
        if !is_null_header(&raw[0]) {
            return Err(sec_err(
                ErrorKind::BadHeader,
                0,
                "",
                "section 0 is not the all-zero null section",
            ));
        }
        let shstrndx = usize::from(h.e_shstrndx(e));
        let names = check_strtab(&raw[shstrndx], data, shstrndx, "section name string table")?;
        let mut sections = Vec::with_capacity(raw.len());
        for (index, s) in raw.iter().enumerate() {
            let name = string_at(names, s.sh_name(e)).ok_or_else(|| {
                sec_err(
                    ErrorKind::BadStringIndex,
                    index,
                    "",
                    format!(
                        "sh_name {} is not a UTF-8 string inside the name table",
                        s.sh_name(e)
                    ),
                )
            })?;
            sections.push(if index == 0 {
                Section {
                    index,
                    name,
                    sh_type: 0,
                    flags: 0,
                    size: 0,
                    align: 1,
                    link: 0,
                    info: 0,
                    file_offset: 0,
                    data: &[],
                }
            } else {
                check_section(data, index, name, s)?
            });
        }
        check_overlaps(&sections, shoff, shnum)?;
        let symtab = find_symtab(&sections)?;
        check_links(&sections, symtab)?;
        Ok(ElfFile { sections, symtab })
    }
}

/// Whether a section header is all zero (what section 0 must be).
fn is_null_header(s: &RawSection) -> bool {
    let e = LE;
    s.sh_name(e) == 0
        && s.sh_type(e) == 0
        && s.sh_flags(e) == 0
        && s.sh_addr(e) == 0
        && s.sh_offset(e) == 0
        && s.sh_size(e) == 0
        && s.sh_link(e) == 0
        && s.sh_info(e) == 0
        && s.sh_addralign(e) == 0
        && s.sh_entsize(e) == 0
}

fn find_symtab(sections: &[Section<'_>]) -> Result<usize> {
    let mut tabs = sections.iter().filter(|s| s.sh_type == elf::SHT_SYMTAB);
    let first = tabs.next().ok_or_else(|| {
        err(
            ErrorKind::NoSymbolTable,
            "the module has no symbol table (was it stripped?)",
        )
    })?;
    if let Some(second) = tabs.next() {
        return Err(Error::new(
            ErrorKind::BadSymbolTable,
            second.loc(),
            format!(
                "a second symbol table (the first is section {})",
                first.index
            ),
        ));
    }
    Ok(first.index)
}

/// `sh_link`/`sh_info`/`sh_entsize`-style checks of the symbol table and the relocation tables.
fn check_links(sections: &[Section<'_>], symtab: usize) -> Result<()> {
    let st = &sections[symtab];
    if !st.size.is_multiple_of(SYM_SIZE) || st.size == 0 {
        return Err(Error::new(
            ErrorKind::BadSymbolTable,
            st.loc(),
            format!("size {} is not a non-zero multiple of {SYM_SIZE}", st.size),
        ));
    }
    let strtab = st.link as usize;
    if strtab == 0
        || sections
            .get(strtab)
            .is_none_or(|s| s.sh_type != elf::SHT_STRTAB)
    {
        return Err(Error::new(
            ErrorKind::BadSectionLink,
            st.loc(),
            format!("sh_link {} is not a string table", st.link),
        ));
    }
    let mut relocated = vec![false; sections.len()];
    for s in sections.iter().filter(|s| s.sh_type == elf::SHT_RELA) {
        let fail = |k: ErrorKind, m: String| Err(Error::new(k, s.loc(), m));
        if s.size % RELA_SIZE != 0 {
            return fail(
                ErrorKind::BadSectionLink,
                format!("size {} is not a multiple of {RELA_SIZE}", s.size),
            );
        }
        if s.link as usize != symtab {
            return fail(
                ErrorKind::BadSectionLink,
                format!(
                    "sh_link {} is not the symbol table (section {symtab})",
                    s.link
                ),
            );
        }
        let t = s.info as usize;
        let ok = t != 0
            && sections.get(t).is_some_and(|ts| {
                !matches!(
                    ts.sh_type,
                    elf::SHT_NULL | elf::SHT_RELA | elf::SHT_SYMTAB | elf::SHT_STRTAB
                )
            });
        if !ok {
            return fail(
                ErrorKind::BadSectionLink,
                format!("sh_info {t} is not a section that can be relocated"),
            );
        }
        if core::mem::replace(&mut relocated[t], true) {
            return fail(
                ErrorKind::BadSectionLink,
                format!("a second relocation table for section {t}"),
            );
        }
    }
    Ok(())
}
