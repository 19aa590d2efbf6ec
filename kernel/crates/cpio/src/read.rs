//! The reader: walks an archive held in memory, without copying or allocating.

use core::iter::FusedIterator;
use core::ops::Range;

use crate::{
    Error, HEADER_LEN, MAGIC_CRC, MAGIC_NEWC, TRAILER, TYPE_DIR, TYPE_FILE, TYPE_MASK, TYPE_SYMLINK,
};

/// Names of the 13 header fields, in the order they appear after the magic.
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

/// A newc archive held in memory.
///
/// Creating one checks nothing: the bytes are parsed lazily by [`Archive::entries`], which
/// reports any malformed entry as an [`Error`] when it reaches it.
#[derive(Debug, Clone, Copy)]
pub struct Archive<'a> {
    bytes: &'a [u8],
}

impl<'a> Archive<'a> {
    /// Wraps the bytes of an archive. Offsets in errors count from the start of `bytes`, and
    /// padding is measured from there too, so `bytes` must start at the archive's first header.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Iterates over the entries, in archive order, up to (not including) the `TRAILER!!!`.
    ///
    /// After the first `Err` the iterator ends: a malformed header leaves no way to find the
    /// next one.
    pub const fn entries(&self) -> Entries<'a> {
        Entries {
            bytes: self.bytes,
            offset: 0,
            done: false,
        }
    }

    /// Finds the first entry named `path`, ignoring any leading `/` or `./` both in `path` and in
    /// the stored names (so `"/init"`, `"./init"` and `"init"` all match an entry `init`).
    ///
    /// Returns `None` if no entry before the trailer, or before the first malformed entry,
    /// matches; walk [`Archive::entries`] to tell these apart.
    pub fn find(&self, path: &str) -> Option<Entry<'a>> {
        let wanted = normalize(path);
        self.entries()
            .map_while(Result::ok)
            .find(|entry| normalize(entry.name) == wanted)
    }
}

/// Strips every leading `/` and `./` from `path`.
pub(crate) fn normalize(mut path: &str) -> &str {
    loop {
        if let Some(rest) = path.strip_prefix('/') {
            path = rest;
        } else if let Some(rest) = path.strip_prefix("./") {
            path = rest;
        } else {
            return path;
        }
    }
}

/// One entry of an archive: its metadata, and its name and data borrowed from the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    name: &'a str,
    data: &'a [u8],
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
}

impl<'a> Entry<'a> {
    /// The path, exactly as stored (without the NUL terminator).
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The data: a file's contents, a symlink's target, empty for a directory.
    pub const fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The full mode: file-type bits (`mode & 0o170000`) and permission bits, as in `st_mode`.
    pub const fn mode(&self) -> u32 {
        self.mode
    }

    /// Whether this is a regular file.
    pub const fn is_file(&self) -> bool {
        self.mode & TYPE_MASK == TYPE_FILE
    }

    /// Whether this is a directory.
    pub const fn is_dir(&self) -> bool {
        self.mode & TYPE_MASK == TYPE_DIR
    }

    /// Whether this is a symbolic link (its target is the data).
    pub const fn is_symlink(&self) -> bool {
        self.mode & TYPE_MASK == TYPE_SYMLINK
    }

    /// The inode number; entries sharing one (with `nlink > 1`) are hard links.
    pub const fn ino(&self) -> u32 {
        self.ino
    }

    /// The owner's user id.
    pub const fn uid(&self) -> u32 {
        self.uid
    }

    /// The owner's group id.
    pub const fn gid(&self) -> u32 {
        self.gid
    }

    /// The number of links to this node.
    pub const fn nlink(&self) -> u32 {
        self.nlink
    }

    /// The modification time, in seconds since the Unix epoch.
    pub const fn mtime(&self) -> u32 {
        self.mtime
    }
}

/// Iterator over the entries of an [`Archive`], made by [`Archive::entries`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // Stop after this call unless it yields a good entry.
        self.done = true;
        if self.offset >= self.bytes.len() {
            return Some(Err(Error::MissingTrailer {
                offset: self.offset,
            }));
        }
        match parse_entry(self.bytes, self.offset) {
            Err(error) => Some(Err(error)),
            Ok((entry, _)) if entry.name == TRAILER => None,
            Ok((entry, next)) => {
                self.done = false;
                self.offset = next;
                Some(Ok(entry))
            }
        }
    }
}

