//! A tiny ELF64 relocatable-object writer for synthetic test modules.

use alloc::vec;
use alloc::vec::Vec;

use object::elf;

pub struct Sec {
    pub name: &'static str,
    pub sh_type: u32,
    pub flags: u64,
    pub data: Vec<u8>,
    /// Size of a `SHT_NOBITS` section.
    pub nobits: u64,
    pub align: u64,
}

pub struct Sym {
    pub name: &'static str,
    pub value: u64,
    pub size: u64,
    pub bind: u8,
    pub kind: u8,
    pub shndx: u16,
}

/// A section header: name, type, flags, offset, size, link, info, align, entsize.
type Hdr = (u32, u32, u64, u64, u64, u32, u32, u64, u64);

pub struct R {
    pub offset: u64,
    pub sym: u32,
    pub rtype: u32,
    pub addend: i64,
}

/// An object: sections 1..=n as added, then the relocation sections, `.symtab`, `.strtab`,
/// `.shstrtab`. Symbols: local ones must be added before global ones.
pub struct Obj {
    pub sections: Vec<Sec>,
    pub syms: Vec<Sym>,
    pub relas: Vec<(usize, Vec<R>)>,
}

pub const AX: u64 = (elf::SHF_ALLOC | elf::SHF_EXECINSTR) as u64;
pub const WA: u64 = (elf::SHF_ALLOC | elf::SHF_WRITE) as u64;
pub const A: u64 = elf::SHF_ALLOC as u64;

impl Obj {
    pub fn new() -> Self {
        Obj {
            sections: Vec::new(),
            syms: Vec::new(),
            relas: Vec::new(),
        }
    }

    /// Adds a section; returns its index.
    pub fn section(&mut self, name: &'static str, sh_type: u32, flags: u64, data: Vec<u8>) -> u16 {
        self.sections.push(Sec {
            name,
            sh_type,
            flags,
            data,
            nobits: 0,
            align: 8,
        });
        self.sections.len() as u16
    }

    /// Adds a symbol; returns its index.
    pub fn sym(&mut self, name: &'static str, shndx: u16, value: u64, bind: u8, kind: u8) -> u32 {
        self.syms.push(Sym {
            name,
            value,
            size: 0,
            bind,
            kind,
            shndx,
        });
        self.syms.len() as u32
    }

    pub fn rela(&mut self, target: u16, entries: Vec<R>) {
        self.relas.push((target as usize, entries));
    }

    /// `.text` (64 bytes, index 1), `.data` (32, 2), `.rodata` (16, 3), `.bss` (64, 4),
    /// `.modinfo` (5); symbols `.text` (section, 1), `.data` (section, 2), `init_module`
    /// (3, `.text`+0), `var` (4, `.data`+8), `ext` (5, undefined).
    pub fn basic() -> Self {
        let mut o = Obj::new();
        o.section(".text", elf::SHT_PROGBITS, AX, vec![0; 64]);
        o.section(".data", elf::SHT_PROGBITS, WA, vec![0; 32]);
        o.section(".rodata", elf::SHT_PROGBITS, A, vec![7; 16]);
        let bss = o.section(".bss", elf::SHT_NOBITS, WA, Vec::new());
        o.sections[bss as usize - 1].nobits = 64;
        o.section(".modinfo", elf::SHT_PROGBITS, A, b"license=GPL\0".to_vec());
        o.sym("", 1, 0, elf::STB_LOCAL, elf::STT_SECTION);
        o.sym("", 2, 0, elf::STB_LOCAL, elf::STT_SECTION);
        o.sym("init_module", 1, 0, elf::STB_GLOBAL, elf::STT_FUNC);
        o.sym("var", 2, 8, elf::STB_GLOBAL, elf::STT_OBJECT);
        o.sym("ext", 0, 0, elf::STB_GLOBAL, elf::STT_NOTYPE);
        o
    }

