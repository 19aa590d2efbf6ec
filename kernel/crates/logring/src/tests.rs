extern crate std;

use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::vec::Vec;

/// Every record kept, oldest first, as (seq, level, timestamp, text).
fn records<const N: usize>(ring: &LogRing<N>) -> Vec<(u64, u8, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cursor = Cursor::START;
    let mut buf = [0u8; 70_000];
    while let Some((e, next)) = ring.read(cursor, &mut buf) {
        assert_eq!(e.len, e.full_len);
        out.push((e.seq, e.level, e.timestamp_us, buf[..e.len].to_vec()));
        cursor = next;
    }
    out
}

#[test]
fn records_come_back_in_order_with_level_and_time() {
    let mut ring = LogRing::<256>::new();
    assert!(ring.is_empty());
    assert_eq!(ring.push(6, 1, b"hello"), 0);
    assert_eq!(ring.push(3, 2, b"oops"), 1);
    assert_eq!(
        records(&ring),
        [(0, 6, 1, b"hello".to_vec()), (1, 3, 2, b"oops".to_vec())]
    );
    assert_eq!(ring.len(), 2);
    assert_eq!(ring.bytes_used(), 2 * HEADER + 9);
}

#[test]
fn the_oldest_records_go_whole_when_the_ring_is_full() {
    // 64 bytes: three 20-byte records fit, the fourth evicts the first.
    let mut ring = LogRing::<64>::new();
    for i in 0..4u8 {
        ring.push(i, u64::from(i), &[b'a' + i; 8]);
    }
    let kept = records(&ring);
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[0].0, 1);
    assert_eq!(kept[2], (3, 3, 3, std::vec![b'd'; 8]));
    // The fourth record straddles the end of the array and reads back whole.
    assert_eq!(ring.first_seq(), 1);
}

#[test]
fn a_text_longer_than_the_ring_is_cut() {
    let mut ring = LogRing::<32>::new();
    ring.push(4, 0, b"old");
    ring.push(4, 0, &[b'x'; 100]);
    let kept = records(&ring);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].3.len(), 32 - HEADER);
    assert_eq!(LogRing::<32>::MAX_TEXT, 20);
    assert_eq!(LogRing::<{ 1 << 20 }>::MAX_TEXT, 65535);
}

#[test]
fn a_short_buffer_gets_the_start_of_the_text() {
    let mut ring = LogRing::<128>::new();
    ring.push(6, 9, b"0123456789");
    let mut buf = [0u8; 4];
    let (e, next) = ring.read(Cursor::START, &mut buf).unwrap();
    assert_eq!((e.len, e.full_len, &buf), (4, 10, b"0123"));
    assert!(ring.read(next, &mut buf).is_none());
}

#[test]
fn clear_forgets_and_sequence_numbers_go_on() {
    let mut ring = LogRing::<128>::new();
    ring.push(6, 0, b"a");
    ring.push(6, 0, b"b");
    let end = ring.end();
    ring.clear();
    assert!(ring.is_empty());
    assert!(records(&ring).is_empty());
    assert_eq!(ring.push(6, 0, b"c"), 2);
    assert_eq!(records(&ring), [(2, 6, 0, b"c".to_vec())]);
    // A cursor taken before the clear reads what came after it.
    let mut buf = [0u8; 8];
    assert_eq!(ring.read(end, &mut buf).unwrap().0.seq, 2);
}

#[test]
fn an_overtaken_reader_resumes_at_the_oldest_record() {
    let mut ring = LogRing::<64>::new();
    ring.push(6, 0, b"first");
    let mut buf = [0u8; 64];
    let (_, cursor) = ring.read(Cursor::START, &mut buf).unwrap();
    for _ in 0..10 {
        ring.push(6, 0, b"more text");
    }
    let (e, _) = ring.read(cursor, &mut buf).unwrap();
    assert_eq!(e.seq, ring.first_seq());
}

#[test]
fn level_names_are_linuxs() {
    assert_eq!(level_by_name("err"), Some(3));
    assert_eq!(level_by_name("warn"), Some(4));
    assert_eq!(level_by_name("debug"), Some(7));
    assert_eq!(level_by_name("error"), None);
    assert_eq!(parse_levels("err,warn"), Ok(0b11000));
    assert_eq!(parse_levels("info,bogus"), Err("bogus"));
    assert_eq!(parse_levels(""), Err(""));
}

#[derive(Debug, Clone)]
enum Op {
    Push(u8, Vec<u8>),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0u8..8, proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(l, t)| Op::Push(l, t)),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    /// Against a model: the ring holds exactly the longest run of newest records whose sizes
    /// fit in it, whole and in order, and never panics.
    #[test]
    fn the_ring_keeps_the_newest_records_that_fit(ops in proptest::collection::vec(op(), 0..200)) {
        const N: usize = 512;
        let mut ring = LogRing::<N>::new();
        let mut model: VecDeque<(u64, u8, u64, Vec<u8>)> = VecDeque::new();
        let mut seq = 0u64;
        for (t, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(level, mut text) => {
                    text.truncate(LogRing::<N>::MAX_TEXT);
                    prop_assert_eq!(ring.push(level, t as u64, &text), seq);
                    model.push_back((seq, level, t as u64, text));
                    seq += 1;
                    while model.iter().map(|r| HEADER + r.3.len()).sum::<usize>() > N {
                        model.pop_front();
                    }
                }
                Op::Clear => {
                    ring.clear();
                    model.clear();
                }
            }
            let kept = records(&ring);
            prop_assert_eq!(kept.len(), ring.len());
            prop_assert_eq!(kept, model.iter().cloned().collect::<Vec<_>>());
            prop_assert!(ring.bytes_used() <= N);
        }
    }

    /// A reader that keeps its cursor across pushes sees every record once, in order, or is
    /// moved to the oldest record kept when the writer overtook it; it never reads garbage.
    #[test]
    fn a_cursor_stays_valid_across_pushes(
        texts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..100),
        reads in proptest::collection::vec(0usize..4, 1..100),
    ) {
        let mut ring = LogRing::<256>::new();
        let mut cursor = Cursor::START;
        let mut last_seen: Option<u64> = None;
        let mut buf = [0u8; 256];
        for (i, text) in texts.iter().enumerate() {
            ring.push(6, i as u64, text);
            for _ in 0..reads[i % reads.len()] {
                if let Some((e, next)) = ring.read(cursor, &mut buf) {
                    prop_assert!(e.seq >= ring.first_seq());
                    prop_assert!(last_seen.is_none_or(|s| e.seq > s));
                    prop_assert_eq!(&buf[..e.len], &texts[e.seq as usize][..]);
                    prop_assert_eq!(e.timestamp_us, e.seq);
                    last_seen = Some(e.seq);
                    cursor = next;
                }
            }
        }
    }
}
