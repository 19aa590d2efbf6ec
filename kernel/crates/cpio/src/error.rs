//! The one error type shared by the reader and the writer.

use core::fmt;

use crate::{HEADER_LEN, MAX_NAME_LEN, TRAILER};

/// Everything that can go wrong reading or writing an archive.
///
/// Reader errors carry `offset`: the position, from the start of the archive, of the header of
/// the entry at fault (or, for [`Error::MissingTrailer`], where the next header should have been).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer than 110 bytes remain where a header should start.
    TruncatedHeader {
        /// Where the header starts.
        offset: usize,
    },
    /// The header does not start with `070701` or `070702`.
    BadMagic {
        /// Where the header starts.
        offset: usize,
    },
    /// A header field is not 8 hexadecimal digits.
    BadField {
        /// Where the header starts.
        offset: usize,
        /// Which field, named as in the format (`"mode"`, `"filesize"`, ...).
        field: &'static str,
    },
    /// The name is not exactly `namesize - 1` non-NUL bytes followed by one NUL.
    NameNotTerminated {
        /// Where the header starts.
        offset: usize,
    },
    /// The name is not valid UTF-8.
    NameNotUtf8 {
        /// Where the header starts.
        offset: usize,
    },
    /// The name (or its padding) runs past the end of the archive.
    TruncatedName {
        /// Where the header starts.
        offset: usize,
    },
    /// The data runs past the end of the archive.
    TruncatedData {
        /// Where the header starts.
        offset: usize,
    },
    /// A `070702` entry's `check` field is not the sum of its data bytes.
    ChecksumMismatch {
        /// Where the header starts.
        offset: usize,
    },
    /// A size field, added to the position it starts at, does not fit in a `usize`.
    Overflow {
        /// Where the header starts.
        offset: usize,
    },
    /// The archive ends without a `TRAILER!!!` entry.
    MissingTrailer {
        /// Where the next header should have started.
        offset: usize,
    },
    /// Writer: the name is empty.
    EmptyName,
    /// Writer: the name contains a NUL byte, which would end it early.
    NameContainsNul,
    /// Writer: the name is `TRAILER!!!`, which would end the archive early.
    ReservedName,
    /// Writer: the name is longer than [`MAX_NAME_LEN`] bytes.
    NameTooLong {
        /// Length of the rejected name, in bytes.
        len: usize,
    },
    /// Writer: the data is too long for the 32-bit `filesize` field.
    DataTooLarge {
        /// Length of the rejected data, in bytes.
        len: usize,
    },
    /// Writer: the permissions have bits set outside `0o7777`.
    InvalidPermissions {
        /// The rejected permissions.
        mode: u32,
    },
    /// Writer: every 32-bit inode number has been handed out.
    TooManyEntries,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TruncatedHeader { offset } => write!(
                f,
                "truncated cpio header at offset {offset}: fewer than {HEADER_LEN} bytes remain"
            ),
            Self::BadMagic { offset } => write!(
                f,
                "bad cpio magic at offset {offset}: expected \"070701\" or \"070702\""
            ),
            Self::BadField { offset, field } => write!(
                f,
                "cpio header at offset {offset}: field `{field}` is not 8 hex digits"
            ),
            Self::NameNotTerminated { offset } => write!(
                f,
                "cpio entry at offset {offset}: name is not terminated by a single NUL"
            ),
            Self::NameNotUtf8 { offset } => {
                write!(f, "cpio entry at offset {offset}: name is not valid UTF-8")
            }
            Self::TruncatedName { offset } => write!(
                f,
                "cpio entry at offset {offset}: name runs past the end of the archive"
            ),
            Self::TruncatedData { offset } => write!(
                f,
                "cpio entry at offset {offset}: data runs past the end of the archive"
            ),
            Self::ChecksumMismatch { offset } => write!(
                f,
                "cpio entry at offset {offset}: data does not match its checksum"
            ),
            Self::Overflow { offset } => write!(
                f,
                "cpio entry at offset {offset}: sizes overflow the address space"
            ),
            Self::MissingTrailer { offset } => write!(
                f,
                "cpio archive ends at offset {offset} without a {TRAILER} entry"
            ),
            Self::EmptyName => f.write_str("cpio entry name is empty"),
            Self::NameContainsNul => f.write_str("cpio entry name contains a NUL byte"),
            Self::ReservedName => write!(f, "cpio entry name {TRAILER} is reserved"),
            Self::NameTooLong { len } => write!(
                f,
                "cpio entry name is {len} bytes long; at most {MAX_NAME_LEN} are allowed"
            ),
            Self::DataTooLarge { len } => write!(
                f,
                "cpio file data is {len} bytes long; at most {} fit",
                u32::MAX
            ),
            Self::InvalidPermissions { mode } => {
                write!(f, "permissions {mode:#o} have bits outside 0o7777")
            }
            Self::TooManyEntries => f.write_str("cpio archive has run out of inode numbers"),
        }
    }
}

impl core::error::Error for Error {}