impl FusedIterator for Entries<'_> {}

/// Parses the entry whose header starts at `offset`; returns it and where the next one starts.
fn parse_entry(bytes: &[u8], offset: usize) -> Result<(Entry<'_>, usize), Error> {
    let header = bytes
        .get(offset..)
        .and_then(|rest| rest.get(..HEADER_LEN))
        .ok_or(Error::TruncatedHeader { offset })?;
    let (magic, fields) = header.split_at(6);
    let crc = match magic {
        MAGIC_NEWC => false,
        MAGIC_CRC => true,
        _ => return Err(Error::BadMagic { offset }),
    };
    let mut values = [0u32; 13];
    let (digits, _) = fields.as_chunks::<8>();
    for ((value, digits), field) in values.iter_mut().zip(digits).zip(FIELDS) {
        *value = parse_hex(digits).ok_or(Error::BadField { offset, field })?;
    }
    // The four device numbers (devmajor to rdevminor) mean nothing to this reader.
    let [
        ino,
        mode,
        uid,
        gid,
        nlink,
        mtime,
        filesize,
        ..,
        namesize,
        check,
    ] = values;

    // `header` fit, so `offset + HEADER_LEN <= bytes.len()` cannot overflow.
    let name_range = span(offset + HEADER_LEN, namesize, offset)?;
    let name = bytes
        .get(name_range.clone())
        .ok_or(Error::TruncatedName { offset })?;
    let name = match name.split_last() {
        Some((0, name)) if !name.contains(&0) => name,
        _ => return Err(Error::NameNotTerminated { offset }),
    };
    let name = core::str::from_utf8(name).map_err(|_| Error::NameNotUtf8 { offset })?;

    let data_start = name_range
        .end
        .checked_next_multiple_of(4)
        .ok_or(Error::Overflow { offset })?;
    if data_start > bytes.len() {
        return Err(Error::TruncatedName { offset });
    }
    let data_range = span(data_start, filesize, offset)?;
    let data = bytes
        .get(data_range.clone())
        .ok_or(Error::TruncatedData { offset })?;
    if crc && checksum(data) != check {
        return Err(Error::ChecksumMismatch { offset });
    }
    let next = data_range
        .end
        .checked_next_multiple_of(4)
        .ok_or(Error::Overflow { offset })?;
    let entry = Entry {
        name,
        data,
        ino,
        mode,
        uid,
        gid,
        nlink,
        mtime,
    };
    Ok((entry, next))
}

/// The range of `len` bytes starting at `start`, or [`Error::Overflow`] (blaming the header at
/// `offset`) if its end does not fit in a `usize`.
fn span(start: usize, len: u32, offset: usize) -> Result<Range<usize>, Error> {
    usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .map(|end| start..end)
        .ok_or(Error::Overflow { offset })
}

/// Parses 8 ASCII hex digits (either case).
fn parse_hex(digits: &[u8; 8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &digit| {
        let digit = char::from(digit).to_digit(16)?;
        Some(acc << 4 | digit)
    })
}

