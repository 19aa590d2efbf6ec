//! Malformed modules: each made from a real one by breaking one thing, each refused with its
//! own error kind (the list, then the rest of the checks).

use alloc::vec::Vec;

use object::elf;

use super::fake::{Kernel, MBASE, load};
use super::fixtures::{EXPORTER, HELLO_C, patched};
use super::raw::*;
use crate::{Error, ErrorKind, Location};

fn try_load(d: &[u8], k: &Kernel) -> Error {
    match load(d, "hello_c.ko", k, MBASE) {
        Ok(_) => panic!("the module was accepted"),
        Err(e) => e,
    }
}

/// A test that breaks `hello_c.ko` with `$mutate` and expects `ErrorKind::$kind`.
macro_rules! refused {
    ($name:ident, $kind:ident, |$d:ident| $mutate:expr) => {
        #[test]
        fn $name() {
            let mut $d: Vec<u8> = HELLO_C.to_vec();
            $mutate;
            let e = try_load(&$d, &Kernel::new());
            assert_eq!(e.kind, ErrorKind::$kind, "{e}");
        }
    };
}

fn hdr(d: &[u8], name: &str) -> usize {
    section(d, name).hdr
}

fn set_sec(d: &mut [u8], name: &str, field: usize, w: usize, v: u64) {
    let h = hdr(d, name);
    wr(d, h + field, w, v);
}

fn set_type(d: &mut [u8], name: &str, t: impl Into<u64>) {
    set_sec(d, name, SH_TYPE, 4, t.into());
}

fn or_flags(d: &mut [u8], name: &str, bits: u64) {
    let h = hdr(d, name);
    let f = rd(d, h + SH_FLAGS, 8);
    wr(d, h + SH_FLAGS, 8, f | bits);
}

fn first_rela(d: &[u8]) -> usize {
    section(d, ".rela.init.text").offset as usize
}

fn sym_field(d: &mut [u8], name: &str, field: usize, w: usize, v: u64) {
    let at = sym_off(d, find_sym(d, name)) + field;
    wr(d, at, w, v);
}

// ---- The list ----

refused!(truncated_to_less_than_a_header, Truncated, |d| d
    .truncate(40));
refused!(truncated_before_the_section_headers, Truncated, |d| d
    .truncate(d.len() / 2));
refused!(bad_magic, BadMagic, |d| d[1] = b'X');
refused!(bad_class, BadClass, |d| d[4] = elf::ELFCLASS32);
refused!(bad_data_encoding, BadDataEncoding, |d| d[5] =
    elf::ELFDATA2MSB);
refused!(bad_machine, BadMachine, |d| wr(
    &mut d,
    18,
    2,
    u64::from(elf::EM_386)
));
refused!(bad_type_executable, BadType, |d| wr(
    &mut d,
    16,
    2,
    u64::from(elf::ET_EXEC)
));
refused!(bad_type_shared_object, BadType, |d| wr(
    &mut d,
    16,
    2,
    u64::from(elf::ET_DYN)
));
refused!(section_offset_past_the_end, SectionOutOfBounds, |d| {
    let len = d.len() as u64;
    set_sec(&mut d, ".init.text", SH_OFFSET, 8, len)
});
refused!(
    section_size_wrapping_the_address_space,
    SectionOutOfBounds,
    |d| set_sec(&mut d, ".rodata", SH_SIZE, 8, u64::MAX - 4)
);
refused!(overlapping_sections, OverlappingSections, |d| {
    let other = section(&d, ".init.text").offset;
    set_sec(&mut d, ".exit.text", SH_OFFSET, 8, other)
});
refused!(
    section_overlapping_the_section_headers,
    OverlappingSections,
    |d| {
        let shoff = rd(&d, 0x28, 8);
        set_sec(&mut d, ".rodata", SH_OFFSET, 8, shoff)
    }
);
refused!(
    section_overlapping_the_elf_header,
    OverlappingSections,
    |d| set_sec(&mut d, ".rodata", SH_OFFSET, 8, 8)
);
refused!(bad_string_index_in_a_section_name, BadStringIndex, |d| {
    set_sec(&mut d, ".rodata", SH_NAME, 4, 0xffff)
});
refused!(bad_string_index_in_a_symbol_name, BadStringIndex, |d| {
    sym_field(&mut d, "init_module", ST_NAME, 4, 0xffff_fff0)
});
refused!(bad_symbol_index_in_a_relocation, BadSymbolIndex, |d| {
    let r = first_rela(&d);
    wr(&mut d, r + R_INFO + 4, 4, 9999)
});
refused!(symbol_in_a_section_past_the_table, BadSymbolSection, |d| {
    sym_field(&mut d, "init_module", ST_SHNDX, 2, 500)
});
refused!(symbol_in_a_reserved_section, BadSymbolSection, |d| {
    sym_field(&mut d, "init_module", ST_SHNDX, 2, 0xff10)
});
refused!(common_symbol, BadSymbolSection, |d| sym_field(
    &mut d,
    "init_module",
    ST_SHNDX,
    2,
    u64::from(elf::SHN_COMMON)
));
refused!(symbol_in_the_null_section, BadSymbolSection, |d| {
    // A defined symbol whose section index names a SHT_NULL section.
    set_type(&mut d, ".comment", elf::SHT_NULL);
    let comment = section(&d, ".comment").index as u64;
    sym_field(&mut d, "init_module", ST_SHNDX, 2, comment)
});
refused!(relocation_outside_its_section, RelocationOutOfBounds, |d| {
    let r = first_rela(&d);
    let size = section(&d, ".init.text").size;
    wr(&mut d, r + R_OFFSET, 8, size - 2)
});
refused!(
    writable_and_executable_section,
    WritableAndExecutable,
    |d| or_flags(&mut d, ".init.text", elf::SHF_WRITE.into())
);

