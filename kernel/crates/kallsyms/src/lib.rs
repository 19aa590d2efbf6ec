//! The kernel's symbol table (Linux's kallsyms): the function symbols of the kernel image, in a
//! compact file the host launcher packs into every initramfs (`boot/kallsyms`) and the kernel
//! reads in place at boot, to name the frames of a backtrace.
//!
//! # Format (version 1, little-endian)
//!
//! ```text
//! header   magic "SHKSYMS1" (8 bytes), count: u32, names_len: u32, base: u64
//! entries  count × { offset: u32, size: u32, name_at: u32, name_len: u32 }   sorted by offset
//! names    names_len bytes of UTF-8, the names back to back
//! ```
//!
//! A symbol's address is `base + offset`. The writer ([`write`], used by the host) sorts the
//! symbols and checks every field fits; the reader ([`Table::parse`]) checks the sizes add up,
//! and [`Table::lookup`] checks each entry it touches: a malformed file gives wrong names or
//! none, never a panic or an out-of-bounds read.

#![no_std]

extern crate alloc;

/// The file's first eight bytes.
pub const MAGIC: &[u8; 8] = b"SHKSYMS1";
/// Bytes of the header.
pub const HEADER_LEN: usize = 24;
/// Bytes of one entry.
pub const ENTRY_LEN: usize = 16;

/// A symbol found by [`Table::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// The (demangled) name; `"?"` if the file's bytes for it are not UTF-8 or out of range.
    pub name: &'a str,
    /// The symbol's start address.
    pub addr: u64,
    /// The symbol's size in bytes.
    pub size: u64,
}

/// A parsed table: the file's bytes, checked to hold `count` entries and `names_len` name
/// bytes.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    base: u64,
    entries: &'a [u8],
    names: &'a [u8],
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut w = [0; 8];
    w.copy_from_slice(b);
    Some(u64::from_le_bytes(w))
}

impl<'a> Table<'a> {
    /// Checks the header of `bytes`: `None` unless the magic is right and the entries and names
    /// it announces fit in the file.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        if bytes.get(..8)? != MAGIC {
            return None;
        }
        let count = u32_at(bytes, 8)? as usize;
        let names_len = u32_at(bytes, 12)? as usize;
        let base = u64_at(bytes, 16)?;
        let entries_end = HEADER_LEN.checked_add(count.checked_mul(ENTRY_LEN)?)?;
        let names_end = entries_end.checked_add(names_len)?;
        Some(Self {
            base,
            entries: bytes.get(HEADER_LEN..entries_end)?,
            names: bytes.get(entries_end..names_end)?,
        })
    }

    /// How many symbols the table holds.
    pub fn len(&self) -> usize {
        self.entries.len() / ENTRY_LEN
    }

    /// Whether the table holds no symbol.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address all offsets count from.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The `i`th symbol in address order (`None` past the end).
    pub fn get(&self, i: usize) -> Option<Symbol<'a>> {
        let at = i.checked_mul(ENTRY_LEN)?;
        let offset = u32_at(self.entries, at)?;
        let size = u32_at(self.entries, at + 4)?;
        let name_at = u32_at(self.entries, at + 8)? as usize;
        let name_len = u32_at(self.entries, at + 12)? as usize;
        let name = name_at
            .checked_add(name_len)
            .and_then(|end| self.names.get(name_at..end))
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("?");
        Some(Symbol {
            name,
            addr: self.base.wrapping_add(u64::from(offset)),
            size: u64::from(size),
        })
    }

    fn offset(&self, i: usize) -> u64 {
        u32_at(self.entries, i * ENTRY_LEN).map_or(u64::MAX, u64::from)
    }

    /// The symbol whose range `[addr, addr + size)` holds `addr`: the last symbol starting at
    /// or below it (binary search; on an unsorted file the answer may be wrong, never a panic).
    /// A zero-sized symbol counts as one byte long.
    pub fn lookup(&self, addr: u64) -> Option<Symbol<'a>> {
        let target = addr.checked_sub(self.base)?;
        // The first entry whose offset is above the target.
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.offset(mid) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // Walk back over symbols that start at or below `addr` but end before it (aliases and
        // nested symbols of different sizes): the few nearest are enough.
        let mut i = lo;
        for _ in 0..8 {
            i = i.checked_sub(1)?;
            let sym = self.get(i)?;
            let off = addr.wrapping_sub(sym.addr);
            if sym.addr <= addr && off < sym.size.max(1) {
                return Some(sym);
            }
        }
        None
    }

    /// Every symbol, in address order.
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Why [`write`] refused its symbols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// A symbol lies below the base or more than 4 GiB above it, or is over 4 GiB long.
    OutOfRange {
        /// The symbol's name (its first 64 bytes).
        name: ShortName,
        /// Its address.
        addr: u64,
    },
    /// More than `u32::MAX` symbols or name bytes.
    TooBig,
}

/// A symbol's name in an error, cut to 64 bytes (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortName {
    bytes: [u8; 64],
    len: usize,
}

impl ShortName {
    /// The first 64 bytes of `s` (cut at a character boundary).
    pub fn new(s: &str) -> Self {
        let mut bytes = [0; 64];
        let mut len = s.len().min(64);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Self { bytes, len }
    }

    /// The name kept.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WriteError::OutOfRange { name, addr } => write!(
                f,
                "symbol `{}` at {addr:#x} is out of the table's range",
                name.as_str()
            ),
            WriteError::TooBig => f.write_str("too many symbols or name bytes"),
        }
    }
}

/// Writes a table of `symbols` (`(address, size, name)`), counting offsets from the lowest
/// address. Sorts by address (then by size, largest first), and drops exact duplicates.
pub fn write(symbols: &[(u64, u64, &str)]) -> Result<alloc::vec::Vec<u8>, WriteError> {
    use alloc::vec::Vec;

    let mut sorted: Vec<(u64, u64, &str)> = symbols.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
    sorted.dedup();
    let base = sorted.first().map_or(0, |s| s.0);
    let count = u32::try_from(sorted.len()).map_err(|_| WriteError::TooBig)?;
    let mut entries = Vec::with_capacity(sorted.len() * ENTRY_LEN);
    let mut names = Vec::new();
    for &(addr, size, name) in &sorted {
        let out_of_range = || WriteError::OutOfRange {
            name: ShortName::new(name),
            addr,
        };
        let offset = u32::try_from(addr - base).map_err(|_| out_of_range())?;
        let size = u32::try_from(size).map_err(|_| out_of_range())?;
        let name_at = u32::try_from(names.len()).map_err(|_| WriteError::TooBig)?;
        let name_len = u32::try_from(name.len()).map_err(|_| WriteError::TooBig)?;
        names.extend_from_slice(name.as_bytes());
        for word in [offset, size, name_at, name_len] {
            entries.extend_from_slice(&word.to_le_bytes());
        }
    }
    let names_len = u32::try_from(names.len()).map_err(|_| WriteError::TooBig)?;
    let mut out = Vec::with_capacity(HEADER_LEN + entries.len() + names.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&names_len.to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&entries);
    out.extend_from_slice(&names);
    Ok(out)
}

#[cfg(test)]
mod tests;
