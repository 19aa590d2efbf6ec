//! The one error type of the loader: a kind (what class of problem, for callers and tests), a
//! location (where in the file) and a message (what exactly, for the person who runs `insmod`).

use alloc::string::String;
use core::fmt;

/// What class of problem made the loader refuse a module. Every check has its own kind, so a
/// test (or `insmod`) can tell one refusal from another without reading the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file is shorter than an ELF header, or the section header table runs past its end.
    Truncated,
    /// The file does not start with `\x7fELF`.
    BadMagic,
    /// Not a 64-bit ELF file (`EI_CLASS` is not `ELFCLASS64`).
    BadClass,
    /// Not little-endian (`EI_DATA` is not `ELFDATA2LSB`).
    BadDataEncoding,
    /// `EI_VERSION` or `e_version` is not `EV_CURRENT`.
    BadVersion,
    /// `EI_OSABI` is neither System V nor GNU, or `EI_ABIVERSION` is not 0.
    BadOsAbi,
    /// `e_type` is not `ET_REL` (a module is a relocatable object, like a Linux `.ko`).
    BadType,
    /// `e_machine` is not `EM_X86_64`.
    BadMachine,
    /// Another header field is wrong: `e_ehsize`, `e_shentsize`, program headers, `e_entry`,
    /// `e_flags`, or the section count.
    BadHeader,
    /// A section's contents lie past the end of the file.
    SectionOutOfBounds,
    /// Two sections' contents (or a section and the headers) share bytes of the file.
    OverlappingSections,
    /// A section type a module must not have (`SHT_REL`, dynamic sections, constructors, ...).
    BadSectionType,
    /// Unknown section flag bits, or a flag a module must not use (`SHF_TLS`, compressed
    /// loaded sections).
    BadSectionFlags,
    /// A section is both writable and executable (W^X).
    WritableAndExecutable,
    /// `sh_addralign` is not a power of two, or more than a page.
    BadAlignment,
    /// A `SHT_NOBITS` section (`.bss`) larger than a module can be.
    NobitsTooLarge,
    /// The module's memory would exceed [`crate::MAX_IMAGE_SIZE`].
    TooLarge,
    /// `sh_link`/`sh_info` of a symbol or relocation table names the wrong section.
    BadSectionLink,
    /// A string table is empty or does not begin and end with a NUL.
    BadStringTable,
    /// A name's index is outside its string table, or the name is not UTF-8.
    BadStringIndex,
    /// The module has no symbol table (it was stripped).
    NoSymbolTable,
    /// The symbol table's size, entry size or first-non-local index is wrong, or there are two.
    BadSymbolTable,
    /// A symbol is malformed: its binding, type, visibility, value or size, or a duplicate.
    BadSymbol,
    /// A symbol's section index is out of range, reserved, `SHN_COMMON` or of a null section.
    BadSymbolSection,
    /// A relocation names a symbol index past the symbol table (or the null symbol).
    BadSymbolIndex,
    /// A relocation's bytes lie outside its target section.
    RelocationOutOfBounds,
    /// A relocation type the loader does not apply (named in the message).
    UnknownRelocation,
    /// A relocated value does not fit its field.
    RelocationOverflow,
    /// A relocation that cannot be applied for another reason: into `.bss`, or onto bytes
    /// that are not zero (two relocations on the same bytes).
    BadRelocation,
    /// A relocation refers to a symbol in a section that is not loaded.
    SymbolNotLoaded,
    /// An undefined symbol that neither the kernel nor a loaded module exports (named).
    UndefinedSymbol,
    /// A GPL-only symbol used by a module whose license is not GPL-compatible (named).
    GplOnlySymbol,
    /// The module exports a name that the kernel or a loaded module already exports.
    DuplicateExport,
    /// An entry of the export table is not a symbol the module defines.
    BadExport,
    /// `.modinfo` is malformed (an entry without `=`, not UTF-8, unterminated, a second
    /// `license=` or `name=`).
    BadModinfo,
    /// The module's name is empty, too long or has characters other than `[A-Za-z0-9_-]`.
    BadName,
    /// A parameter descriptor is malformed, or a parameter value does not parse.
    BadParam,
    /// `init_module` or `cleanup_module` is not a function in the module's text.
    BadEntryPoint,
    /// The memory handed to [`crate::Module::write_image`] does not match the layout.
    BadImage,
}

