//! A `no_std` reader and writer for cpio archives in the "newc" format.
//!
//! cpio is one of the oldest Unix archive formats, and its "newc" (new ASCII) variant is what
//! Linux uses for the initramfs: the bundle of files a kernel unpacks before it has any disk
//! driver. The format is simple enough to read with no allocator at all, which is why a kernel
//! likes it.
//!
//! # The format in a nutshell
//!
//! An archive is a sequence of *entries*, one per file, directory or other node. Each entry is:
//!
//! 1. a **110-byte header**, all ASCII: the 6-byte magic `070701` followed by thirteen fields,
//!    each written as exactly 8 hexadecimal digits (`ino`, `mode`, `uid`, `gid`, `nlink`,
//!    `mtime`, `filesize`, `devmajor`, `devminor`, `rdevmajor`, `rdevminor`, `namesize`,
//!    `check`);
//! 2. the **name**: `namesize` bytes, the last of which is a NUL terminator, then zero bytes of
//!    padding until header + name reach a multiple of 4;
//! 3. the **data**: `filesize` bytes (a file's contents, a symlink's target, nothing for a
//!    directory), then zero bytes of padding up to a multiple of 4.
//!
//! The archive ends with an entry named `TRAILER!!!`; anything after it (writers often pad to
//! 512-byte blocks) is ignored. The magic `070702` marks the "crc" variant, identical except that
//! `check` holds the sum of the data bytes (modulo 2^32); this crate reads it and verifies that
//! sum.
//!
//! `mode` carries both the file type (`0o100000` regular file, `0o040000` directory, ...) and the
//! permission bits, exactly like `st_mode` in `stat(2)`.
//!
//! # Reading
//!
//! [`Archive`] borrows the bytes and walks them lazily, so nothing is copied. Here is a complete
//! archive written out by hand, holding one file `hi` containing `hey\n`:
//!
//! ```
//! let bytes = concat!(
//!     "070701",   // magic
//!     "00000001", // ino
//!     "000081A4", // mode: regular file (0o100000) | rw-r--r-- (0o644)
//!     "00000000", "00000000", // uid, gid
//!     "00000001", // nlink
//!     "00000000", // mtime
//!     "00000004", // filesize
//!     "00000000", "00000000", "00000000", "00000000", // devmajor/minor, rdevmajor/minor
//!     "00000003", // namesize: "hi" plus its NUL
//!     "00000000", // check
//!     "hi\0",     // 110 + 3 = 113 bytes so far...
//!     "\0\0\0",   // ...padded to 116
//!     "hey\n",    // the data, already a multiple of 4
//!     // The trailer: an empty entry named TRAILER!!! (nlink 1, namesize 11).
//!     "070701", "00000000", "00000000", "00000000", "00000000", "00000001", "00000000",
//!     "00000000", "00000000", "00000000", "00000000", "00000000", "0000000B", "00000000",
//!     "TRAILER!!!\0", "\0\0\0",
//! );
//! let archive = cpio::Archive::new(bytes.as_bytes());
//! let hi = archive.find("/hi").expect("hi is in the archive");
//! assert!(hi.is_file());
//! assert_eq!(hi.data(), b"hey\n");
//! assert_eq!(archive.entries().count(), 1); // the trailer is not an entry
//! ```
//!
//! # Writing
//!
//! With the `alloc` feature, `Builder` produces archives (always `070701`, with `mtime` 0 and
//! owner root, so the output depends only on the input) that GNU `cpio` and Linux accept.
//!
//! # Tests
//!
//! `src/tests.rs` (a child module `tests` of the crate root in its own file, as in every host
//! crate of the kernel) holds the unit and property tests: they use the crate-private
//! `read::normalize`, so they cannot live in `tests/`.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

mod error;
mod read;
#[cfg(test)]
mod tests;
#[cfg(any(feature = "alloc", test))]
mod write;

pub use error::Error;
pub use read::{Archive, Entries, Entry};
#[cfg(any(feature = "alloc", test))]
pub use write::Builder;

/// The longest entry name, in bytes without its NUL, that `Builder` accepts: together with the
/// NUL it fills Linux's `PATH_MAX` (4096), beyond which the kernel's initramfs unpacker gives up.
pub const MAX_NAME_LEN: usize = 4095;

/// Length of an entry header: 6 bytes of magic and 13 fields of 8 hex digits.
const HEADER_LEN: usize = 6 + 13 * 8;
/// Magic of the plain newc format.
const MAGIC_NEWC: &[u8] = b"070701";
/// Magic of the newc variant whose `check` field is the sum of the data bytes.
const MAGIC_CRC: &[u8] = b"070702";
/// Name of the entry that marks the end of the archive.
const TRAILER: &str = "TRAILER!!!";

/// Mask of the file-type bits of a mode.
const TYPE_MASK: u32 = 0o170000;
/// File type of a regular file.
const TYPE_FILE: u32 = 0o100000;
/// File type of a directory.
const TYPE_DIR: u32 = 0o040000;
/// File type of a symbolic link.
const TYPE_SYMLINK: u32 = 0o120000;
