//! The example modules of `modules/`, built by `cargo modbuild fixtures` into
//! `tests/fixtures/` (checked in, so these tests need no gcc or Rust module build), loaded
//! into memory against the fake kernel and checked byte by byte.

use alloc::string::String;
use alloc::vec::Vec;

use super::fake::{Kernel, MBASE, Mem, THIS, load};
use super::raw::{self, R_ADDEND, R_INFO, R_OFFSET, ST_SHNDX, ST_VALUE};
use crate::layout::Region;
use crate::params::{ParamType, ParamValue};
use crate::{ErrorKind, Image, Module, PAGE_SIZE};

pub const HELLO_C: &[u8] = include_bytes!("../../tests/fixtures/hello_c.ko");
pub const HELLO_RS: &[u8] = include_bytes!("../../tests/fixtures/hello.ko");
pub const EXPORTER: &[u8] = include_bytes!("../../tests/fixtures/exporter.ko");
pub const USER: &[u8] = include_bytes!("../../tests/fixtures/user.ko");
pub const NODEV: &[u8] = include_bytes!("../../tests/fixtures/nodev.ko");
pub const RUST_USER: &[u8] = include_bytes!("../../tests/fixtures/rust_user.ko");

pub const ALL: [(&str, &[u8]); 6] = [
    ("hello_c.ko", HELLO_C),
    ("hello.ko", HELLO_RS),
    ("exporter.ko", EXPORTER),
    ("user.ko", USER),
    ("nodev.ko", NODEV),
    ("rust_user.ko", RUST_USER),
];

/// The fake kernel with `exporter` loaded (at a base of its own), so `user` resolves.
pub fn kernel_with_exporter() -> Kernel {
    let mut k = Kernel::new();
    let base = MBASE + (64 << 20);
    let (m, mut mem, _) = load(EXPORTER, "exporter.ko", &k, base).unwrap();
    let l = m.layout().clone();
    k.add_module(&m, &mem.image(&l), 1);
    k
}

/// The address of symbol `i` of the raw file, as the oracle sees it.
fn oracle_sym(data: &[u8], m: &Module<'_>, img: &Image<'_>, k: &Kernel, i: usize) -> u64 {
    let off = raw::sym_off(data, i);
    let shndx = raw::rd(data, off + ST_SHNDX, 2) as usize;
    let value = raw::rd(data, off + ST_VALUE, 8);
    match shndx {
        0 => {
            let name = raw::sym_name(data, i);
            if name == "__this_module" {
                THIS
            } else {
                k.addr(&name)
            }
        }
        0xfff1 => value,
        s => m.section_address(img, s).unwrap() + value,
    }
}

/// Checks every byte of every loaded section: the file's bytes, except each relocation's
/// field, which holds the value the psABI formula gives (computed here independently).
fn check_image(data: &[u8], m: &Module<'_>, img: &Image<'_>, k: &Kernel) -> usize {
    let mut expected: Vec<(u64, Vec<u8>)> = Vec::new();
    for s in raw::sections(data) {
        if let Some(a) = m.section_address(img, s.index) {
            let bytes = if s.sh_type == 8 {
                alloc::vec![0; s.size as usize]
            } else {
                data[s.offset as usize..(s.offset + s.size) as usize].to_vec()
            };
            expected.push((a, bytes));
        }
    }
    let mut count = 0;
    for (rela, target) in raw::relas(data) {
        let Some(t) = m.section_address(img, target.index) else {
            continue;
        };
        for e in (0..rela.size as usize / 24).map(|j| rela.offset as usize + 24 * j) {
            let off = raw::rd(data, e + R_OFFSET, 8);
            let info = raw::rd(data, e + R_INFO, 8);
            let a = raw::rd(data, e + R_ADDEND, 8);
            let s = oracle_sym(data, m, img, k, (info >> 32) as usize);
            let p = t + off;
            let (w, v) = match info as u32 {
                1 => (8, s.wrapping_add(a)),
                2 | 4 => (4, s.wrapping_add(a).wrapping_sub(p)),
                10 | 11 => (4, s.wrapping_add(a)),
                24 => (8, s.wrapping_add(a).wrapping_sub(p)),
                9 | 41 | 42 => {
                    // The field holds slot + A - P: the slot must hold S.
                    let disp = i32::from_le_bytes(img.read(p, 4).unwrap().try_into().unwrap());
                    let slot = p.wrapping_add(disp as i64 as u64).wrapping_sub(a);
                    let got = u64::from_le_bytes(img.read(slot, 8).unwrap().try_into().unwrap());
                    assert_eq!(got, s, "GOT slot of relocation at {p:#x}");
                    (4, disp as u32 as u64)
                }
                t => panic!("relocation type {t} in a fixture"),
            };
            let (ta, tb) = expected
                .iter_mut()
                .find(|(a, b)| (*a..*a + b.len() as u64).contains(&p))
                .unwrap();
            let at = (p - *ta) as usize;
            tb[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
            count += 1;
        }
    }
    for (a, b) in &expected {
        assert_eq!(
            img.read(*a, b.len() as u64).unwrap(),
            &b[..],
            "section at {a:#x}"
        );
    }
    count
}

fn load_checked<'a>(name: &str, data: &'a [u8], k: &Kernel) -> (usize, Module<'a>, Mem) {
    let (m, mut mem, _) = load(data, name, k, MBASE).unwrap_or_else(|e| panic!("{name}: {e}"));
    let l = m.layout().clone();
    let n = check_image(data, &m, &mem.image(&l), k);
    (n, m, mem)
}

