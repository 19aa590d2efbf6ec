//! Step 6: copying the sections into the module's memory and applying the relocations
//! (Linux's `move_module` + `apply_relocate_add`), every value checked to fit its field.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;

use crate::PAGE_SIZE;
use crate::elf::ElfFile;
use crate::error::{Error, ErrorKind, Location, Result};
use crate::layout::{Layout, REGIONS, Region};
use crate::rela::{RelaSection, RelocType, rel_loc};
use crate::symbols::{Place, SymbolTable};

/// One region of the module's memory, mapped writable by the kernel: its bytes and the
/// virtual address they will run at.
#[derive(Debug)]
pub struct RegionMem<'b> {
    /// The virtual address of `bytes[0]` (page aligned).
    pub addr: u64,
    /// The region's memory: exactly [`Layout::size`] bytes.
    pub bytes: &'b mut [u8],
}

impl RegionMem<'_> {
    /// An empty region (for a region the layout leaves empty).
    pub fn empty() -> Self {
        RegionMem {
            addr: 0,
            bytes: &mut [],
        }
    }
}

/// The module's memory, one [`RegionMem`] per [`Region`], checked against the layout.
#[derive(Debug)]
pub struct Image<'b> {
    regions: [RegionMem<'b>; REGIONS],
}

fn image_err(msg: String) -> Error {
    Error::new(ErrorKind::BadImage, Location::File, msg)
}