    pub fn build(&self) -> Vec<u8> {
        fn push_str(tab: &mut Vec<u8>, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let at = tab.len() as u32;
            tab.extend_from_slice(s.as_bytes());
            tab.push(0);
            at
        }
        fn pad(out: &mut Vec<u8>) {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
        }
        let n = self.sections.len();
        let symtab_idx = n + self.relas.len() + 1;
        let mut out = vec![0u8; 64];
        let mut shstr = vec![0u8];
        let mut strtab = vec![0u8];
        // (name, type, flags, offset, size, link, info, align, entsize)
        let mut hdrs: Vec<Hdr> = vec![(0, 0, 0, 0, 0, 0, 0, 0, 0)];
        for s in &self.sections {
            pad(&mut out);
            let off = out.len() as u64;
            out.extend_from_slice(&s.data);
            let size = if s.sh_type == elf::SHT_NOBITS {
                s.nobits
            } else {
                s.data.len() as u64
            };
            let name = push_str(&mut shstr, s.name);
            hdrs.push((name, s.sh_type, s.flags, off, size, 0, 0, s.align, 0));
        }
        for (target, entries) in &self.relas {
            pad(&mut out);
            let off = out.len() as u64;
            for r in entries {
                out.extend_from_slice(&r.offset.to_le_bytes());
                out.extend_from_slice(
                    &((u64::from(r.sym) << 32) | u64::from(r.rtype)).to_le_bytes(),
                );
                out.extend_from_slice(&r.addend.to_le_bytes());
            }
            let name = push_str(&mut shstr, ".rela.x");
            let flags = u64::from(elf::SHF_INFO_LINK);
            hdrs.push((
                name,
                elf::SHT_RELA,
                flags,
                off,
                24 * entries.len() as u64,
                symtab_idx as u32,
                *target as u32,
                8,
                24,
            ));
        }
        pad(&mut out);
        let sym_off = out.len() as u64;
        out.extend_from_slice(&[0u8; 24]);
        let first_global = 1 + self
            .syms
            .iter()
            .take_while(|s| s.bind == elf::STB_LOCAL)
            .count();
        for s in &self.syms {
            let name = push_str(&mut strtab, s.name);
            out.extend_from_slice(&name.to_le_bytes());
            out.push((s.bind << 4) | s.kind);
            out.push(0);
            out.extend_from_slice(&s.shndx.to_le_bytes());
            out.extend_from_slice(&s.value.to_le_bytes());
            out.extend_from_slice(&s.size.to_le_bytes());
        }
        let sym_size = out.len() as u64 - sym_off;
        let symname = push_str(&mut shstr, ".symtab");
        hdrs.push((
            symname,
            elf::SHT_SYMTAB,
            0,
            sym_off,
            sym_size,
            symtab_idx as u32 + 1,
            first_global as u32,
            8,
            24,
        ));
        let str_off = out.len() as u64;
        out.extend_from_slice(&strtab);
        let strname = push_str(&mut shstr, ".strtab");
        hdrs.push((
            strname,
            elf::SHT_STRTAB,
            0,
            str_off,
            strtab.len() as u64,
            0,
            0,
            1,
            0,
        ));
        let shstrname = push_str(&mut shstr, ".shstrtab");
        let shstr_off = out.len() as u64;
        out.extend_from_slice(&shstr);
        hdrs.push((
            shstrname,
            elf::SHT_STRTAB,
            0,
            shstr_off,
            shstr.len() as u64,
            0,
            0,
            1,
            0,
        ));
        pad(&mut out);
        let shoff = out.len() as u64;
        for h in &hdrs {
            out.extend_from_slice(&h.0.to_le_bytes());
            out.extend_from_slice(&h.1.to_le_bytes());
            out.extend_from_slice(&h.2.to_le_bytes());
            out.extend_from_slice(&0u64.to_le_bytes());
            out.extend_from_slice(&h.3.to_le_bytes());
            out.extend_from_slice(&h.4.to_le_bytes());
            out.extend_from_slice(&h.5.to_le_bytes());
            out.extend_from_slice(&h.6.to_le_bytes());
            out.extend_from_slice(&h.7.to_le_bytes());
            out.extend_from_slice(&h.8.to_le_bytes());
        }
        // The ELF header.
        out[..4].copy_from_slice(&elf::ELFMAG);
        out[4] = elf::ELFCLASS64;
        out[5] = elf::ELFDATA2LSB;
        out[6] = elf::EV_CURRENT;
        out[16..18].copy_from_slice(&elf::ET_REL.to_le_bytes());
        out[18..20].copy_from_slice(&elf::EM_X86_64.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        out[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&(hdrs.len() as u16).to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&(hdrs.len() as u16 - 1).to_le_bytes());
        out
    }
}
