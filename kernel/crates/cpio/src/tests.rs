//! Whole-crate tests: property tests of the reader and writer together, and interoperability
//! with GNU cpio (which must be installed: these tests fail, not skip, without it).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::prelude::*;

use crate::read::normalize;
use crate::{Archive, Builder, Entry, Error, TRAILER};

/// What to add to a [`Builder`]: a name, and file data or `None` for a directory.
type Spec = Vec<(String, Option<Vec<u8>>)>;

fn build(spec: &Spec) -> Vec<u8> {
    let mut builder = Builder::new();
    for (name, data) in spec {
        match data {
            Some(data) => builder.add_file(name, data).unwrap(),
            None => builder.add_dir(name).unwrap(),
        };
    }
    builder.finish()
}

/// Valid entry names: plain paths (sometimes with a leading `/` or `./`) or any non-NUL text.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "(/|\\./)?[a-z0-9_.-]{1,8}(/[a-z0-9_.-]{1,8}){0,2}",
        "[^\0]{1,12}"
    ]
    .prop_filter("reserved", |name| name != TRAILER)
}

fn spec() -> impl Strategy<Value = Spec> {
    let data = proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..40));
    proptest::collection::vec((name(), data), 0..12)
}

/// Walks every entry (touching its name and data) and returns the error it ended with, if any.
fn walk(bytes: &[u8]) -> Option<Error> {
    let archive = Archive::new(bytes);
    let _ = archive.find("init");
    let mut error = None;
    for item in archive.entries() {
        match item {
            Ok(entry) => {
                std::hint::black_box((
                    entry.name().len(),
                    entry.data().iter().fold(0u8, |a, &b| a ^ b),
                ));
            }
            Err(e) => error = Some(e),
        }
    }
    error
}

proptest! {
    #[test]
    fn round_trips(spec in spec()) {
        let bytes = build(&spec);
        let archive = Archive::new(&bytes);
        let entries: Vec<Entry<'_>> = archive.entries().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(entries.len(), spec.len());
        for (entry, (name, data)) in entries.iter().zip(&spec) {
            prop_assert_eq!(entry.name(), name.as_str());
            prop_assert_eq!(entry.data(), data.as_deref().unwrap_or_default());
            prop_assert_eq!(entry.is_file(), data.is_some());
            prop_assert_eq!(entry.is_dir(), data.is_none());
            prop_assert_eq!(entry.mtime(), 0);
        }
        let mut inodes: Vec<u32> = entries.iter().map(Entry::ino).collect();
        inodes.sort_unstable();
        inodes.dedup();
        prop_assert_eq!(inodes.len(), spec.len(), "inode numbers are distinct");
        for (name, _) in &spec {
            let first = spec.iter().position(|(n, _)| normalize(n) == normalize(name)).unwrap();
            prop_assert_eq!(archive.find(name), Some(entries[first]));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        walk(&bytes);
    }

    #[test]
    fn truncations_fail_cleanly(spec in spec(), cut in any::<prop::sample::Index>()) {
        let bytes = build(&spec);
        let cut = cut.index(bytes.len());
        prop_assert!(walk(&bytes[..cut]).is_some(), "a cut at {} went unnoticed", cut);
    }

    #[test]
    fn corruptions_never_panic(
        spec in spec(),
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![any::<u8>(), "[0-9A-Fa-f]".prop_map(|s| s.as_bytes()[0])]),
            1..6,
        ),
    ) {
        let mut bytes = build(&spec);
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        walk(&bytes);
    }
}

/// A fresh, empty scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cpio-crate-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs GNU cpio in `dir` with `args`, feeding it `stdin`; returns its standard output.
fn gnu_cpio(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("GNU cpio must be installed to run these tests (apt-get install cpio)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cpio {args:?} failed: {stderr}");
    output.stdout
}

const FILES: [(&str, &[u8]); 6] = [
    ("init", b"#!/bin/sh\necho hello\n"),
    ("etc/empty", b""),
    ("etc/one", b"1"),
    ("etc/three", b"123"),
    ("bin/five", b"12345"),
    ("bin/a longer name with spaces", &[0, 1, 2, 255]),
];

#[test]
fn gnu_cpio_lists_and_extracts_our_archives() {
    let mut builder = Builder::new();
    builder.add_dir("etc").unwrap().add_dir("bin").unwrap();
    for (name, data) in FILES {
        builder.add_file(name, data).unwrap();
    }
    let bytes = builder.finish();
    let dir = scratch("gnu-reads");
    let path = dir.join("archive.cpio");
    fs::write(&path, &bytes).unwrap();

    let file = path.to_str().unwrap();
    let listing = gnu_cpio(&dir, &["-it", "-F", file], b"");
    let listed: Vec<&str> = std::str::from_utf8(&listing).unwrap().lines().collect();
    let mut expected = vec!["etc", "bin"];
    expected.extend(FILES.map(|(name, _)| name));
    assert_eq!(listed, expected);

    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    gnu_cpio(&out, &["-id", "-F", file], b"");
    for (name, data) in FILES {
        assert_eq!(fs::read(out.join(name)).unwrap(), data, "{name}");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn we_read_gnu_cpio_archives() {
    let dir = scratch("gnu-writes");
    for sub in ["etc", "bin"] {
        fs::create_dir(dir.join(sub)).unwrap();
    }
    for (name, data) in FILES {
        fs::write(dir.join(name), data).unwrap();
    }
    let mut names = vec!["etc", "bin"];
    names.extend(FILES.map(|(name, _)| name));
    let stdin = names.join("\n") + "\n";
    for format in ["newc", "crc"] {
        let bytes = gnu_cpio(&dir, &["-o", "-H", format], stdin.as_bytes());
        let archive = Archive::new(&bytes);
        let entries: Vec<Entry<'_>> = archive.entries().collect::<Result<_, _>>().unwrap();
        let read: Vec<&str> = entries.iter().map(Entry::name).collect();
        assert_eq!(read, names, "{format}");
        assert!(entries[0].is_dir() && entries[1].is_dir());
        for (name, data) in FILES {
            let entry = archive.find(name).unwrap();
            assert!(entry.is_file());
            assert_eq!(entry.data(), data, "{format}: {name}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}
