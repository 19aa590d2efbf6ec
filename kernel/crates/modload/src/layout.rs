//! Step 4: where each loaded section goes, as Linux's `layout_and_allocate`/`layout_sections`.
//!
//! Sections are sorted into seven regions, each allocated separately and page aligned (Linux's
//! `mod_mem_type`s since 6.4). A section goes to the first class it matches, in this order:
//! executable → text; not writable → read-only data; named `.data..ro_after_init` →
//! read-only-after-init; writable → data. A section whose name starts with `.init` goes to
//! the class's init region (Linux has no init region for ro-after-init; Sheaf puts such a
//! section in init data). Within a region, sections keep file order, each at its alignment.
//! The module's GOT, one 8-byte slot per symbol a `GOTPCREL*` relocation names, follows the
//! read-only data.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::elf::{ElfFile, Section, is_loaded};
use crate::error::{Error, ErrorKind, Location, Result};
use crate::rela::RelaSection;
use crate::{MAX_IMAGE_SIZE, PAGE_SIZE};

/// One of the module's memory regions (Linux's `enum mod_mem_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// Code: read-only and executable once sealed (`MOD_TEXT`).
    Text,
    /// Constants and the GOT: read-only, not executable (`MOD_RODATA`).
    Rodata,
    /// Written during init, then read-only (`MOD_RO_AFTER_INIT`).
    RoAfterInit,
    /// Variables: read-write, not executable (`MOD_DATA`).
    Data,
    /// `.init.text`: executable, freed after `init_module` returns (`MOD_INIT_TEXT`).
    InitText,
    /// Read-only data of `.init*` sections, freed after init (`MOD_INIT_RODATA`).
    InitRodata,
    /// `.init.data`: read-write, freed after init (`MOD_INIT_DATA`).
    InitData,
}

/// Number of regions.
pub const REGIONS: usize = 7;

/// Access rights of a region's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Region {
    /// Every region, in index order.
    pub const ALL: [Region; REGIONS] = [
        Region::Text,
        Region::Rodata,
        Region::RoAfterInit,
        Region::Data,
        Region::InitText,
        Region::InitRodata,
        Region::InitData,
    ];

    /// Index in [`Region::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Linux's name of the region (`/sys/module/*/sections`-style reports, `lsmod` sizes).
    pub fn name(self) -> &'static str {
        match self {
            Region::Text => "text",
            Region::Rodata => "rodata",
            Region::RoAfterInit => "ro_after_init",
            Region::Data => "data",
            Region::InitText => "init_text",
            Region::InitRodata => "init_rodata",
            Region::InitData => "init_data",
        }
    }

    /// Whether the region is freed once `init_module` returns.
    pub fn is_init(self) -> bool {
        matches!(
            self,
            Region::InitText | Region::InitRodata | Region::InitData
        )
    }

    /// The permissions while the module runs its init (`RoAfterInit` still writable).
    pub fn perms_during_init(self) -> Perms {
        match self {
            Region::RoAfterInit => Perms {
                write: true,
                exec: false,
            },
            r => r.perms(),
        }
    }

    /// The final permissions (W^X): text and init text read-only executable; read-only data
    /// and ro-after-init read-only; data read-write. None is both writable and executable.
    pub fn perms(self) -> Perms {
        match self {
            Region::Text | Region::InitText => Perms {
                write: false,
                exec: true,
            },
            Region::Rodata | Region::RoAfterInit | Region::InitRodata => Perms {
                write: false,
                exec: false,
            },
            Region::Data | Region::InitData => Perms {
                write: true,
                exec: false,
            },
        }
    }
}

/// Where a section goes: its region and its offset there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The region.
    pub region: Region,
    /// Byte offset from the region's start (aligned to the section's `sh_addralign`).
    pub offset: u64,
}

/// The layout plan: region sizes and each loaded section's placement.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Bytes used in each region (before page rounding).
    used: [u64; REGIONS],
    /// Placement of each section by index (`None`: not loaded).
    pub placements: Vec<Option<Placement>>,
    /// Offset of the GOT in [`Region::Rodata`] (meaningful when `got_symbols` is not empty).
    pub got_offset: u64,
    /// The symbol index of each GOT slot, in slot order (8 bytes each).
    pub got_symbols: Vec<usize>,
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v & !(a - 1))
}