#[test]
fn unknown_relocation_type_is_named() {
    let mut d = HELLO_C.to_vec();
    let r = first_rela(&d);
    wr(&mut d, r + R_INFO, 4, u64::from(elf::R_X86_64_TPOFF32));
    let e = try_load(&d, &Kernel::new());
    assert_eq!(e.kind, ErrorKind::UnknownRelocation);
    assert!(e.message.contains("R_X86_64_TPOFF32"), "{e}");
    assert!(
        matches!(e.location, Location::Relocation { index: 0, .. }),
        "{e}"
    );
}

#[test]
fn overflowing_relocation() {
    // printk in the direct map, far below the top 2 GiB: the PLT32 call cannot reach it.
    let mut k = Kernel::new();
    k.map.get_mut("printk").unwrap().address = 0xffff_8880_0000_0000;
    let e = try_load(HELLO_C, &k);
    assert_eq!(e.kind, ErrorKind::RelocationOverflow);
    assert!(
        e.message.contains("printk") && e.message.contains("R_X86_64_PLT32"),
        "{e}"
    );
    assert!(e.message.contains("A -0x4,"), "{e}");
}

#[test]
fn undefined_symbol_is_named() {
    let mut k = Kernel::new();
    k.map.remove("printk");
    let e = try_load(HELLO_C, &k);
    assert_eq!(e.kind, ErrorKind::UndefinedSymbol);
    assert!(e.message.contains("printk"), "{e}");
    assert!(
        matches!(e.location, Location::Symbol { ref name, .. } if name == "printk"),
        "{e}"
    );
}

#[test]
fn gpl_only_symbol_without_a_gpl_license() {
    let mut k = Kernel::new();
    k.map.get_mut("printk").unwrap().gpl_only = true;
    // Accepted with license=GPL...
    load(HELLO_C, "hello_c.ko", &k, MBASE).unwrap();
    // ...refused with a license that is not GPL-compatible, naming the symbol.
    let bsd = patched(HELLO_C, "license=GPL", "license=BSD");
    let e = try_load(&bsd, &k);
    assert_eq!(e.kind, ErrorKind::GplOnlySymbol);
    assert!(e.message.contains("printk"), "{e}");
}

// ---- The other header checks ----

