//! Module parameters: the descriptors `module_param` (C) and `module!` (Rust) emit, and the
//! parsing of `insmod m.ko name=value` values.
//!
//! # Descriptor format
//!
//! The section `.sheaf.params` is an array of 24-byte, 8-aligned descriptors (not loaded; the
//! loader reads it from the file):
//!
//! | offset | size | field | |
//! | --- | --- | --- | --- |
//! | 0 | 8 | `name` | pointer to the NUL-terminated name: one `R_X86_64_64` relocation |
//! | 8 | 8 | `arg` | pointer to the variable: one `R_X86_64_64` relocation, into writable data |
//! | 16 | 4 | `type` | [`ParamType`]: 1 int, 2 uint, 3 long, 4 ulong, 5 bool, 6 charp |
//! | 20 | 2 | `perm` | sysfs mode bits (`0444`, `0644`; 0: not shown); never world-writable |
//! | 22 | 2 | `flags` | 0 |
//!
//! The variable is an `int` (4 bytes), `unsigned int` (4), `long` (8), `unsigned long` (8),
//! `bool` (1 byte, 0 or 1) or `char *` (8, a pointer the kernel sets to a string it owns).
//! `include/sheaf/module.h` declares it as `struct sheaf_param`; the Rust `kmod` crate as
//! `kmod::ParamDesc`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::elf::{ElfFile, PARAMS, Section};
use crate::error::{Error, ErrorKind, Location, Result};
use crate::layout::{Layout, Region};
use crate::modinfo::ModInfo;
use crate::rela::{Rela, RelaSection, RelocType};
use crate::symbols::{Place, SymbolTable};

/// Size of one descriptor.
pub const DESC_SIZE: u64 = 24;

/// The type of a parameter (Linux's `param_ops_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// `int`: 32-bit signed.
    Int = 1,
    /// `uint`: 32-bit unsigned.
    Uint = 2,
    /// `long`: 64-bit signed.
    Long = 3,
    /// `ulong`: 64-bit unsigned.
    Ulong = 4,
    /// `bool`: one byte, 0 or 1.
    Bool = 5,
    /// `charp`: a pointer to a NUL-terminated string.
    Charp = 6,
}

impl ParamType {
    /// The type for a descriptor's `type` field.
    pub fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            1 => ParamType::Int,
            2 => ParamType::Uint,
            3 => ParamType::Long,
            4 => ParamType::Ulong,
            5 => ParamType::Bool,
            6 => ParamType::Charp,
            _ => return None,
        })
    }

    /// Linux's name (`parmtype=NAME:int`), also shown by `modinfo`.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::Uint => "uint",
            ParamType::Long => "long",
            ParamType::Ulong => "ulong",
            ParamType::Bool => "bool",
            ParamType::Charp => "charp",
        }
    }

    /// Bytes of the variable.
    pub fn width(self) -> u64 {
        match self {
            ParamType::Int | ParamType::Uint => 4,
            ParamType::Long | ParamType::Ulong | ParamType::Charp => 8,
            ParamType::Bool => 1,
        }
    }

    /// Parses a value as Linux's `param_set_*` do: integers in base 0 (`0x` hex, leading `0`
    /// octal, else decimal, an optional sign, one trailing newline); bools as `kstrtobool`
    /// (`y`/`Y`/`1`/`on` and `n`/`N`/`0`/`off`; no value at all means true); `charp` as is.
    /// `None` for the value means `name` without `=value`.
    pub fn parse<'v>(self, value: Option<&'v str>) -> core::result::Result<ParamValue<'v>, String> {
        let v = match value {
            None if self == ParamType::Bool => return Ok(ParamValue::Bool(true)),
            None => return Err(format!("a {} parameter needs a value", self.name())),
            Some(v) => v,
        };
        let int = |v: &str| parse_int(v.strip_suffix('\n').unwrap_or(v));
        let range = || format!("`{v}` is not a valid {}", self.name());
        Ok(match self {
            ParamType::Int => ParamValue::Int(
                int(v)
                    .and_then(|x| i32::try_from(x).ok())
                    .ok_or_else(range)?,
            ),
            ParamType::Uint => ParamValue::Uint(
                int(v)
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(range)?,
            ),
            ParamType::Long => ParamValue::Long(
                int(v)
                    .and_then(|x| i64::try_from(x).ok())
                    .ok_or_else(range)?,
            ),
            ParamType::Ulong => ParamValue::Ulong(
                int(v)
                    .and_then(|x| u64::try_from(x).ok())
                    .ok_or_else(range)?,
            ),
            ParamType::Bool => ParamValue::Bool(match v.as_bytes() {
                [b'y' | b'Y' | b'1', ..] => true,
                [b'n' | b'N' | b'0', ..] => false,
                [b'o' | b'O', b'n' | b'N', ..] => true,
                [b'o' | b'O', b'f' | b'F', ..] => false,
                _ => return Err(range()),
            }),
            ParamType::Charp => ParamValue::Charp(v),
        })
    }
}

