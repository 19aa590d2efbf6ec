//! The module loader's logic, `no_std` and tested on the host: from the bytes of a module file
//! to its memory image, relocated and ready to run. The kernel does the rest (allocating and
//! mapping memory, permissions, calling `init_module`, sysfs).
//!
//! A module is an ELF64 relocatable object (`ET_REL`, `EM_X86_64`), like a Linux `.ko`,
//! built by `tools/modbuild` from C or Rust (`docs/modules.md`). Everything in the file is
//! untrusted: every field is checked before use, and a bad module is refused with an
//! [`Error`] that has a [`ErrorKind`], a [`Location`] (section, symbol, relocation index) and a
//! message. Nothing here panics on any input, and nothing here is `unsafe`.
//!
//! # The steps, as the kernel calls them
//!
//! 1. **Parse and validate**, [`Module::parse`] (Linux's `elf_validity_check` and more):
//!    - the ELF header ([`elf`]): magic, class, data encoding, version, OS ABI, type,
//!      machine, header sizes, no program headers;
//!    - the section headers: types, flags (no section both writable and executable),
//!      alignments, extents inside the file, `.bss` sizes, no two sections' bytes overlapping,
//!      names, and the links of the symbol and relocation tables;
//!    - the symbol table ([`symbols`]): names, bindings, types, section indices, values inside
//!      their sections, no duplicate global definitions;
//!    - the relocations ([`rela`]): type (unknown ones refused by name), symbol index, offset
//!      inside the target section with room for the field;
//!    - `.modinfo` ([`modinfo`]), the export table ([`exports`]), the parameter descriptors
//!      ([`params`]), `init_module` and `cleanup_module`;
//!    - and the layout plan ([`layout`], Linux's `layout_and_allocate`): seven page-aligned
//!      regions (text, rodata, ro_after_init, data and the init variants), each section's
//!      offset, and the module's GOT.
//! 2. **Allocate**: the kernel takes [`Layout::size`] bytes for each region from the
//!    `MODULES` range and maps them writable.
//! 3. **Resolve**, [`Module::resolve`]: every undefined symbol against the kernel's
//!    [`SymbolSource`] (its exports and earlier modules'), GPL-only symbols refused to a
//!    module that is not GPL-compatible, unresolved names listed; the result names the
//!    modules it uses.
//! 4. **Write and relocate**, [`Module::write_image`] into an [`Image`] (one `&mut [u8]` and
//!    virtual address per region): sections copied, `.bss` zeroed, the GOT filled, every
//!    relocation applied with its value checked to fit ([`relocate`]).
//! 5. **Parameters**, [`Module::set_param`]: `insmod m.ko name=value` values written into
//!    the variables.
//! 6. **Seal** each region to [`Region::perms_during_init`], call [`Module::init_address`];
//!    after init, free the init regions and seal `ro_after_init` read-only
//!    ([`Region::perms`]).
//!
//! The files layer one way (each uses only files above it): `error`; `elf`; `symbols`; `rela`;
//! `layout`; `modinfo` (on `error` alone); `exports` (on `symbols`); `params` (on `layout`,
//! `rela`, `modinfo`); `resolve` (on `exports`); `relocate` (on `layout`, `rela`); `module`,
//! the front door, on all of them. The tests are in `src/tests/` (synthetic objects, the
//! example modules kept in `tests/fixtures/`, one test per refusal, a mutation property test).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod elf;
pub mod error;
pub mod exports;
pub mod layout;
pub mod modinfo;
mod module;
pub mod params;
pub mod rela;
pub mod relocate;
pub mod resolve;
pub mod symbols;

#[cfg(test)]
mod tests;

pub use error::{Error, ErrorKind, Location, Result};
pub use layout::{Layout, Perms, Region};
pub use module::Module;
pub use relocate::{Image, RegionMem};
pub use resolve::{Exported, Resolved, SymbolSource, THIS_MODULE};

/// The page size regions are aligned to (`sheaf-consts`' `PAGE_SIZE`, as a `u64` like every
/// ELF size).
pub const PAGE_SIZE: u64 = consts::PAGE_SIZE as u64;

/// The most memory one module may take, all regions together, and the largest `.bss`
/// (64 MiB: far more than any example, far less than the 1.5 GiB `MODULES` range).
pub const MAX_IMAGE_SIZE: u64 = 64 << 20;
