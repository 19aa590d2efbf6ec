//! One test per relocation type (synthetic objects), and the relocation refusals.

use alloc::vec;
use alloc::vec::Vec;

use object::elf;

use super::builder::{Obj, R};
use super::fake::{KBASE, Kernel, MBASE, load};
use crate::ErrorKind;
use crate::layout::Region;
use crate::rela::RelocType;
use crate::relocate::compute;
use crate::resolve::Exported;

/// Symbol indices of `Obj::basic()`, plus `small` (6, absolute 0x1234) and `big` (7,
/// absolute 0x8000_0000) added by `object_with`.
const VAR: u32 = 4;
const EXT: u32 = 5;
const SMALL: u32 = 6;
const BIG: u32 = 7;
/// Where in `.text` the relocation under test is.
const AT: u64 = 16;

fn object_with(entries: Vec<R>) -> Vec<u8> {
    let mut o = Obj::basic();
    o.sym(
        "small",
        elf::SHN_ABS,
        0x1234,
        elf::STB_GLOBAL,
        elf::STT_NOTYPE,
    );
    o.sym(
        "big",
        elf::SHN_ABS,
        0x8000_0000,
        elf::STB_GLOBAL,
        elf::STT_NOTYPE,
    );
    o.rela(1, entries);
    o.build()
}

struct Applied {
    /// The 8 bytes at `.text + AT` after loading.
    field: [u8; 8],
    /// P: the field's address.
    p: u64,
    ext: u64,
    var: u64,
    /// The GOT's first slot: (address, contents), if the layout has a GOT.
    got: Option<(u64, u64)>,
}

/// The fake kernel, exporting `ext` at `ext_addr`.
fn kernel(ext_addr: u64) -> Kernel {
    let mut k = Kernel::new();
    k.map.insert(
        "ext".into(),
        Exported {
            address: ext_addr,
            gpl_only: false,
            owner: None,
        },
    );
    k
}

const EXT_ADDR: u64 = KBASE + 0x4321;

fn apply(rtype: u32, sym: u32, addend: i64) -> crate::Result<Applied> {
    apply_with(rtype, sym, addend, EXT_ADDR)
}

fn apply_with(rtype: u32, sym: u32, addend: i64, ext_addr: u64) -> crate::Result<Applied> {
    let data = object_with(vec![R {
        offset: AT,
        sym,
        rtype,
        addend,
    }]);
    let k = kernel(ext_addr);
    let (m, mut mem, _) = load(&data, "t.ko", &k, MBASE)?;
    let l = m.layout().clone();
    let img = mem.image(&l);
    let text = m.section_address(&img, 1).unwrap();
    let var = m.section_address(&img, 2).unwrap() + 8;
    let got = (!l.got_symbols.is_empty()).then(|| {
        let a = img.addr(Region::Rodata) + l.got_offset;
        (
            a,
            u64::from_le_bytes(img.read(a, 8).unwrap().try_into().unwrap()),
        )
    });
    let field = img.read(text + AT, 8).unwrap().try_into().unwrap();
    Ok(Applied {
        field,
        p: text + AT,
        ext: k.addr("ext"),
        var,
        got,
    })
}

fn le32(f: &[u8; 8]) -> u32 {
    u32::from_le_bytes(f[..4].try_into().unwrap())
}

fn le64(f: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*f)
}

fn kind_of(r: crate::Result<Applied>) -> ErrorKind {
    match r {
        Ok(_) => panic!("the module was accepted"),
        Err(e) => e.kind,
    }
}

#[test]
fn r_x86_64_64_writes_s_plus_a() {
    let a = apply(elf::R_X86_64_64, EXT, 5).unwrap();
    assert_eq!(le64(&a.field), a.ext + 5);
}

#[test]
fn r_x86_64_pc32_writes_s_plus_a_minus_p() {
    let a = apply(elf::R_X86_64_PC32, VAR, -4).unwrap();
    assert_eq!(
        le32(&a.field),
        (a.var.wrapping_sub(4).wrapping_sub(a.p)) as u32
    );
    // Only the 4 bytes of the field are written.
    assert_eq!(&a.field[4..], &[0; 4]);
}

#[test]
fn r_x86_64_plt32_is_pc32_to_the_symbol() {
    let a = apply(elf::R_X86_64_PLT32, EXT, -4).unwrap();
    let want = a.ext as i128 - 4 - a.p as i128;
    assert_eq!(le32(&a.field) as i32 as i128, want);
}

#[test]
fn r_x86_64_32_zero_extends() {
    let a = apply(elf::R_X86_64_32, SMALL, 2).unwrap();
    assert_eq!(le32(&a.field), 0x1236);
}

#[test]
fn r_x86_64_32_refuses_a_module_address() {
    // A module address does not fit in 32 bits zero-extended.
    assert_eq!(
        kind_of(apply(elf::R_X86_64_32, VAR, 0)),
        ErrorKind::RelocationOverflow
    );
}

#[test]
fn r_x86_64_32s_sign_extends_a_kernel_address() {
    let a = apply(elf::R_X86_64_32S, VAR, 0).unwrap();
    assert_eq!(le32(&a.field) as i32 as i64 as u64, a.var);
}