/// An integer in base 0 with an optional sign, into an `i128` wide enough for every type.
fn parse_int(s: &str) -> Option<i128> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, h)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || body.len() > 40 {
        return None;
    }
    let mag = u128::from_str_radix(body, radix).ok()?;
    let mag = i128::try_from(mag).ok()?;
    Some(if neg { -mag } else { mag })
}

/// A parsed parameter value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamValue<'v> {
    /// `int`.
    Int(i32),
    /// `uint`.
    Uint(u32),
    /// `long`.
    Long(i64),
    /// `ulong`.
    Ulong(u64),
    /// `bool`.
    Bool(bool),
    /// `charp`: the kernel copies the string and writes the copy's address.
    Charp(&'v str),
}

impl ParamValue<'_> {
    /// The variable's new bytes (little-endian, [`ParamType::width`] long), or `None` for a
    /// `charp`, whose bytes are the address of the kernel's copy of the string.
    pub fn scalar_bytes(&self) -> Option<Vec<u8>> {
        Some(match *self {
            ParamValue::Int(v) => v.to_le_bytes().into(),
            ParamValue::Uint(v) => v.to_le_bytes().into(),
            ParamValue::Long(v) => v.to_le_bytes().into(),
            ParamValue::Ulong(v) => v.to_le_bytes().into(),
            ParamValue::Bool(v) => [u8::from(v)].into(),
            ParamValue::Charp(_) => return None,
        })
    }
}

/// A checked parameter descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name (`insmod m.ko NAME=value`).
    pub name: &'a str,
    /// The type.
    pub kind: ParamType,
    /// sysfs mode bits.
    pub perm: u16,
    /// The section of the variable (placed in [`Region::Data`]).
    pub section: usize,
    /// The variable's offset in that section.
    pub offset: u64,
}

