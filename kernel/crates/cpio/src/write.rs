//! The writer: builds a newc archive in a growable buffer.

use alloc::vec::Vec;

use crate::{Error, MAGIC_NEWC, MAX_NAME_LEN, TRAILER, TYPE_DIR, TYPE_FILE};

/// Builds a newc archive in memory, one entry at a time.
///
/// Every entry gets its own inode number (counting from 1), owner root, and `mtime` 0, so the
/// same calls always produce the same bytes. Entries are written in the order they are added;
/// nothing checks that a file's parent directories were added first, or that names are unique.
///
/// ```
/// let mut builder = cpio::Builder::new();
/// builder.add_dir("etc")?.add_file("etc/motd", b"hello\n")?;
/// let bytes = builder.finish();
///
/// let archive = cpio::Archive::new(&bytes);
/// assert_eq!(archive.find("/etc/motd").unwrap().data(), b"hello\n");
/// # Ok::<(), cpio::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Starts an empty archive.
    pub const fn new() -> Self {
        Self {
            bytes: Vec::new(),
            next_ino: 1,
        }
    }

    /// Adds a regular file with permissions `0o644` (`rw-r--r--`).
    ///
    /// Fails if the name is empty, contains a NUL, is `TRAILER!!!` or is longer than
    /// [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes, or if `data` is 4 GiB or more.
    pub fn add_file(&mut self, name: &str, data: &[u8]) -> Result<&mut Self, Error> {
        self.add_file_with_mode(name, data, 0o644)
    }

    /// Adds a regular file with the given permission bits (e.g. `0o755` for an executable).
    ///
    /// Fails like [`Builder::add_file`], and also if `permissions` has bits outside `0o7777`
    /// (the file-type bits are this method's to set).
    pub fn add_file_with_mode(
        &mut self,
        name: &str,
        data: &[u8],
        permissions: u32,
    ) -> Result<&mut Self, Error> {
        if permissions & !0o7777 != 0 {
            return Err(Error::InvalidPermissions { mode: permissions });
        }
        self.add(name, TYPE_FILE | permissions, 1, data)
    }

    /// Adds a directory with permissions `0o755` (`rwxr-xr-x`).
    ///
    /// Fails if the name is invalid, as for [`Builder::add_file`].
    pub fn add_dir(&mut self, name: &str) -> Result<&mut Self, Error> {
        // A directory's links: its entry in the parent, and its own `.`.
        self.add(name, TYPE_DIR | 0o755, 2, &[])
    }

    /// Appends the `TRAILER!!!` entry and returns the finished archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.write_entry(TRAILER, 0, 0, 1, &[]);
        self.bytes
    }

    /// Checks the name and size, allocates an inode number and writes the entry.
    fn add(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> Result<&mut Self, Error> {
        check_name(name)?;
        size_field(data.len())?;
        let ino = self.next_ino;
        self.next_ino = ino.checked_add(1).ok_or(Error::TooManyEntries)?;
        self.write_entry(name, ino, mode, nlink, data);
        Ok(self)
    }

    /// Writes one entry: header, name, NUL, padding, data, padding. `name` and `data` must have
    /// passed [`check_name`] and [`size_field`] (the trailer's name skips the reserved check).
    fn write_entry(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, data: &[u8]) {
        // The callers checked that both sizes fit in 32 bits.
        let (namesize, filesize) = (name.len() as u32 + 1, data.len() as u32);
        self.bytes.extend_from_slice(MAGIC_NEWC);
        // ino, mode, uid, gid, nlink, mtime, filesize, dev and rdev major/minor, namesize, check.
        let fields = [ino, mode, 0, 0, nlink, 0, filesize, 0, 0, 0, 0, namesize, 0];
        for field in fields {
            for shift in (0..8).rev().map(|digit| digit * 4) {
                self.bytes
                    .push(b"0123456789ABCDEF"[(field >> shift) as usize & 0xF]);
            }
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// Appends zero bytes up to the next multiple of 4.
    fn pad(&mut self) {
        self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
    }
}

/// Checks that `name` can be stored as an entry name.
fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        Err(Error::EmptyName)
    } else if name.contains('\0') {
        Err(Error::NameContainsNul)
    } else if name == TRAILER {
        Err(Error::ReservedName)
    } else if name.len() > MAX_NAME_LEN {
        Err(Error::NameTooLong { len: name.len() })
    } else {
        Ok(())
    }
}