#[test]
fn r_x86_64_32s_refuses_2_gib() {
    assert_eq!(
        kind_of(apply(elf::R_X86_64_32S, BIG, 0)),
        ErrorKind::RelocationOverflow
    );
    // One below fits.
    let a = apply(elf::R_X86_64_32S, BIG, -1).unwrap();
    assert_eq!(le32(&a.field), 0x7fff_ffff);
}

#[test]
fn r_x86_64_pc64_writes_64_bits() {
    let a = apply(elf::R_X86_64_PC64, EXT, 3).unwrap();
    assert_eq!(le64(&a.field), a.ext.wrapping_add(3).wrapping_sub(a.p));
}

fn check_got(rtype: u32, sym: u32) {
    let a = apply(rtype, sym, -4).unwrap();
    let (slot, contents) = a.got.expect("a GOT");
    let s = if sym == EXT { a.ext } else { a.var };
    assert_eq!(contents, s, "the GOT slot holds the symbol's address");
    assert_eq!(
        le32(&a.field) as i32 as i128,
        slot as i128 - 4 - a.p as i128
    );
}

#[test]
fn r_x86_64_gotpcrel_goes_through_the_module_got() {
    check_got(elf::R_X86_64_GOTPCREL, EXT);
}

#[test]
fn r_x86_64_gotpcrelx_goes_through_the_module_got() {
    check_got(elf::R_X86_64_GOTPCRELX, VAR);
}

#[test]
fn r_x86_64_rex_gotpcrelx_goes_through_the_module_got() {
    check_got(elf::R_X86_64_REX_GOTPCRELX, EXT);
}

#[test]
fn got_slots_are_shared_per_symbol() {
    let data = object_with(vec![
        R {
            offset: 0,
            sym: EXT,
            rtype: elf::R_X86_64_GOTPCREL,
            addend: -4,
        },
        R {
            offset: 8,
            sym: EXT,
            rtype: elf::R_X86_64_REX_GOTPCRELX,
            addend: -4,
        },
        R {
            offset: 16,
            sym: VAR,
            rtype: elf::R_X86_64_GOTPCRELX,
            addend: -4,
        },
    ]);
    let (m, _, _) = load(&data, "t.ko", &kernel(EXT_ADDR), MBASE).unwrap();
    assert_eq!(m.layout().got_symbols, vec![EXT as usize, VAR as usize]);
    // The GOT follows .rodata (16 bytes) in the read-only region.
    assert_eq!(m.layout().got_offset, 16);
    assert_eq!(m.layout().used(Region::Rodata), 32);
}

#[test]
fn r_x86_64_none_writes_nothing() {
    let a = apply(elf::R_X86_64_NONE, 0, 0).unwrap();
    assert_eq!(a.field, [0; 8]);
}

#[test]
fn pc32_to_a_far_symbol_overflows() {
    // A symbol 4 GiB below the module cannot be reached with 32 bits.
    let e = apply_with(elf::R_X86_64_PC32, EXT, -4, MBASE - (4 << 30))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::RelocationOverflow);
    assert!(
        e.message.contains("R_X86_64_PC32") && e.message.contains("`ext`"),
        "{e}"
    );
    assert!(
        matches!(e.location, crate::Location::Relocation { index: 0, .. }),
        "{e}"
    );
}

#[test]
fn plt32_and_gotpcrel_to_a_far_symbol_overflow() {
    // The direct map, far below the top 2 GiB.
    let far = 0xffff_8880_0000_0000;
    assert_eq!(
        kind_of(apply_with(elf::R_X86_64_PLT32, EXT, -4, far)),
        ErrorKind::RelocationOverflow
    );
    // The GOT slot is near, so GOTPCREL reaches a far symbol.
    let a = apply_with(elf::R_X86_64_GOTPCREL, EXT, -4, far).unwrap();
    assert_eq!(a.got.unwrap().1, far);
}

#[test]
fn compute_checks_every_width() {
    use RelocType::*;
    assert!(compute(Abs64, u64::MAX, 1, 0, 0).is_err());
    assert!(compute(Abs64, u64::MAX, 0, 0, 0).is_ok());
    assert!(compute(Abs64, 0, i64::MIN, 0, 0).is_ok());
    assert!(compute(Abs32, 0, -1, 0, 0).is_err());
    assert!(compute(Abs32, u64::from(u32::MAX), 0, 0, 0).is_ok());
    assert!(compute(Abs32, u64::from(u32::MAX), 1, 0, 0).is_err());
    assert!(compute(Abs32S, 0xffff_ffff_8000_0000, 0, 0, 0).is_ok());
    assert!(compute(Abs32S, 0xffff_ffff_7fff_ffff, 0, 0, 0).is_err());
    assert!(compute(Pc32, 0x8000_0000 + 99, 0, 100, 0).is_ok());
    assert!(compute(Pc32, 0x8000_0000 + 100, 0, 100, 0).is_err());
    assert!(compute(Pc32, 100, 0, 0x8000_0000 + 100, 0).is_ok());
    assert!(compute(Pc32, 99, 0, 0x8000_0000 + 100, 0).is_err());
    // 64-bit wrapping, as the CPU adds: from the top 2 GiB to the bottom 2 GiB fits.
    assert!(compute(Plt32, 0x1000, 0, 0xffff_ffff_a000_0000, 0).is_ok());
    assert!(compute(Plt32, 0, 0, 0xffff_8000_0000_0000, 0).is_err());
    assert!(compute(Pc64, u64::MAX, 0, 0, 0).is_ok());
    assert!(compute(Pc64, 0, 0, u64::MAX, 0).is_err());
    assert!(compute(Pc64, 0, i64::MIN, 1, 0).is_err());
    assert!(compute(GotPcRel, 0, 0, 0, 0x8000_0000).is_err());
    assert!(compute(GotPcRelX, 0, 0, 0, 0x7fff_ffff).is_ok());
    assert_eq!(
        compute(RexGotPcRelX, 0, -4, 0x1000, 0x2000).unwrap()[..4],
        0xffcu32.to_le_bytes()
    );
}