refused!(bad_version, BadVersion, |d| d[6] = 0);
refused!(bad_e_version, BadVersion, |d| wr(&mut d, 20, 4, 2));
refused!(bad_os_abi, BadOsAbi, |d| d[7] = elf::ELFOSABI_FREEBSD);
refused!(program_headers, BadHeader, |d| wr(&mut d, 0x38, 2, 1));
refused!(bad_ehsize, BadHeader, |d| wr(&mut d, 0x34, 2, 52));
refused!(bad_shentsize, BadHeader, |d| wr(&mut d, 0x3a, 2, 40));
refused!(entry_point_in_a_relocatable, BadHeader, |d| wr(
    &mut d, 0x18, 8, 0x1000
));
refused!(no_sections, BadHeader, |d| wr(&mut d, 0x3c, 2, 0));
refused!(section_name_table_out_of_range, BadStringTable, |d| wr(
    &mut d, 0x3e, 2, 0xfff
));
refused!(section_name_table_not_a_string_table, BadStringTable, |d| {
    let idx = section(&d, ".rodata").index as u64;
    wr(&mut d, 0x3e, 2, idx)
});
refused!(section_zero_not_null, BadHeader, |d| {
    let shoff = rd(&d, 0x28, 8) as usize;
    wr(&mut d, shoff + SH_TYPE, 4, 1)
});

// ---- Sections ----

refused!(rel_section, BadSectionType, |d| set_type(
    &mut d,
    ".rela.init.text",
    u64::from(elf::SHT_REL)
));
refused!(dynamic_section, BadSectionType, |d| set_type(
    &mut d,
    ".comment",
    u64::from(elf::SHT_DYNSYM)
));
refused!(loaded_constructors, BadSectionType, |d| set_type(
    &mut d,
    ".rodata",
    u64::from(elf::SHT_INIT_ARRAY)
));
refused!(
    loaded_section_of_unknown_type,
    BadSectionType,
    |d| set_type(&mut d, ".rodata", 0x6000_0123u32)
);
refused!(tls_section, BadSectionFlags, |d| or_flags(
    &mut d,
    ".data",
    elf::SHF_TLS.into()
));
refused!(unknown_section_flag, BadSectionFlags, |d| or_flags(
    &mut d,
    ".data",
    0x4000_0000
));
refused!(loaded_symbol_table, BadSectionFlags, |d| or_flags(
    &mut d,
    ".symtab",
    elf::SHF_ALLOC.into()
));
refused!(alignment_not_a_power_of_two, BadAlignment, |d| set_sec(
    &mut d, ".data", SH_ALIGN, 8, 24
));
refused!(alignment_above_a_page, BadAlignment, |d| set_sec(
    &mut d, ".data", SH_ALIGN, 8, 8192
));
refused!(huge_bss, NobitsTooLarge, |d| set_sec(
    &mut d,
    ".bss",
    SH_SIZE,
    8,
    1 << 40
));
refused!(module_too_large, TooLarge, |d| set_sec(
    &mut d,
    ".bss",
    SH_SIZE,
    8,
    crate::MAX_IMAGE_SIZE
));
refused!(
    relocation_table_linked_to_a_non_symbol_table,
    BadSectionLink,
    |d| set_sec(&mut d, ".rela.init.text", SH_LINK, 4, 1)
);
refused!(relocation_table_for_the_null_section, BadSectionLink, |d| {
    set_sec(&mut d, ".rela.init.text", SH_INFO, 4, 0)
});
refused!(
    relocation_table_for_a_section_past_the_table,
    BadSectionLink,
    |d| set_sec(&mut d, ".rela.init.text", SH_INFO, 4, 999)
);
refused!(relocation_table_of_a_partial_entry, BadSectionLink, |d| {
    set_sec(&mut d, ".rela.init.text", SH_SIZE, 8, 25)
});
refused!(two_relocation_tables_for_one_section, BadSectionLink, |d| {
    let t = section(&d, ".init.text").index as u64;
    set_sec(&mut d, ".rela.exit.text", SH_INFO, 4, t)
});
refused!(
    symbol_table_linked_to_a_non_string_table,
    BadSectionLink,
    |d| {
        let t = section(&d, ".rodata").index as u64;
        let h = symtab(&d).hdr;
        wr(&mut d, h + SH_LINK, 4, t)
    }
);
refused!(string_table_without_a_final_nul, BadStringTable, |d| {
    let s = section(&d, ".strtab");
    let at = (s.offset + s.size - 1) as usize;
    d[at] = b'x'
});

// ---- Symbols ----