/// The `filesize` field for `len` bytes of data, if it fits in 32 bits.
fn size_field(len: usize) -> Result<u32, Error> {
    u32::try_from(len).map_err(|_| Error::DataTooLarge { len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Archive;

    #[test]
    fn matches_the_hand_written_example() {
        let mut builder = Builder::new();
        builder.add_file("hi", b"hey\n").unwrap();
        let expected = concat!(
            "070701",
            "00000001",
            "000081A4",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000004",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000003",
            "00000000",
            "hi\0\0\0\0",
            "hey\n",
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000B",
            "00000000",
            "TRAILER!!!\0\0\0\0",
        );
        assert_eq!(builder.finish(), expected.as_bytes());
    }

    #[test]
    fn sets_modes_links_and_distinct_inodes() {
        let mut builder = Builder::new();
        builder
            .add_dir("bin")
            .unwrap()
            .add_file_with_mode("bin/init", b"\x7fELF", 0o4755)
            .unwrap()
            .add_file("motd", b"hello")
            .unwrap();
        let bytes = builder.finish();
        let entries: Vec<_> = Archive::new(&bytes).entries().map(Result::unwrap).collect();
        let modes: Vec<_> = entries.iter().map(|e| (e.mode(), e.nlink())).collect();
        assert_eq!(modes, [(0o040755, 2), (0o104755, 1), (0o100644, 1)]);
        let inodes: Vec<_> = entries.iter().map(|e| e.ino()).collect();
        assert_eq!(inodes, [1, 2, 3]);
        assert!(entries.iter().all(|e| e.mtime() == 0 && e.uid() == 0));
    }

    #[test]
    fn rejects_bad_names() {
        let mut builder = Builder::new();
        assert_eq!(builder.add_file("", b"").unwrap_err(), Error::EmptyName);
        assert_eq!(builder.add_dir("a\0b").unwrap_err(), Error::NameContainsNul);
        assert_eq!(
            builder.add_file(TRAILER, b"").unwrap_err(),
            Error::ReservedName
        );
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let error = Error::NameTooLong {
            len: MAX_NAME_LEN + 1,
        };
        assert_eq!(builder.add_file(&long, b"").unwrap_err(), error);
        assert!(builder.add_file(&long[1..], b"").is_ok());
    }

    #[test]
    fn rejects_bad_permissions() {
        let error = Error::InvalidPermissions { mode: 0o100644 };
        let result = Builder::new()
            .add_file_with_mode("a", b"", 0o100644)
            .map(|_| ());
        assert_eq!(result, Err(error));
    }

    #[test]
    fn rejects_data_too_large() {
        // Allocating 4 GiB in a test is unkind, so test the size check directly.
        let len = u32::MAX as usize + 1;
        assert_eq!(size_field(len), Err(Error::DataTooLarge { len }));
        assert_eq!(size_field(u32::MAX as usize), Ok(u32::MAX));
    }

    #[test]
    fn rejects_entries_past_the_last_inode_and_writes_nothing() {
        let mut builder = Builder::new();
        builder.next_ino = u32::MAX;
        assert_eq!(
            builder.add_file("a", b"").unwrap_err(),
            Error::TooManyEntries
        );
        assert_eq!(builder.finish(), Builder::new().finish());
    }

    #[test]
    fn empty_archive_is_just_the_trailer() {
        let bytes = Builder::default().finish();
        assert_eq!(bytes.len(), 124);
        assert_eq!(Archive::new(&bytes).entries().count(), 0);
    }
}
