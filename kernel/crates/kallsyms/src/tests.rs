extern crate alloc;
extern crate std;

use alloc::string::ToString;
use alloc::vec::Vec;
use proptest::prelude::*;

use super::*;

const BASE: u64 = 0xffff_ffff_8000_0000;

fn sample() -> Vec<u8> {
    write(&[
        (BASE + 0x100, 0x40, "kmain"),
        (BASE, 0x20, "_start"),
        (BASE + 0x40, 0x10, "core::panicking::panic"),
        (BASE + 0x100, 0x40, "kmain"),
    ])
    .expect("writable")
}

#[test]
fn round_trip_sorted_and_deduplicated() {
    let bytes = sample();
    let table = Table::parse(&bytes).expect("parses");
    assert_eq!(table.len(), 3);
    assert_eq!(table.base(), BASE);
    let names: Vec<&str> = table.iter().map(|s| s.name).collect();
    assert_eq!(names, ["_start", "core::panicking::panic", "kmain"]);
}

#[test]
fn lookup_finds_the_enclosing_symbol() {
    let bytes = sample();
    let table = Table::parse(&bytes).expect("parses");
    let kmain = table.lookup(BASE + 0x11c).expect("in kmain");
    assert_eq!(
        (kmain.name, kmain.addr, kmain.size),
        ("kmain", BASE + 0x100, 0x40)
    );
    assert_eq!(table.lookup(BASE).map(|s| s.name), Some("_start"));
    assert_eq!(table.lookup(BASE + 0x1f).map(|s| s.name), Some("_start"));
    // Gaps, before the first and after the last symbol: nothing.
    assert_eq!(table.lookup(BASE + 0x20), None);
    assert_eq!(table.lookup(BASE + 0x140), None);
    assert_eq!(table.lookup(BASE - 1), None);
    assert_eq!(table.lookup(0), None);
}

#[test]
fn nested_symbols_fall_back_to_the_enclosing_one() {
    let bytes = write(&[(BASE, 0x100, "outer"), (BASE + 0x10, 0x8, "inner")]).expect("ok");
    let table = Table::parse(&bytes).expect("parses");
    assert_eq!(table.lookup(BASE + 0x12).map(|s| s.name), Some("inner"));
    assert_eq!(table.lookup(BASE + 0x80).map(|s| s.name), Some("outer"));
}

#[test]
fn empty_table() {
    let bytes = write(&[]).expect("ok");
    let table = Table::parse(&bytes).expect("parses");
    assert!(table.is_empty());
    assert_eq!(table.lookup(BASE), None);
}

#[test]
fn out_of_range_symbols_are_refused() {
    let err = write(&[(0, 1, "low"), (1 << 33, 1, "high")]).expect_err("too far apart");
    assert!(err.to_string().contains("`high`"), "{err}");
    assert!(write(&[(0, 1 << 32, "huge")]).is_err());
}

#[test]
fn malformed_headers_are_refused() {
    let bytes = sample();
    assert!(Table::parse(&[]).is_none());
    assert!(Table::parse(&bytes[..HEADER_LEN - 1]).is_none());
    assert!(
        Table::parse(&bytes[..bytes.len() - 1]).is_none(),
        "names cut short"
    );
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(Table::parse(&bad).is_none());
    let mut huge = bytes;
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Table::parse(&huge).is_none());
}

#[test]
fn bad_name_ranges_read_as_question_marks() {
    let mut bytes = sample();
    // The first entry's name_at, far past the names.
    bytes[HEADER_LEN + 8..HEADER_LEN + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let table = Table::parse(&bytes).expect("the header is fine");
    assert_eq!(table.get(0).map(|s| s.name), Some("?"));
}

proptest! {
    #[test]
    fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), addr: u64) {
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        for input in [&bytes[..], &with_magic[..]] {
            if let Some(table) = Table::parse(input) {
                let _ = table.lookup(addr);
                let _ = table.lookup(table.base().wrapping_add(addr % 4096));
                for s in table.iter() {
                    let _ = s.name.len();
                }
            }
        }
    }

    #[test]
    fn corrupted_tables_never_panic(
        syms in proptest::collection::vec((0u64..0x10000, 0u64..0x100, "[a-z]{0,12}"), 0..20),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        addr in 0u64..0x11000,
    ) {
        let input: Vec<(u64, u64, &str)> =
            syms.iter().map(|(a, s, n)| (BASE + a, *s, n.as_str())).collect();
        let mut bytes = write(&input).expect("in range");
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        if let Some(table) = Table::parse(&bytes) {
            let _ = table.lookup(BASE + addr);
            let _ = table.iter().count();
        }
    }

    #[test]
    fn lookup_agrees_with_a_linear_search(
        syms in proptest::collection::vec((0u64..0x1000, 1u64..0x40), 1..30),
        addr in 0u64..0x1100,
    ) {
        // Non-overlapping symbols: each starts after the previous one ends.
        let mut at = 0;
        let mut input = Vec::new();
        let names: Vec<alloc::string::String> =
            (0..syms.len()).map(|i| alloc::format!("f{i}")).collect();
        for (i, (gap, size)) in syms.iter().enumerate() {
            at += gap;
            input.push((BASE + at, *size, names[i].as_str()));
            at += size;
        }
        let bytes = write(&input).expect("in range");
        let table = Table::parse(&bytes).expect("parses");
        let expected = input
            .iter()
            .find(|(a, s, _)| *a <= BASE + addr && BASE + addr < a + s)
            .map(|s| s.2);
        prop_assert_eq!(table.lookup(BASE + addr).map(|s| s.name), expected);
    }
}