refused!(no_symbol_table, NoSymbolTable, |d| {
    let h = symtab(&d).hdr;
    wr(&mut d, h + SH_TYPE, 4, u64::from(elf::SHT_PROGBITS))
});
refused!(two_symbol_tables, BadSymbolTable, |d| set_type(
    &mut d,
    ".comment",
    u64::from(elf::SHT_SYMTAB)
));
refused!(symbol_table_of_a_partial_entry, BadSymbolTable, |d| {
    let h = symtab(&d).hdr;
    let size = rd(&d, h + SH_SIZE, 8);
    wr(&mut d, h + SH_SIZE, 8, size - 1)
});
refused!(
    symbol_table_first_global_past_the_end,
    BadSymbolTable,
    |d| {
        let h = symtab(&d).hdr;
        wr(&mut d, h + SH_INFO, 4, 10_000)
    }
);
refused!(global_symbol_among_the_locals, BadSymbol, |d| {
    let h = symtab(&d).hdr;
    let first_global = rd(&d, h + SH_INFO, 4);
    wr(&mut d, h + SH_INFO, 4, first_global + 1)
});
refused!(tls_symbol, BadSymbol, |d| sym_field(
    &mut d,
    "init_module",
    ST_INFO,
    1,
    u64::from((elf::STB_GLOBAL << 4) | elf::STT_TLS)
));
refused!(unique_symbol, BadSymbol, |d| sym_field(
    &mut d,
    "init_module",
    ST_INFO,
    1,
    u64::from((elf::STB_GNU_UNIQUE << 4) | elf::STT_FUNC)
));
refused!(symbol_past_its_section, BadSymbol, |d| sym_field(
    &mut d,
    "init_module",
    ST_VALUE,
    8,
    0x10_0000
));
refused!(null_symbol_not_null, BadSymbol, |d| {
    let at = sym_off(&d, 0) + ST_VALUE;
    wr(&mut d, at, 8, 1)
});
refused!(symbol_defined_twice, BadSymbol, |d| {
    // Rename cleanup_module's string to init_module's: two global definitions of one name.
    let init = rd(&d, sym_off(&d, find_sym(&d, "init_module")) + ST_NAME, 4);
    sym_field(&mut d, "cleanup_module", ST_NAME, 4, init)
});
refused!(init_module_not_a_function, BadEntryPoint, |d| sym_field(
    &mut d,
    "init_module",
    ST_INFO,
    1,
    u64::from((elf::STB_GLOBAL << 4) | elf::STT_OBJECT)
));
refused!(cleanup_module_in_data, BadEntryPoint, |d| {
    let data = section(&d, ".data").index as u64;
    sym_field(&mut d, "cleanup_module", ST_SHNDX, 2, data);
    sym_field(&mut d, "cleanup_module", ST_VALUE, 8, 0);
    sym_field(&mut d, "cleanup_module", ST_SIZE, 8, 0)
});

// ---- Metadata ----

refused!(modinfo_entry_without_equals, BadModinfo, |d| d =
    patched(&d, "license=GPL", "licenseXGPL"));
refused!(modinfo_not_utf8, BadModinfo, |d| {
    let at = d.windows(11).position(|w| w == b"license=GPL").unwrap();
    d[at + 9] = 0xff
});
refused!(bad_module_name, BadName, |d| d =
    patched(&d, "name=hello_c", "name=hel/o_c"));
refused!(param_of_unknown_type, BadParam, |d| {
    let p = section(&d, ".sheaf.params").offset as usize;
    wr(&mut d, p + 16, 4, 9)
});
refused!(world_writable_param, BadParam, |d| {
    let p = section(&d, ".sheaf.params").offset as usize;
    wr(&mut d, p + 20, 2, 0o666)
});
refused!(param_type_disagreeing_with_parmtype, BadParam, |d| {
    let p = section(&d, ".sheaf.params").offset as usize;
    wr(&mut d, p + 16, 4, 2)
});
refused!(param_without_its_arg_relocation, BadParam, |d| {
    // Move the second relocation (descriptor 0's arg) onto descriptor 0's type field.
    let r = section(&d, ".rela.sheaf.params").offset as usize + 24;
    wr(&mut d, r + R_OFFSET, 8, 16)
});

#[test]
fn export_of_a_symbol_the_module_does_not_define() {
    let d = patched(EXPORTER, "exporter_calls\0", "exporter_callz\0");
    let e = try_load(&d, &Kernel::new());
    assert_eq!(e.kind, ErrorKind::BadExport);
    assert!(e.message.contains("exporter_callz"), "{e}");
}