#[test]
fn unknown_types_are_refused_by_name() {
    for (t, name) in [
        (elf::R_X86_64_GOT32, "R_X86_64_GOT32"),
        (elf::R_X86_64_COPY, "R_X86_64_COPY"),
        (elf::R_X86_64_RELATIVE, "R_X86_64_RELATIVE"),
        (elf::R_X86_64_16, "R_X86_64_16"),
        (elf::R_X86_64_TPOFF32, "R_X86_64_TPOFF32"),
        (elf::R_X86_64_GOTPC32, "R_X86_64_GOTPC32"),
        (200, "an unknown type"),
    ] {
        let e = apply(t, EXT, 0).err().unwrap();
        assert_eq!(e.kind, ErrorKind::UnknownRelocation, "{name}");
        assert!(e.message.contains(name), "{name}: {e}");
    }
}

#[test]
fn a_relocation_past_its_section_is_refused() {
    // .text is 64 bytes: an 8-byte field at 57 ends past it, at 56 it fits.
    let one = |offset| {
        let data = object_with(vec![R {
            offset,
            sym: EXT,
            rtype: elf::R_X86_64_64,
            addend: 0,
        }]);
        load(&data, "t.ko", &kernel(EXT_ADDR), MBASE).map(|_| ())
    };
    assert!(one(56).is_ok());
    assert_eq!(one(57).unwrap_err().kind, ErrorKind::RelocationOutOfBounds);
    assert_eq!(
        one(u64::MAX - 2).unwrap_err().kind,
        ErrorKind::RelocationOutOfBounds
    );
}

#[test]
fn two_relocations_on_the_same_bytes_are_refused() {
    let data = object_with(vec![
        R {
            offset: 8,
            sym: EXT,
            rtype: elf::R_X86_64_64,
            addend: 0,
        },
        R {
            offset: 12,
            sym: EXT,
            rtype: elf::R_X86_64_PC32,
            addend: 0,
        },
    ]);
    let e = load(&data, "t.ko", &kernel(EXT_ADDR), MBASE).err().unwrap();
    assert_eq!(e.kind, ErrorKind::BadRelocation);
    assert!(
        matches!(e.location, crate::Location::Relocation { index: 1, .. }),
        "{e}"
    );
}

#[test]
fn a_relocation_into_bss_is_refused() {
    let mut o = Obj::basic();
    o.rela(
        4,
        vec![R {
            offset: 0,
            sym: EXT,
            rtype: elf::R_X86_64_64,
            addend: 0,
        }],
    );
    let e = load(&o.build(), "t.ko", &kernel(EXT_ADDR), MBASE)
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::BadRelocation);
}

#[test]
fn a_relocation_against_the_null_symbol_is_refused() {
    assert_eq!(
        kind_of(apply(elf::R_X86_64_64, 0, 0)),
        ErrorKind::BadSymbolIndex
    );
}

#[test]
fn a_relocation_against_a_symbol_past_the_table_is_refused() {
    let e = apply(elf::R_X86_64_64, 99, 0).err().unwrap();
    assert_eq!(e.kind, ErrorKind::BadSymbolIndex);
    assert!(e.message.contains("99"), "{e}");
}

#[test]
fn a_relocation_against_modinfo_is_refused() {
    let mut o = Obj::basic();
    let mi = o
        .sections
        .iter()
        .position(|s| s.name == ".modinfo")
        .unwrap() as u16
        + 1;
    // Globals must follow locals: rebuild with a local section symbol for .modinfo first.
    o.syms.insert(
        0,
        super::builder::Sym {
            name: "",
            value: 0,
            size: 0,
            bind: elf::STB_LOCAL,
            kind: elf::STT_SECTION,
            shndx: mi,
        },
    );
    o.rela(
        1,
        vec![R {
            offset: 0,
            sym: 1,
            rtype: elf::R_X86_64_64,
            addend: 0,
        }],
    );
    let e = load(&o.build(), "t.ko", &kernel(EXT_ADDR), MBASE)
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::SymbolNotLoaded);
}