/// The class of a loaded section, or `None` (not loaded).
fn classify(s: &Section<'_>) -> Option<Region> {
    if !is_loaded(s) {
        return None;
    }
    let init = s.name.starts_with(".init");
    Some(
        match (
            s.is_exec(),
            s.is_write(),
            s.name == ".data..ro_after_init",
            init,
        ) {
            (true, _, _, false) => Region::Text,
            (true, _, _, true) => Region::InitText,
            (false, false, _, false) => Region::Rodata,
            (false, false, _, true) => Region::InitRodata,
            (false, true, true, false) => Region::RoAfterInit,
            (false, true, false, false) => Region::Data,
            (false, true, _, true) => Region::InitData,
        },
    )
}

impl Layout {
    /// Plans the module's memory.
    pub fn plan(file: &ElfFile<'_>, relas: &[RelaSection]) -> Result<Self> {
        let mut used = [0u64; REGIONS];
        let mut placements = vec![None; file.sections.len()];
        let too_large = |s: &Section<'_>| {
            Error::new(
                ErrorKind::TooLarge,
                s.loc(),
                format!("the module's memory would pass {MAX_IMAGE_SIZE} bytes"),
            )
        };
        // Linux's class order (text, rodata, ro_after_init, data), file order within a class.
        for class in [
            Region::Text,
            Region::Rodata,
            Region::RoAfterInit,
            Region::Data,
        ] {
            for s in &file.sections {
                let Some(region) = classify(s) else { continue };
                let base = match region {
                    Region::InitText => Region::Text,
                    Region::InitRodata => Region::Rodata,
                    Region::InitData => Region::Data,
                    r => r,
                };
                if base != class {
                    continue;
                }
                let r = region.index();
                let offset = align_up(used[r], s.align).ok_or_else(|| too_large(s))?;
                used[r] = offset
                    .checked_add(s.size)
                    .filter(|&e| e <= MAX_IMAGE_SIZE)
                    .ok_or_else(|| too_large(s))?;
                placements[s.index] = Some(Placement { region, offset });
            }
        }
        let mut got_symbols: Vec<usize> = Vec::new();
        let mut in_got = BTreeSet::new();
        for r in relas.iter().flat_map(|rs| rs.entries.iter()) {
            if r.rtype.uses_got() && in_got.insert(r.sym) {
                got_symbols.push(r.sym);
            }
        }
        let ro = Region::Rodata.index();
        let got_offset = align_up(used[ro], 8).unwrap_or(u64::MAX);
        if !got_symbols.is_empty() {
            used[ro] = got_offset.saturating_add(8 * got_symbols.len() as u64);
        }
        let total = used
            .iter()
            .try_fold(0u64, |acc, &u| acc.checked_add(align_up(u, PAGE_SIZE)?));
        if total.is_none_or(|t| t > MAX_IMAGE_SIZE) {
            return Err(Error::new(
                ErrorKind::TooLarge,
                Location::File,
                format!("the module's memory would pass {MAX_IMAGE_SIZE} bytes"),
            ));
        }
        Ok(Layout {
            used,
            placements,
            got_offset,
            got_symbols,
        })
    }

    /// Bytes to allocate for `region`: its contents rounded up to whole pages (0 if empty).
    pub fn size(&self, region: Region) -> u64 {
        // Cannot overflow: `plan` checked the rounded total.
        self.used[region.index()].div_ceil(PAGE_SIZE) * PAGE_SIZE
    }

    /// Bytes of contents in `region` (before page rounding).
    pub fn used(&self, region: Region) -> u64 {
        self.used[region.index()]
    }

    /// Linux's `coresize`: the page-rounded sizes of the regions that stay after init.
    pub fn core_size(&self) -> u64 {
        Region::ALL
            .iter()
            .filter(|r| !r.is_init())
            .map(|&r| self.size(r))
            .sum()
    }

    /// Linux's `initsize`: the page-rounded sizes of the init regions.
    pub fn init_size(&self) -> u64 {
        Region::ALL
            .iter()
            .filter(|r| r.is_init())
            .map(|&r| self.size(r))
            .sum()
    }

    /// Where section `index` goes, if it is loaded.
    pub fn placement(&self, index: usize) -> Option<Placement> {
        self.placements.get(index).copied().flatten()
    }
}