impl ErrorKind {
    /// A short human name of the kind ("relocation overflow").
    pub fn describe(self) -> &'static str {
        use ErrorKind::*;
        match self {
            Truncated => "truncated file",
            BadMagic => "bad ELF magic",
            BadClass => "bad ELF class",
            BadDataEncoding => "bad ELF data encoding",
            BadVersion => "bad ELF version",
            BadOsAbi => "bad OS ABI",
            BadType => "bad ELF type",
            BadMachine => "bad machine",
            BadHeader => "bad ELF header",
            SectionOutOfBounds => "section out of bounds",
            OverlappingSections => "overlapping sections",
            BadSectionType => "bad section type",
            BadSectionFlags => "bad section flags",
            WritableAndExecutable => "writable and executable section",
            BadAlignment => "bad alignment",
            NobitsTooLarge => "NOBITS section too large",
            TooLarge => "module too large",
            BadSectionLink => "bad section link",
            BadStringTable => "bad string table",
            BadStringIndex => "bad string index",
            NoSymbolTable => "no symbol table",
            BadSymbolTable => "bad symbol table",
            BadSymbol => "bad symbol",
            BadSymbolSection => "symbol in a bad section",
            BadSymbolIndex => "bad symbol index",
            RelocationOutOfBounds => "relocation outside its section",
            UnknownRelocation => "unknown relocation type",
            RelocationOverflow => "relocation overflow",
            BadRelocation => "bad relocation",
            SymbolNotLoaded => "symbol in a section that is not loaded",
            UndefinedSymbol => "undefined symbol",
            GplOnlySymbol => "GPL-only symbol",
            DuplicateExport => "duplicate export",
            BadExport => "bad export",
            BadModinfo => "bad .modinfo",
            BadName => "bad module name",
            BadParam => "bad parameter",
            BadEntryPoint => "bad entry point",
            BadImage => "bad image",
        }
    }
}

/// Where in the module the problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole, or its ELF header.
    File,
    /// A section, by index and name (the name is empty if it could not be read).
    Section {
        /// Index in the section header table.
        index: usize,
        /// The section's name.
        name: String,
    },
    /// A symbol, by index in the symbol table and name.
    Symbol {
        /// Index in the symbol table.
        index: usize,
        /// The symbol's name.
        name: String,
    },
    /// A relocation: its relocation section and its index in that section.
    Relocation {
        /// Index of the `SHT_RELA` section.
        section: usize,
        /// The relocation section's name (`.rela.text`).
        section_name: String,
        /// Index of the entry within the section.
        index: usize,
    },
    /// The `.modinfo` section.
    Modinfo,
    /// The parameter descriptor with this index (in `.sheaf.params`).
    Param {
        /// Index of the descriptor.
        index: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => f.write_str("file"),
            Location::Section { index, name } => write!(f, "section {index} `{name}`"),
            Location::Symbol { index, name } => write!(f, "symbol {index} `{name}`"),
            Location::Relocation {
                section,
                section_name,
                index,
            } => {
                write!(
                    f,
                    "relocation {index} of section {section} `{section_name}`"
                )
            }
            Location::Modinfo => f.write_str(".modinfo"),
            Location::Param { index } => write!(f, "parameter descriptor {index}"),
        }
    }
}

/// A refusal: the loader's only error type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What class of problem.
    pub kind: ErrorKind,
    /// Where.
    pub location: Location,
    /// What exactly, with the values at fault.
    pub message: String,
}

impl Error {
    /// An error of `kind` at `location`.
    pub fn new(kind: ErrorKind, location: Location, message: impl Into<String>) -> Self {
        Error {
            kind,
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.kind.describe(),
            self.location,
            self.message
        )
    }
}

impl core::error::Error for Error {}

/// The loader's result type.
pub type Result<T> = core::result::Result<T, Error>;