#[test]
fn every_example_loads_and_every_relocation_is_applied() {
    for (name, data) in ALL {
        let k = if name.contains("user") {
            kernel_with_exporter()
        } else {
            Kernel::new()
        };
        let (n, m, _) = load_checked(name, data, &k);
        assert!(n > 0, "{name}: no relocation checked");
        for r in Region::ALL {
            assert_eq!(m.layout().size(r) % PAGE_SIZE, 0);
            assert!(m.layout().size(r) >= m.layout().used(r));
        }
    }
}

fn placed_in(m: &Module<'_>, data: &[u8], section: &str) -> Option<Region> {
    m.layout()
        .placement(raw::section(data, section).index)
        .map(|p| p.region)
}

#[test]
fn hello_c_is_laid_out_as_linux_would() {
    let m = Module::parse(HELLO_C, "hello_c.ko").unwrap();
    let d = HELLO_C;
    assert_eq!(placed_in(&m, d, ".init.text"), Some(Region::InitText));
    assert_eq!(placed_in(&m, d, ".exit.text"), Some(Region::Text));
    assert_eq!(placed_in(&m, d, ".data"), Some(Region::Data));
    assert_eq!(placed_in(&m, d, ".bss"), Some(Region::Data));
    assert_eq!(placed_in(&m, d, ".rodata.str1.1"), Some(Region::Rodata));
    assert_eq!(placed_in(&m, d, ".eh_frame"), Some(Region::Rodata));
    // Metadata and non-ALLOC sections are not loaded.
    for s in [
        ".modinfo",
        ".sheaf.params",
        ".comment",
        ".symtab",
        ".rela.init.text",
    ] {
        assert_eq!(placed_in(&m, d, s), None, "{s}");
    }
    // Each section at its alignment, in file order within a region, none overlapping.
    let mut by_region: Vec<(Region, u64)> = Vec::new();
    for s in raw::sections(d) {
        if let Some(p) = m.layout().placement(s.index) {
            let align = raw::rd(d, s.hdr + raw::SH_ALIGN, 8).max(1);
            assert_eq!(p.offset % align, 0, "{}", s.name);
            if let Some(&(r, end)) = by_region.iter().rfind(|x| x.0 == p.region) {
                assert!(p.offset >= end, "{} in {r:?}", s.name);
            }
            by_region.push((p.region, p.offset + s.size));
        }
    }
    assert_eq!(m.layout().init_size(), PAGE_SIZE);
    assert_eq!(m.layout().core_size(), 3 * PAGE_SIZE);
}

#[test]
fn hello_c_modinfo_and_params() {
    let m = Module::parse(HELLO_C, "renamed.ko").unwrap();
    assert_eq!(m.name(), "hello_c", "name= wins over the file name");
    let i = m.info();
    assert_eq!(i.license(), Some("GPL"));
    assert!(i.is_gpl_compatible());
    assert_eq!(i.description(), Some("Hello world in C, with parameters"));
    assert_eq!(i.authors().collect::<Vec<_>>(), ["Sheaf"]);
    assert_eq!(i.parm_description("whom"), Some("who to greet"));
    let p: Vec<(&str, ParamType, u16)> = m
        .params()
        .iter()
        .map(|p| (p.name, p.kind, p.perm))
        .collect();
    assert_eq!(
        p,
        [
            ("times", ParamType::Int, 0o644),
            ("whom", ParamType::Charp, 0o444)
        ]
    );
}

fn param<'a>(m: &Module<'a>, name: &str) -> crate::params::Param<'a> {
    m.params().iter().find(|p| p.name == name).unwrap().clone()
}

