//! Mutations of the real example modules: bytes anywhere, header fields, section headers,
//! symbols and relocation entries. Whatever the mutation, the loader returns a plan and a
//! written image, or a refusal; it never panics (a panic fails the property), never loops and
//! never allocates without bound (the plan's memory is capped at `MAX_IMAGE_SIZE`).

use alloc::vec::Vec;

use proptest::prelude::*;

use super::fake::{Kernel, MBASE, Mem, THIS};
use super::fixtures::{ALL, kernel_with_exporter};
use super::raw::wr;
use crate::Module;

#[derive(Clone, Debug)]
enum Mutation {
    /// A byte anywhere.
    Byte(prop::sample::Index, u8),
    /// An ELF header field: (offset, width).
    Header(prop::sample::Index, u64),
    /// A section header field.
    Section(prop::sample::Index, prop::sample::Index, u64),
    /// A symbol field.
    Symbol(prop::sample::Index, prop::sample::Index, u64),
    /// A relocation entry field.
    Rela(prop::sample::Index, prop::sample::Index, u64),
    /// Cut the file.
    Truncate(prop::sample::Index),
}

const HEADER_FIELDS: [(usize, usize); 12] = [
    (4, 1),
    (5, 1),
    (6, 1),
    (7, 1),
    (16, 2),
    (18, 2),
    (0x28, 8),
    (0x34, 2),
    (0x38, 2),
    (0x3a, 2),
    (0x3c, 2),
    (0x3e, 2),
];
const SECTION_FIELDS: [(usize, usize); 9] = [
    (0, 4),
    (4, 4),
    (8, 8),
    (24, 8),
    (32, 8),
    (40, 4),
    (44, 4),
    (48, 8),
    (56, 8),
];
const SYMBOL_FIELDS: [(usize, usize); 6] = [(0, 4), (4, 1), (5, 1), (6, 2), (8, 8), (16, 8)];
const RELA_FIELDS: [(usize, usize); 4] = [(0, 8), (8, 4), (12, 4), (16, 8)];

/// Values that hit edges more often than uniform ones would.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..64,
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(0x8000_0000),
        Just(0xff00),
        Just(0xfff1),
        Just(0xfff2),
        Just(0xffff),
        4096u64..8192,
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
        (any::<prop::sample::Index>(), value()).prop_map(|(f, v)| Mutation::Header(f, v)),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            value()
        )
            .prop_map(|(s, f, v)| Mutation::Section(s, f, v)),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            value()
        )
            .prop_map(|(s, f, v)| Mutation::Symbol(s, f, v)),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            value()
        )
            .prop_map(|(s, f, v)| Mutation::Rela(s, f, v)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn get(d: &[u8], off: usize, w: usize) -> Option<u64> {
    let b = d.get(off..off.checked_add(w)?)?;
    let mut x = [0u8; 8];
    x[..w].copy_from_slice(b);
    Some(u64::from_le_bytes(x))
}

fn put(d: &mut [u8], off: usize, w: usize, v: u64) {
    if off.checked_add(w).is_some_and(|end| end <= d.len()) {
        wr(d, off, w, v);
    }
}

/// Where the tables are, read with checked reads only (a mutated file may have any values):
/// section header offsets, symbol entry offsets, relocation entry offsets.
fn tables(d: &[u8]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut secs, mut syms, mut relas) = (Vec::new(), Vec::new(), Vec::new());
    let (Some(shoff), Some(shnum)) = (get(d, 0x28, 8), get(d, 0x3c, 2)) else {
        return (secs, syms, relas);
    };
    for i in 0..shnum as usize {
        let Some(h) = (shoff as usize)
            .checked_add(64 * i)
            .filter(|&h| h.checked_add(64).is_some_and(|end| end <= d.len()))
        else {
            break;
        };
        secs.push(h);
        let (t, off, size) = (
            get(d, h + 4, 4).unwrap(),
            get(d, h + 24, 8).unwrap(),
            get(d, h + 32, 8).unwrap(),
        );
        let entries = (0..(size / 24).min(4096) as usize)
            .filter_map(|j| (off as usize).checked_add(24 * j))
            .filter(|&e| e.checked_add(24).is_some_and(|end| end <= d.len()));
        match t {
            2 => syms.extend(entries),
            4 => relas.extend(entries),
            _ => {}
        }
    }
    (secs, syms, relas)
}

/// Applies `m` (a mutation whose table is gone, after an earlier one, does nothing).
fn apply(d: &mut Vec<u8>, m: &Mutation) {
    let (secs, syms, relas) = tables(d);
    let pick = |v: &[usize], i: &prop::sample::Index| (!v.is_empty()).then(|| v[i.index(v.len())]);
    match m {
        Mutation::Byte(i, b) if !d.is_empty() => {
            let at = i.index(d.len());
            d[at] = *b;
        }
        Mutation::Byte(..) => {}
        Mutation::Truncate(i) => d.truncate(i.index(d.len() + 1)),
        Mutation::Header(f, v) => {
            let (off, w) = HEADER_FIELDS[f.index(HEADER_FIELDS.len())];
            put(d, off, w, *v);
        }
        Mutation::Section(s, f, v) => {
            let (off, w) = SECTION_FIELDS[f.index(SECTION_FIELDS.len())];
            if let Some(h) = pick(&secs, s) {
                put(d, h + off, w, *v);
            }
        }
        Mutation::Symbol(s, f, v) => {
            let (off, w) = SYMBOL_FIELDS[f.index(SYMBOL_FIELDS.len())];
            if let Some(e) = pick(&syms, s) {
                put(d, e + off, w, *v);
            }
        }
        Mutation::Rela(e, f, v) => {
            let (off, w) = RELA_FIELDS[f.index(RELA_FIELDS.len())];
            if let Some(e) = pick(&relas, e) {
                put(d, e + off, w, *v);
            }
        }
    }
}

/// The whole pipeline; `Ok` or `Err` are both fine, a panic is not.
fn run(d: &[u8], k: &Kernel) {
    let Ok(m) = Module::parse(d, "mutant.ko") else {
        return;
    };
    let l = m.layout();
    // The plan is bounded.
    assert!(l.core_size() + l.init_size() <= crate::MAX_IMAGE_SIZE);
    let Ok(res) = m.resolve(k, THIS) else { return };
    // Writing tens of MiB per case would be slow: write images up to 1 MiB.
    if l.core_size() + l.init_size() > 1 << 20 {
        return;
    }
    let mut mem = Mem::for_layout(l, MBASE);
    let mut img = mem.image(l);
    if m.write_image(&res, &mut img).is_ok() {
        for p in m.params() {
            let _ = m.set_param(&mut img, p.name, Some("1"));
        }
        let _ = m.init_address(&img);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_modules_are_planned_or_refused(
        which in 0..ALL.len(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let (_, original) = ALL[which];
        let mut d = original.to_vec();
        for m in &mutations {
            apply(&mut d, m);
        }
        run(&d, &kernel_with_exporter());
    }

    /// The same file at an odd address: the reader must not assume alignment (a module file
    /// in the initramfs is only 4-byte aligned).
    #[test]
    fn unaligned_files_load_the_same(which in 0..ALL.len(), shift in 1usize..8) {
        let (name, original) = ALL[which];
        let mut buf = alloc::vec![0u8; shift];
        buf.extend_from_slice(original);
        let a = Module::parse(&buf[shift..], name).map(|m| m.layout().core_size());
        let b = Module::parse(original, name).map(|m| m.layout().core_size());
        prop_assert_eq!(a, b);
    }
}