impl<'b> Image<'b> {
    /// Checks that each region has the layout's size, a page-aligned address, does not wrap
    /// around the address space and does not overlap another region.
    pub fn new(layout: &Layout, regions: [RegionMem<'b>; REGIONS]) -> Result<Self> {
        for r in Region::ALL {
            let m = &regions[r.index()];
            let len = m.bytes.len() as u64;
            if len != layout.size(r) {
                return Err(image_err(format!(
                    "region {} is {len} bytes, the layout says {}",
                    r.name(),
                    layout.size(r)
                )));
            }
            if len > 0 && (!m.addr.is_multiple_of(PAGE_SIZE) || m.addr.checked_add(len).is_none()) {
                return Err(image_err(format!(
                    "region {} at {:#x} is not page aligned or wraps",
                    r.name(),
                    m.addr
                )));
            }
        }
        for a in Region::ALL {
            for b in Region::ALL.into_iter().filter(|&b| b > a) {
                let (x, y) = (&regions[a.index()], &regions[b.index()]);
                if x.bytes.is_empty() || y.bytes.is_empty() {
                    continue;
                }
                if x.addr < y.addr + y.bytes.len() as u64 && y.addr < x.addr + x.bytes.len() as u64
                {
                    return Err(image_err(format!(
                        "regions {} and {} overlap",
                        a.name(),
                        b.name()
                    )));
                }
            }
        }
        Ok(Image { regions })
    }

    /// The virtual address of `region`.
    pub fn addr(&self, region: Region) -> u64 {
        self.regions[region.index()].addr
    }

    /// The bytes of `region`.
    pub fn bytes(&self, region: Region) -> &[u8] {
        self.regions[region.index()].bytes
    }

    fn locate(&self, addr: u64, len: u64) -> Option<(Region, usize)> {
        Region::ALL.into_iter().find_map(|r| {
            let m = &self.regions[r.index()];
            let off = addr.checked_sub(m.addr)?;
            (off.checked_add(len)? <= m.bytes.len() as u64).then_some((r, off as usize))
        })
    }

    /// The `len` bytes at virtual address `addr`, if they lie in one region.
    pub fn read(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let (r, off) = self.locate(addr, len)?;
        Some(&self.regions[r.index()].bytes[off..off + len as usize])
    }

    /// Writes `bytes` at virtual address `addr` (a parameter's new value), if they lie in one
    /// region.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<()> {
        let (r, off) = self.locate(addr, bytes.len() as u64).ok_or_else(|| {
            image_err(format!(
                "{} bytes at {addr:#x} are not in the module",
                bytes.len()
            ))
        })?;
        self.regions[r.index()].bytes[off..off + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// Gives the regions back.
    pub fn into_regions(self) -> [RegionMem<'b>; REGIONS] {
        self.regions
    }
}

/// How a lab's stub (docs/labs/04-module-loader.md) starts its refusal of what it does not
/// implement yet: [`write_image`] refuses such a relocation as [`ErrorKind::UnknownRelocation`]
/// rather than as an overflow.
pub const NOT_IMPLEMENTED: &str = "LAB: not implemented:";

/// The value a relocation writes (8 little-endian bytes, of which the first
/// [`RelocType::width`] are written), checked to fit its field, or why it does not.
///
/// `s` is the symbol's address, `a` the addend, `p` the field's address, `got_entry` the
/// address of the symbol's GOT slot. The 32-bit forms are computed in 64-bit two's-complement
/// arithmetic, as the CPU uses them, and must then survive truncation: zero-extension for
/// `R_X86_64_32`, sign-extension for the others (Linux's check). The 64-bit forms must not leave
/// the 64-bit range (`S + A` or `S + A - P`, computed exactly, between `-2^63` and `2^64 - 1`).
pub fn compute(
    rtype: RelocType,
    s: u64,
    a: i64,
    p: u64,
    got_entry: u64,
) -> core::result::Result<[u8; 8], String> {
    // LAB(modules) BEGIN
    // LAB-HINT: one arm per type: the value (S + A, S + A - P, GOT + A - P) and whether it
    // LAB-HINT: fits the field (see the doc comment above), `None` when it does not. The
    // LAB-HINT: types and their formulas are in rela.rs (`RelocType`); docs/labs/04-module-loader.md.
    // LAB-STUB: let _ = (s, a, p, got_entry);
    // LAB-STUB: let value: Option<u64> = match rtype {
    // LAB-STUB:     RelocType::None => Some(0),
    // LAB-STUB:     _ => {
    // LAB-STUB:         let what = rtype.name();
    // LAB-STUB:         return Err(format!(
    // LAB-STUB:             "{NOT_IMPLEMENTED} relocation {what} in relocate.rs"
    // LAB-STUB:         ));
    // LAB-STUB:     }
    // LAB-STUB: };
    let a64 = a as u64;
    let exact = |v: i128| -> Option<u64> {
        (i128::from(i64::MIN)..=i128::from(u64::MAX))
            .contains(&v)
            .then_some(v as u64)
    };
    let signed32 = |w: u64| i32::try_from(w as i64).is_ok().then_some(w);
    let value = match rtype {
        RelocType::None => Some(0),
        RelocType::Abs64 => exact(i128::from(s) + i128::from(a)),
        RelocType::Pc64 => exact(i128::from(s) + i128::from(a) - i128::from(p)),
        RelocType::Abs32 => Some(s.wrapping_add(a64)).filter(|&w| w <= u64::from(u32::MAX)),
        RelocType::Abs32S => signed32(s.wrapping_add(a64)),
        RelocType::Pc32 | RelocType::Plt32 => signed32(s.wrapping_add(a64).wrapping_sub(p)),
        RelocType::GotPcRel | RelocType::GotPcRelX | RelocType::RexGotPcRelX => {
            signed32(got_entry.wrapping_add(a64).wrapping_sub(p))
        }
    };
    // LAB(modules) END
    value.map(u64::to_le_bytes).ok_or_else(|| {
        let how = match rtype {
            RelocType::Abs32 => "32 bits zero-extended",
            RelocType::Abs64 | RelocType::Pc64 => "64 bits",
            _ => "32 bits sign-extended",
        };
        let sign = if a < 0 { "-" } else { "" };
        format!(
            "{} value (S {s:#x}, A {sign}{:#x}, P {p:#x}) does not fit in {how}",
            rtype.name(),
            a.unsigned_abs()
        )
    })
}

/// Copies every placed section into `image` (zeroing the rest, `.bss` included), fills the
/// GOT and applies every relocation.
pub fn write_image(
    file: &ElfFile<'_>,
    syms: &SymbolTable<'_>,
    relas: &[RelaSection],
    layout: &Layout,
    resolved: &[u64],
    image: &mut Image<'_>,
) -> Result<()> {
    for m in image.regions.iter_mut() {
        m.bytes.fill(0);
    }
    for s in &file.sections {
        if let Some(p) = layout.placement(s.index) {
            let off = p.offset as usize;
            image.regions[p.region.index()].bytes[off..off + s.data.len()].copy_from_slice(s.data);
        }
    }
    let sec_addr =
        |image: &Image<'_>, i: usize| layout.placement(i).map(|p| image.addr(p.region) + p.offset);
    let sym_addr = |image: &Image<'_>, i: usize| -> Option<u64> {
        let s = syms.get(i);
        match s.place {
            Place::Undefined => Some(resolved[i]),
            Place::Absolute => Some(s.value),
            Place::Section(si) => sec_addr(image, si).map(|a| a + s.value),
        }
    };
    let mut got: BTreeMap<usize, u64> = BTreeMap::new();
    let got_base = image.addr(Region::Rodata) + layout.got_offset;
    for (k, &sym) in layout.got_symbols.iter().enumerate() {
        let v = sym_addr(image, sym).ok_or_else(|| {
            Error::new(
                ErrorKind::SymbolNotLoaded,
                Location::Symbol {
                    index: sym,
                    name: syms.get(sym).name.into(),
                },
                "a GOT entry for a symbol in a section that is not loaded",
            )
        })?;
        let at = (layout.got_offset + 8 * k as u64) as usize;
        image.regions[Region::Rodata.index()].bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
        got.insert(sym, got_base + 8 * k as u64);
    }
    for rs in relas {
        let Some(tp) = layout.placement(rs.target) else {
            continue;
        };
        let rsec = &file.sections[rs.index];
        for (i, r) in rs.entries.iter().enumerate() {
            if r.rtype == RelocType::None {
                continue;
            }
            let fail = |k: ErrorKind, m: String| Err(Error::new(k, rel_loc(rsec, i), m));
            let Some(s) = sym_addr(image, r.sym) else {
                return fail(
                    ErrorKind::SymbolNotLoaded,
                    format!("symbol {} `{}` is not loaded", r.sym, syms.get(r.sym).name),
                );
            };
            let p = image.addr(tp.region) + tp.offset + r.offset;
            let g = got.get(&r.sym).copied().unwrap_or(0);
            let bytes = match compute(r.rtype, s, r.addend, p, g) {
                Ok(b) => b,
                Err(m) => {
                    let name = syms.get(r.sym).name;
                    let kind = if m.starts_with(NOT_IMPLEMENTED) {
                        ErrorKind::UnknownRelocation
                    } else {
                        ErrorKind::RelocationOverflow
                    };
                    return fail(kind, format!("{m}, symbol `{name}`"));
                }
            };
            let w = r.rtype.width() as usize;
            let at = (tp.offset + r.offset) as usize;
            let field = &mut image.regions[tp.region.index()].bytes[at..at + w];
            if field.iter().any(|&b| b != 0) {
                return fail(
                    ErrorKind::BadRelocation,
                    format!(
                        "{} at offset {:#x}: the field is not zero (applied twice?)",
                        r.rtype.name(),
                        r.offset
                    ),
                );
            }
            field.copy_from_slice(&bytes[..w]);
        }
    }
    Ok(())
}
