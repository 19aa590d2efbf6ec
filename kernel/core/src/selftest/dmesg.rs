//! On-target tests of the kernel log (`console::printk_record`, the ring `dmesg` reads): log
//! records and a module's `printk` land in it with their Linux levels; it wraps, keeping the
//! newest records whole.

use alloc::string::String;
use alloc::vec::Vec;

use crate::console::{self, LOG_BYTES, LOG_LINE_MAX, LogCursor};
use crate::module;

use super::module::{captured, file, fixture};

/// Every record from `cursor` on: (sequence number, level, text).
fn records_from(mut cursor: LogCursor) -> Vec<(u64, u8, String)> {
    let mut out = Vec::new();
    let mut buf = [0u8; LOG_LINE_MAX];
    while let Some((e, next)) = console::log_read(cursor, &mut buf) {
        out.push((
            e.seq,
            e.level,
            String::from_utf8_lossy(&buf[..e.len]).into_owned(),
        ));
        cursor = next;
    }
    out
}

fn level_of(records: &[(u64, u8, String)], text: &str) -> Option<u8> {
    records.iter().find(|r| r.2 == text).map(|r| r.1)
}

#[crate::ktest]
fn dmesg_keeps_log_records_and_module_printk_with_their_levels() {
    let from = console::log_end();
    log::error!("dmesg-core: error");
    log::warn!("dmesg-core: warn");
    log::info!("dmesg-core: info");
    // Below the console's level or not, every message is kept.
    console::printk_record(7, b"dmesg-core: debug\n");
    console::printk_record(0, b"dmesg-core: emerg");
    let (r, out) = captured(|| {
        module::load(
            file(fixture!("hello_c.ko")),
            "hello_c",
            &["whom=dmesg", "times=1"],
        )
    });
    r.expect("hello_c loads");
    assert!(out.contains("hello_c: hello, dmesg (1 of 1)"), "{out}");
    module::unload("hello_c", false).expect("hello_c unloads");
    let records = records_from(from);
    for (text, level) in [
        ("dmesg-core: error", 3),
        ("dmesg-core: warn", 4),
        ("dmesg-core: info", 6),
        ("dmesg-core: debug", 7),
        ("dmesg-core: emerg", 0),
        // hello_c's `pr_info` (KERN_INFO), its trailing newline dropped.
        ("hello_c: hello, dmesg (1 of 1)", 6),
        ("hello_c: goodbye, dmesg", 6),
    ] {
        assert_eq!(level_of(&records, text), Some(level), "{text}: {records:?}");
    }
    // In order, with consecutive sequence numbers.
    assert!(
        records.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "{records:?}"
    );
}

#[crate::ktest]
fn dmesg_ring_wraps_without_losing_the_newest_record() {
    let (_, start) = console::log_seqs();
    // Twice the ring's bytes in records of about 60 bytes.
    let n = 2 * LOG_BYTES / 60;
    let mut text = String::with_capacity(64);
    for i in 0..n {
        text.clear();
        core::fmt::write(
            &mut text,
            format_args!("dmesg-wrap: record {i:08} of the test"),
        )
        .unwrap();
        console::printk_record(6, text.as_bytes());
    }
    let (first, next) = console::log_seqs();
    assert!(first > start, "the ring wrapped: {first} > {start}");
    let records = records_from(LogCursor::START);
    assert_eq!(records.first().map(|r| r.0), Some(first));
    let newest = records.last().expect("records kept");
    assert_eq!(newest.0, next - 1);
    assert_eq!(
        newest.2,
        alloc::format!("dmesg-wrap: record {:08} of the test", n - 1)
    );
    // Whole records only, each in order: none cut by the wrap.
    let kept: Vec<_> = records
        .iter()
        .filter(|r| r.2.starts_with("dmesg-wrap"))
        .collect();
    assert!(kept.len() > LOG_BYTES / 60 / 2, "{} kept", kept.len());
    for w in kept.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1);
        assert_eq!(w[1].2.len(), w[0].2.len());
    }
    let total: usize = records.iter().map(|r| logring::HEADER + r.2.len()).sum();
    assert!(total <= LOG_BYTES);
}