#[test]
fn setting_parameters_writes_the_variables() {
    let k = Kernel::new();
    let (m, mut mem, _) = load(HELLO_C, "hello_c.ko", &k, MBASE).unwrap();
    let l = m.layout().clone();
    let mut img = mem.image(&l);
    let times = param(&m, "times");
    let at = m.param_address(&img, &times);
    // Its initial value, 1, from .data.
    assert_eq!(img.read(at, 4).unwrap(), 1i32.to_le_bytes());
    assert_eq!(
        m.set_param(&mut img, "times", Some("3")).unwrap(),
        ParamValue::Int(3)
    );
    assert_eq!(img.read(at, 4).unwrap(), 3i32.to_le_bytes());
    m.set_param(&mut img, "times", Some("-0x10")).unwrap();
    assert_eq!(img.read(at, 4).unwrap(), (-16i32).to_le_bytes());
    assert_eq!(
        m.set_param(&mut img, "whom", Some("bob")).unwrap(),
        ParamValue::Charp("bob")
    );
    for (name, value) in [
        ("times", Some("abc")),
        ("times", Some("4294967296")),
        ("times", None),
        ("nope", Some("1")),
    ] {
        let e = m.set_param(&mut img, name, value).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadParam, "{name}={value:?}");
    }
    // A failed set leaves the value alone.
    assert_eq!(img.read(at, 4).unwrap(), (-16i32).to_le_bytes());
}

#[test]
fn rust_hello_has_bool_and_int_params_and_a_got() {
    let k = Kernel::new();
    let (m, mut mem, _) = load(HELLO_RS, "hello.ko", &k, MBASE).unwrap();
    assert_eq!(m.name(), "hello");
    assert!(m.has_cleanup());
    // memset from compiler_builtins is reached through the GOT.
    assert!(!m.layout().got_symbols.is_empty());
    let l = m.layout().clone();
    let mut img = mem.image(&l);
    let loud = param(&m, "loud");
    assert_eq!(loud.kind, ParamType::Bool);
    let at = m.param_address(&img, &loud);
    assert_eq!(img.read(at, 1).unwrap(), [0]);
    m.set_param(&mut img, "loud", None).unwrap();
    assert_eq!(img.read(at, 1).unwrap(), [1]);
    m.set_param(&mut img, "loud", Some("off")).unwrap();
    assert_eq!(img.read(at, 1).unwrap(), [0]);
    m.set_param(&mut img, "times", Some("0x10")).unwrap();
    let times = param(&m, "times");
    assert_eq!(
        img.read(m.param_address(&img, &times), 4).unwrap(),
        16i32.to_le_bytes()
    );
    let init = m.init_address(&img).unwrap();
    assert!(
        (img.addr(Region::Text)..img.addr(Region::Text) + l.size(Region::Text)).contains(&init)
    );
}

#[test]
fn user_links_against_exporter_and_records_the_dependency() {
    let k = kernel_with_exporter();
    let (m, mut mem, res) = load(USER, "user.ko", &k, MBASE).unwrap();
    assert_eq!(res.uses, [1], "user uses exporter (owner 1)");
    assert!(!res.taints_proprietary);
    assert_eq!(m.info().depends().collect::<Vec<_>>(), ["exporter"]);
    let l = m.layout().clone();
    let img = mem.image(&l);
    // The call to exporter_add in user's init lands on exporter's function.
    let call = raw::find_rela(USER, ".rela.init.text", 4);
    let off = raw::rd(USER, call + R_OFFSET, 8);
    let p = m
        .section_address(&img, raw::section(USER, ".init.text").index)
        .unwrap()
        + off;
    let disp = i32::from_le_bytes(img.read(p, 4).unwrap().try_into().unwrap());
    let target = (p + 4).wrapping_add(disp as i64 as u64);
    let sym = (raw::rd(USER, call + R_INFO, 8) >> 32) as usize;
    let name = raw::sym_name(USER, sym);
    assert_eq!(target, k.addr(&name), "call to {name}");
}

#[test]
fn exporter_exports_with_the_gpl_flag() {
    let m = Module::parse(EXPORTER, "exporter.ko").unwrap();
    let x: Vec<(&str, bool)> = m.exports().iter().map(|x| (x.name, x.gpl_only)).collect();
    assert!(
        x.contains(&("exporter_add", true)) && x.contains(&("exporter_calls", false)),
        "{x:?}"
    );
}

#[test]
fn exporting_a_name_twice_is_refused() {
    let k = kernel_with_exporter();
    let e = load(EXPORTER, "exporter.ko", &k, MBASE).err().unwrap();
    assert_eq!(e.kind, ErrorKind::DuplicateExport);
}

#[test]
fn user_without_exporter_names_every_missing_symbol() {
    let e = load(USER, "user.ko", &Kernel::new(), MBASE).err().unwrap();
    assert_eq!(e.kind, ErrorKind::UndefinedSymbol);
    assert!(
        e.message.contains("exporter_add") && e.message.contains("exporter_calls"),
        "{e}"
    );
}