fn target(
    syms: &SymbolTable<'_>,
    by_offset: &BTreeMap<u64, Vec<Rela>>,
    at: u64,
    what: &str,
) -> core::result::Result<(usize, u64), String> {
    let hits = by_offset.get(&at).map_or(&[][..], |v| &v[..]);
    let [r] = hits else {
        return Err(format!(
            "the {what} field does not have exactly one relocation"
        ));
    };
    if r.rtype != RelocType::Abs64 {
        return Err(format!(
            "the {what} field's relocation is {}, not R_X86_64_64",
            r.rtype.name()
        ));
    }
    let s = syms.get(r.sym);
    let Place::Section(si) = s.place else {
        return Err(format!(
            "the {what} points to `{}`, which the module does not define",
            s.name
        ));
    };
    let off = i128::from(s.value) + i128::from(r.addend);
    let off = u64::try_from(off).map_err(|_| format!("the {what} points before its section"))?;
    Ok((si, off))
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 55 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Reads `.sheaf.params` (if any) and checks each descriptor against the file, the layout and
/// the `parmtype=` entries of `.modinfo`.
pub fn parse<'a>(
    file: &ElfFile<'a>,
    syms: &SymbolTable<'a>,
    relas: &[RelaSection],
    layout: &Layout,
    info: &ModInfo<'a>,
) -> Result<Vec<Param<'a>>> {
    let mut out: Vec<Param<'a>> = Vec::new();
    let mut names = BTreeSet::new();
    let Some(ps) = file.sections.iter().find(|s| s.name == PARAMS) else {
        return Ok(out);
    };
    if ps.is_nobits() || ps.size % DESC_SIZE != 0 {
        return Err(Error::new(
            ErrorKind::BadParam,
            ps.loc(),
            format!(
                "{} bytes: not a whole number of {DESC_SIZE}-byte descriptors",
                ps.size
            ),
        ));
    }
    let empty = RelaSection {
        index: 0,
        target: ps.index,
        entries: Vec::new(),
    };
    let rs = relas
        .iter()
        .find(|r| r.target == ps.index)
        .unwrap_or(&empty);
    let mut by_offset: BTreeMap<u64, Vec<Rela>> = BTreeMap::new();
    for r in &rs.entries {
        by_offset.entry(r.offset).or_default().push(*r);
        if r.offset % DESC_SIZE != 0 && r.offset % DESC_SIZE != 8 {
            let index = (r.offset / DESC_SIZE) as usize;
            return Err(Error::new(
                ErrorKind::BadParam,
                Location::Param { index },
                format!(
                    "a relocation at offset {:#x}, outside the name and arg fields",
                    r.offset
                ),
            ));
        }
    }
    for index in 0..(ps.size / DESC_SIZE) as usize {
        let p = check_desc(file, syms, &by_offset, layout, ps, index)
            .map_err(|m| Error::new(ErrorKind::BadParam, Location::Param { index }, m))?;
        if !names.insert(p.name) {
            return Err(Error::new(
                ErrorKind::BadParam,
                Location::Param { index },
                format!("a second parameter named `{}`", p.name),
            ));
        }
        out.push(p);
    }
    let kinds: BTreeMap<&str, ParamType> = out.iter().map(|p| (p.name, p.kind)).collect();
    for (name, ty) in info.parm_types() {
        match kinds.get(name) {
            Some(k) if k.name() == ty => {}
            found => {
                return Err(Error::new(
                    ErrorKind::BadParam,
                    Location::Modinfo,
                    format!(
                        "parmtype={name}:{ty} but the descriptor says {}",
                        found.map_or("nothing (no such parameter)", |k| k.name())
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn check_desc<'a>(
    file: &ElfFile<'a>,
    syms: &SymbolTable<'a>,
    by_offset: &BTreeMap<u64, Vec<Rela>>,
    layout: &Layout,
    ps: &Section<'a>,
    index: usize,
) -> core::result::Result<Param<'a>, String> {
    let base = index as u64 * DESC_SIZE;
    let d = &ps.data[base as usize..(base + DESC_SIZE) as usize];
    let raw_type = u32::from_le_bytes([d[16], d[17], d[18], d[19]]);
    let perm = u16::from_le_bytes([d[20], d[21]]);
    let flags = u16::from_le_bytes([d[22], d[23]]);
    let kind =
        ParamType::from_raw(raw_type).ok_or_else(|| format!("type {raw_type} is not 1..=6"))?;
    if perm & !0o777 != 0 || perm & 0o002 != 0 || flags != 0 {
        return Err(format!(
            "perm {perm:#o} / flags {flags:#x}: mode bits, never world-writable, and no flags"
        ));
    }
    let (nsec, noff) = target(syms, by_offset, base, "name")?;
    let nsec = &file.sections[nsec];
    let name = nsec
        .data
        .get(noff as usize..)
        .filter(|_| noff < nsec.data.len() as u64)
        .and_then(|rest| rest.iter().position(|&b| b == 0).map(|end| &rest[..end]))
        .and_then(|b| core::str::from_utf8(b).ok())
        .ok_or_else(|| {
            format!(
                "the name is not a NUL-terminated string inside `{}`",
                nsec.name
            )
        })?;
    if !is_ident(name) {
        return Err(format!(
            "name `{name}` is not 1 to 55 characters of [A-Za-z0-9_]"
        ));
    }
    let (asec, aoff) = target(syms, by_offset, base + 8, "arg")?;
    let a = &file.sections[asec];
    if layout
        .placement(asec)
        .is_none_or(|p| p.region != Region::Data)
    {
        return Err(format!(
            "parameter `{name}`: its variable is in `{}`, not in writable data",
            a.name
        ));
    }
    if aoff
        .checked_add(kind.width())
        .is_none_or(|end| end > a.size)
    {
        return Err(format!(
            "parameter `{name}`: its {}-byte variable lies outside `{}`",
            kind.width(),
            a.name
        ));
    }
    Ok(Param {
        name,
        kind,
        perm,
        section: asec,
        offset: aoff,
    })
}