#[test]
fn image_of_the_wrong_size_is_refused() {
    use crate::relocate::{Image, RegionMem};
    let m = crate::Module::parse(HELLO_C, "hello_c.ko").unwrap();
    let mut small = alloc::vec![0u8; 4096];
    let mut regions: [RegionMem<'_>; crate::layout::REGIONS] =
        core::array::from_fn(|_| RegionMem::empty());
    regions[0] = RegionMem {
        addr: MBASE,
        bytes: &mut small,
    };
    let e = Image::new(m.layout(), regions).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadImage);
}

#[test]
fn every_refusal_message_says_where() {
    // The location and message make it to Display, for insmod to print.
    let mut d = HELLO_C.to_vec();
    or_flags(&mut d, ".init.text", elf::SHF_WRITE.into());
    let e = try_load(&d, &Kernel::new());
    let text = alloc::format!("{e}");
    assert!(
        text.starts_with("writable and executable section: section "),
        "{text}"
    );
    assert!(text.contains("`.init.text`"), "{text}");
}

// ---- More of the checks, one test each ----

refused!(elf_flags_set, BadHeader, |d| wr(&mut d, 0x30, 4, 1));
refused!(loaded_compressed_section, BadSectionFlags, |d| or_flags(
    &mut d,
    ".rodata",
    elf::SHF_COMPRESSED.into()
));
refused!(extended_section_index_table, BadSectionType, |d| set_type(
    &mut d,
    ".comment",
    u64::from(elf::SHT_SYMTAB_SHNDX)
));
refused!(symbol_with_bits_besides_visibility, BadSymbol, |d| {
    let at = sym_off(&d, find_sym(&d, "init_module")) + 5;
    d[at] = 0x10
});
refused!(local_undefined_symbol, BadSymbol, |d| {
    // The last local symbol, made undefined.
    let first_global = rd(&d, symtab(&d).hdr + SH_INFO, 4) as usize;
    let at = sym_off(&d, first_global - 1) + ST_SHNDX;
    wr(&mut d, at, 2, 0)
});
refused!(
    symbol_with_an_extended_section_index,
    BadSymbolSection,
    |d| sym_field(
        &mut d,
        "init_module",
        ST_SHNDX,
        2,
        u64::from(elf::SHN_XINDEX)
    )
);
refused!(modinfo_second_license, BadModinfo, |d| d =
    patched(&d, "author=Sheaf", "license=MIT\0"));
refused!(modinfo_unterminated, BadModinfo, |d| {
    let s = section(&d, ".modinfo");
    let at = (s.offset + s.size - 1) as usize;
    d[at] = b'x'
});
refused!(param_variable_in_read_only_data, BadParam, |d| {
    // Descriptor 0's arg relocation, pointed at .rodata's section symbol.
    let rodata = section(&d, ".rodata").index as u64;
    let n = (symtab(&d).size / 24) as usize;
    let sym = (0..n)
        .find(|&i| {
            rd(&d, sym_off(&d, i) + ST_SHNDX, 2) == rodata
                && rd(&d, sym_off(&d, i) + ST_INFO, 1) & 0xf == 3
        })
        .unwrap();
    let r = section(&d, ".rela.sheaf.params").offset as usize + 24;
    wr(&mut d, r + R_INFO + 4, 4, sym as u64)
});

#[test]
fn overlapping_regions_are_refused() {
    use crate::relocate::{Image, RegionMem};
    let m = crate::Module::parse(HELLO_C, "hello_c.ko").unwrap();
    let l = m.layout();
    let mut bufs: Vec<Vec<u8>> = crate::Region::ALL
        .iter()
        .map(|&r| alloc::vec![0; l.size(r) as usize])
        .collect();
    // Every region at the same address.
    let mut it = bufs.iter_mut().map(|b| RegionMem {
        addr: MBASE,
        bytes: b.as_mut_slice(),
    });
    let regions = core::array::from_fn(|_| it.next().unwrap());
    assert_eq!(
        Image::new(l, regions).unwrap_err().kind,
        ErrorKind::BadImage
    );
}

refused!(loaded_null_section, BadSectionType, |d| set_type(
    &mut d,
    ".rodata",
    elf::SHT_NULL
));