/// `data` with `from` replaced by `to` (same length) once.
pub fn patched(data: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = data
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from}"));
    let mut d = data.to_vec();
    d[at..at + to.len()].copy_from_slice(to.as_bytes());
    d
}

#[test]
fn a_gpl_only_symbol_is_refused_to_a_non_gpl_module() {
    let k = kernel_with_exporter();
    let bsd = patched(USER, "license=GPL", "license=BSD");
    let e = load(&bsd, "user.ko", &k, MBASE).err().unwrap();
    assert_eq!(e.kind, ErrorKind::GplOnlySymbol);
    assert!(
        e.message.contains("exporter_add") && e.message.contains("BSD"),
        "{e}"
    );
    // The same module without the GPL-only symbol would taint: see nodev as "Dual MIT/GPL".
    let (_, _, res) = load(NODEV, "nodev.ko", &k, MBASE).unwrap();
    assert!(!res.taints_proprietary);
    let prop = patched(NODEV, "Dual MIT/GPL", "Dual MIT/BSD");
    let (_, _, res) = load(&prop, "nodev.ko", &k, MBASE).unwrap();
    assert!(res.taints_proprietary);
}

#[test]
fn nodev_has_init_but_no_cleanup() {
    let k = Kernel::new();
    let (m, mut mem, _) = load(NODEV, "nodev.ko", &k, MBASE).unwrap();
    assert!(!m.has_cleanup());
    let l = m.layout().clone();
    let img = mem.image(&l);
    assert!(m.cleanup_address(&img).is_none());
    let init = m.init_address(&img).unwrap();
    assert_eq!(init, img.addr(Region::InitText));
    let secs: Vec<String> = m
        .loaded_sections(&img)
        .map(|(n, _, _, _)| n.into())
        .collect();
    assert!(secs.contains(&".init.text".into()), "{secs:?}");
}

#[test]
fn rust_user_links_against_the_c_exporter_and_this_module() {
    let k = kernel_with_exporter();
    let (m, _, res) = load(RUST_USER, "rust_user.ko", &k, MBASE).unwrap();
    assert_eq!(res.uses, [1], "rust_user uses exporter (owner 1)");
    assert!(
        m.info().is_gpl_compatible(),
        "Dual MIT/GPL may use the GPL-only exporter_add"
    );
    let this = raw::find_sym(RUST_USER, "__this_module");
    assert_eq!(res.addresses[this], THIS);
    // export_symbol_gpl! from Rust.
    let x: Vec<(&str, bool)> = m.exports().iter().map(|x| (x.name, x.gpl_only)).collect();
    assert_eq!(x, [("rust_user_answer", true)]);
    // Without exporter: both of its symbols are named.
    let e = load(RUST_USER, "rust_user.ko", &Kernel::new(), MBASE)
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::UndefinedSymbol);
    assert!(
        e.message.contains("exporter_add") && e.message.contains("exporter_calls"),
        "{e}"
    );
}

#[test]
fn functions_are_named_at_their_run_time_addresses() {
    let k = Kernel::new();
    let (m, mut mem, _) = load(NODEV, "nodev.ko", &k, MBASE).unwrap();
    let l = m.layout().clone();
    let img = mem.image(&l);
    let init = m.init_address(&img).unwrap();
    let funcs: Vec<(&str, u64, u64)> = m.functions(&img).collect();
    let (_, addr, size) = funcs
        .iter()
        .find(|(name, _, _)| *name == "init_module")
        .copied()
        .unwrap_or_else(|| panic!("init_module among {funcs:?}"));
    assert_eq!(addr, init);
    assert!(size > 0);
}

#[test]
fn data_objects_are_listed_at_their_run_time_addresses_with_their_sizes() {
    let k = Kernel::new();
    let (m, mut mem, _) = load(HELLO_C, "hello_c.ko", &k, MBASE).unwrap();
    let l = m.layout().clone();
    let img = mem.image(&l);
    let objects: Vec<(u64, u64)> = m.objects(&img).collect();
    // `times` (an int) and `whom` (a pointer), 8 bytes apart in `.data`, among the module's
    // sized variables (the parameter descriptors and `.modinfo` strings are some too).
    let sizes: Vec<u64> = objects.iter().map(|o| o.1).collect();
    assert!(sizes.contains(&4) && sizes.contains(&8), "{objects:?}");
    let times = objects.iter().find(|o| o.1 == 4).unwrap().0;
    assert!(
        objects.contains(&(times + 8, 8)),
        "`whom` 8 bytes after `times`: {objects:?}"
    );
    assert!(
        objects.iter().all(|o| o.1 > 0 && o.0 >= MBASE),
        "{objects:?}"
    );
}
