//! Reads and patches ELF fields by their byte offsets, independently of the crate's parser:
//! the tests' way to find a field to break, and their oracle for relocations.

use alloc::string::String;
use alloc::vec::Vec;

pub const SH_NAME: usize = 0;
pub const SH_TYPE: usize = 4;
pub const SH_FLAGS: usize = 8;
pub const SH_OFFSET: usize = 24;
pub const SH_SIZE: usize = 32;
pub const SH_LINK: usize = 40;
pub const SH_INFO: usize = 44;
pub const SH_ALIGN: usize = 48;
pub const ST_NAME: usize = 0;
pub const ST_INFO: usize = 4;
pub const ST_SHNDX: usize = 6;
pub const ST_VALUE: usize = 8;
pub const ST_SIZE: usize = 16;
pub const R_OFFSET: usize = 0;
pub const R_INFO: usize = 8;
pub const R_ADDEND: usize = 16;

pub fn rd(d: &[u8], off: usize, w: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..w].copy_from_slice(&d[off..off + w]);
    u64::from_le_bytes(b)
}

pub fn wr(d: &mut [u8], off: usize, w: usize, v: u64) {
    d[off..off + w].copy_from_slice(&v.to_le_bytes()[..w]);
}

/// A section header, read raw.
#[derive(Clone, Debug)]
pub struct Shdr {
    pub index: usize,
    /// File offset of the header itself.
    pub hdr: usize,
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
}

pub fn cstr(d: &[u8], off: usize) -> String {
    let end = d[off..].iter().position(|&b| b == 0).unwrap();
    String::from_utf8(d[off..off + end].to_vec()).unwrap()
}

pub fn sections(d: &[u8]) -> Vec<Shdr> {
    let shoff = rd(d, 0x28, 8) as usize;
    let shnum = rd(d, 0x3c, 2) as usize;
    let shstrndx = rd(d, 0x3e, 2) as usize;
    let strs = rd(d, shoff + 64 * shstrndx + SH_OFFSET, 8) as usize;
    (0..shnum)
        .map(|i| {
            let h = shoff + 64 * i;
            Shdr {
                index: i,
                hdr: h,
                name: cstr(d, strs + rd(d, h + SH_NAME, 4) as usize),
                sh_type: rd(d, h + SH_TYPE, 4) as u32,
                flags: rd(d, h + SH_FLAGS, 8),
                offset: rd(d, h + SH_OFFSET, 8),
                size: rd(d, h + SH_SIZE, 8),
                link: rd(d, h + SH_LINK, 4) as u32,
                info: rd(d, h + SH_INFO, 4) as u32,
            }
        })
        .collect()
}

pub fn section(d: &[u8], name: &str) -> Shdr {
    sections(d)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no section {name}"))
}

pub fn symtab(d: &[u8]) -> Shdr {
    sections(d).into_iter().find(|s| s.sh_type == 2).unwrap()
}

/// File offset of symbol `i`.
pub fn sym_off(d: &[u8], i: usize) -> usize {
    symtab(d).offset as usize + 24 * i
}

pub fn sym_name(d: &[u8], i: usize) -> String {
    let st = symtab(d);
    let strtab = &sections(d)[st.link as usize];
    cstr(
        d,
        strtab.offset as usize + rd(d, sym_off(d, i) + ST_NAME, 4) as usize,
    )
}

pub fn find_sym(d: &[u8], name: &str) -> usize {
    let n = (symtab(d).size / 24) as usize;
    (0..n)
        .find(|&i| sym_name(d, i) == name)
        .unwrap_or_else(|| panic!("no symbol {name}"))
}

/// Relocation sections with an `SHF_ALLOC` target: (rela section, target section).
pub fn relas(d: &[u8]) -> Vec<(Shdr, Shdr)> {
    let all = sections(d);
    all.iter()
        .filter(|s| s.sh_type == 4 && all[s.info as usize].flags & 2 != 0)
        .map(|s| (s.clone(), all[s.info as usize].clone()))
        .collect()
}

/// The first relocation entry of section `rela` with type `t`: its file offset.
pub fn find_rela(d: &[u8], rela: &str, t: u32) -> usize {
    let s = section(d, rela);
    (0..(s.size / 24) as usize)
        .map(|i| s.offset as usize + 24 * i)
        .find(|&e| rd(d, e + R_INFO, 4) as u32 == t)
        .unwrap_or_else(|| panic!("no relocation of type {t} in {rela}"))
}