/// The `070702` checksum: the sum of the data bytes, modulo 2^32.
fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |sum, &byte| sum.wrapping_add(u32::from(byte)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw entry named `name` holding `data`, with its fields (in header order) made by
    /// defaults for a regular file and then adjusted by `tweak`.
    fn entry(magic: &str, name: &[u8], data: &[u8], tweak: impl FnOnce(&mut [u32; 13])) -> Vec<u8> {
        let namesize = u32::try_from(name.len() + 1).unwrap();
        let filesize = u32::try_from(data.len()).unwrap();
        let mut fields = [1, 0o100644, 0, 0, 1, 0, filesize, 0, 0, 0, 0, namesize, 0];
        tweak(&mut fields);
        let mut bytes = magic.as_bytes().to_vec();
        for field in fields {
            bytes.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        bytes.extend_from_slice(data);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        bytes
    }

    fn file(name: &str, data: &[u8]) -> Vec<u8> {
        entry("070701", name.as_bytes(), data, |_| {})
    }

    fn trailer() -> Vec<u8> {
        entry("070701", TRAILER.as_bytes(), b"", |f| f[..2].fill(0))
    }

    /// All the items `entries()` yields for `bytes`.
    fn walk(bytes: &[u8]) -> Vec<Result<Entry<'_>, Error>> {
        Archive::new(bytes).entries().collect()
    }

    /// The error `entries()` ends with when `bytes` holds a single bad entry then a trailer.
    fn first_error(mut bytes: Vec<u8>) -> Error {
        bytes.extend(trailer());
        let items = walk(&bytes);
        assert_eq!(items.len(), 1, "expected exactly one (bad) item: {items:?}");
        items[0].unwrap_err()
    }

    #[test]
    fn reads_entries_and_metadata() {
        let mut bytes = entry("070701", b"bin", b"", |f| {
            f[0] = 7;
            f[1] = 0o040755;
            f[2] = 1000;
            f[3] = 100;
            f[4] = 2;
            f[5] = 1_700_000_000;
        });
        bytes.extend(file("bin/sh", b"#!"));
        bytes.extend(trailer());
        let items = walk(&bytes);
        assert_eq!(items.len(), 2);
        let dir = items[0].unwrap();
        assert_eq!((dir.name(), dir.data()), ("bin", &b""[..]));
        assert!(dir.is_dir() && !dir.is_file() && !dir.is_symlink());
        assert_eq!(
            (dir.ino(), dir.mode(), dir.uid(), dir.gid()),
            (7, 0o040755, 1000, 100)
        );
        assert_eq!((dir.nlink(), dir.mtime()), (2, 1_700_000_000));
        let sh = items[1].unwrap();
        assert_eq!((sh.name(), sh.data()), ("bin/sh", &b"#!"[..]));
        assert!(sh.is_file() && !sh.is_dir());
    }

    #[test]
    fn accepts_lowercase_hex_and_symlinks() {
        let mut bytes = entry("070701", b"link", b"target", |f| f[1] = 0o120777);
        bytes.make_ascii_lowercase();
        bytes.extend(trailer());
        let link = walk(&bytes)[0].unwrap();
        assert!(link.is_symlink());
        assert_eq!((link.name(), link.data()), ("link", &b"target"[..]));
    }

    #[test]
    fn stops_at_trailer_and_ignores_what_follows() {
        let mut bytes = file("a", b"1");
        bytes.extend(trailer());
        bytes.extend([0; 512]);
        bytes.extend(b"garbage");
        assert_eq!(walk(&bytes).len(), 1);
        assert!(walk(&bytes)[0].is_ok());
    }

    #[test]
    fn empty_input_has_no_trailer() {
        assert_eq!(walk(&[]), [Err(Error::MissingTrailer { offset: 0 })]);
    }

    #[test]
    fn missing_trailer() {
        let bytes = file("a", b"12345");
        let items = walk(&bytes);
        assert!(items[0].is_ok());
        assert_eq!(items[1], Err(Error::MissingTrailer { offset: 120 }));
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn truncated_header() {
        assert_eq!(
            walk(b"070701000"),
            [Err(Error::TruncatedHeader { offset: 0 })]
        );
        let mut bytes = file("a", b"");
        bytes.extend(&trailer()[..HEADER_LEN - 1]);
        assert_eq!(walk(&bytes)[1], Err(Error::TruncatedHeader { offset: 112 }));
    }

    #[test]
    fn bad_magic() {
        // "070707" is the old binary-free "odc" format, which this crate does not read.
        let bytes = entry("070707", b"a", b"", |_| {});
        assert_eq!(first_error(bytes), Error::BadMagic { offset: 0 });
    }

    #[test]
    fn bad_field_names_the_field() {
        for (index, field) in FIELDS.into_iter().enumerate() {
            for bad in *b"g +-" {
                let mut bytes = file("a", b"");
                bytes[6 + 8 * index + 3] = bad;
                assert_eq!(first_error(bytes), Error::BadField { offset: 0, field });
            }
        }
    }

    #[test]
    fn name_not_terminated() {
        // namesize leaves out the NUL, counts none, or the name has a NUL inside.
        let short = entry("070701", b"abc", b"", |f| f[11] = 3);
        assert_eq!(first_error(short), Error::NameNotTerminated { offset: 0 });
        let empty = entry("070701", b"", b"", |f| f[11] = 0);
        assert_eq!(first_error(empty), Error::NameNotTerminated { offset: 0 });
        let inner = entry("070701", b"a\0b", b"", |_| {});
        assert_eq!(first_error(inner), Error::NameNotTerminated { offset: 0 });
    }

    #[test]
    fn name_not_utf8() {
        let bytes = entry("070701", b"\xff\xfe", b"", |_| {});
        assert_eq!(first_error(bytes), Error::NameNotUtf8 { offset: 0 });
    }

    #[test]
    fn truncated_name() {
        let huge = entry("070701", b"a", b"", |f| f[11] = u32::MAX);
        assert_eq!(first_error(huge), Error::TruncatedName { offset: 0 });
        // The name fits but its padding does not.
        let bytes = file("abcd", b"");
        assert_eq!(
            walk(&bytes[..HEADER_LEN + 5]),
            [Err(Error::TruncatedName { offset: 0 })]
        );
    }

    #[test]
    fn truncated_data() {
        let huge = entry("070701", b"a", b"", |f| f[6] = u32::MAX);
        assert_eq!(first_error(huge), Error::TruncatedData { offset: 0 });
        let bytes = file("a", b"12345");
        assert_eq!(
            walk(&bytes[..115]),
            [Err(Error::TruncatedData { offset: 0 })]
        );
    }

    #[test]
    fn overflow() {
        // Unreachable from a real buffer on 64-bit targets, so test the arithmetic directly.
        assert_eq!(span(usize::MAX, 1, 5), Err(Error::Overflow { offset: 5 }));
        assert_eq!(span(usize::MAX - 1, 1, 5), Ok(usize::MAX - 1..usize::MAX));
    }

    #[test]
    fn crc_variant_checks_the_sum() {
        let data = b"\xff\xff\x01";
        let mut good = entry("070702", b"a", data, |f| f[12] = 0x1FF);
        good.extend(trailer());
        assert_eq!(walk(&good)[0].unwrap().data(), data);
        let bad = entry("070702", b"a", data, |f| f[12] = 0x1FE);
        assert_eq!(first_error(bad), Error::ChecksumMismatch { offset: 0 });
        // Plain newc ignores `check`.
        let mut newc = entry("070701", b"a", data, |f| f[12] = 0x1FE);
        newc.extend(trailer());
        assert!(walk(&newc)[0].is_ok());
        assert_eq!(checksum(&[0xff; 3]), 765);
    }

    #[test]
    fn errors_end_the_iteration() {
        let bytes = file("a", b"");
        let mut entries = Archive::new(&bytes[..50]).entries();
        assert!(entries.next().unwrap().is_err());
        assert!(entries.next().is_none());
        assert!(entries.next().is_none());
    }

    #[test]
    fn find_ignores_leading_slash_and_dot() {
        let mut bytes = file("./etc/init", b"1");
        bytes.extend(file("/bin/sh", b"2"));
        bytes.extend(file("usr", b"3"));
        bytes.extend(file("usr", b"4"));
        bytes.extend(trailer());
        let archive = Archive::new(&bytes);
        for query in ["etc/init", "/etc/init", "./etc/init", ".//etc/init"] {
            assert_eq!(archive.find(query).unwrap().data(), b"1", "{query}");
        }
        assert_eq!(archive.find("bin/sh").unwrap().data(), b"2");
        assert_eq!(
            archive.find("./usr").unwrap().data(),
            b"3",
            "the first match wins"
        );
        assert!(archive.find("etc").is_none());
        assert!(archive.find(TRAILER).is_none());
        assert!(Archive::new(&bytes[..200]).find("bin/sh").is_none());
    }

    #[test]
    fn errors_display_clearly() {
        let error = Error::BadField {
            offset: 8,
            field: "mode",
        };
        assert_eq!(
            error.to_string(),
            "cpio header at offset 8: field `mode` is not 8 hex digits"
        );
        let error: &dyn core::error::Error = &Error::MissingTrailer { offset: 0 };
        assert!(error.to_string().contains("TRAILER!!!"));
    }
}
