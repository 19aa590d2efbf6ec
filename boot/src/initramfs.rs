//! The initramfs: a small cpio "newc" archive that the bootloader loads next to the kernel.
//!
//! Linux bootloaders hand the kernel two things besides the kernel image itself: a command line
//! and an initial RAM filesystem. The `bootloader` crate has no command line, so Sheaf puts it
//! into the initramfs as a file named `cmdline`, which the kernel reads at boot (see
//! `kernel/src/cmdline.rs`). Every initramfs built here therefore contains:
//!
//! - `cmdline`: the kernel command line, as text (may be empty);
//! - `etc/motd`: the greeting the shell prints ([`MOTD`]);
//! - `lib/modules/*.ko`: the example modules ([`EXAMPLE_MODULES`]), for `insmod`;
//! - whatever else the caller adds ([`Initramfs::add_file`], [`Initramfs::add_host_file`]).
//!
//! The archive is written with the kernel's own `cpio` crate, so host and kernel agree on the
//! format by construction. Its bytes depend only on the files added (no timestamps), which lets
//! [`crate::image`] cache disk images by the archive's content.

use std::path::Path;

use crate::Error;

/// Contents of `etc/motd`, the message of the day the shell prints when it starts.
pub const MOTD: &str = "Welcome to Sheaf\n";

/// The example modules (`modules/`), packed into every initramfs under `lib/modules/`, where
/// the shell's `insmod NAME.ko` finds them. They are the loader's test fixtures, built by
/// `cargo modbuild fixtures` and checked in (a `modbuild` test fails when one is stale), so
/// `cargo run` needs neither gcc nor a module build.
pub const EXAMPLE_MODULES: [(&str, &[u8]); 11] = {
    macro_rules! ko {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!(
                    "../../kernel/crates/modload/tests/fixtures/",
                    $name
                )),
            )
        };
    }
    [
        ko!("hello.ko"),
        ko!("hello_c.ko"),
        ko!("exporter.ko"),
        ko!("user.ko"),
        ko!("nodev.ko"),
        ko!("rust_user.ko"),
        ko!("slabtest.ko"),
        ko!("rcuwq.ko"),
        ko!("static_cache.ko"),
        ko!("static_cache_rs.ko"),
        ko!("slabdemo.ko"),
    ]
};

/// Where [`EXAMPLE_MODULES`] go in the archive.
pub const MODULE_DIR: &str = "lib/modules";

/// An initramfs being assembled: a list of files, packed by [`Initramfs::to_cpio`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initramfs {
    /// `(path inside the archive, contents)`, in the order they were added.
    files: Vec<(String, Vec<u8>)>,
}

impl Initramfs {
    /// Starts an initramfs holding the kernel command line `cmdline`, `etc/motd` and the
    /// example modules.
    pub fn new(cmdline: &str) -> Self {
        let mut files = vec![
            ("cmdline".to_owned(), cmdline.as_bytes().to_vec()),
            ("etc/motd".to_owned(), MOTD.as_bytes().to_vec()),
        ];
        for (name, bytes) in EXAMPLE_MODULES {
            files.push((format!("{MODULE_DIR}/{name}"), bytes.to_vec()));
        }
        Self { files }
    }

    /// The kernel command line stored in `cmdline`.
    pub fn cmdline(&self) -> String {
        self.file("cmdline")
            .map(|data| String::from_utf8_lossy(data).into_owned())
            .unwrap_or_default()
    }

    /// The contents of the file at `path`, if one was added.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(name, _)| name == path)
            .map(|(_, data)| data.as_slice())
    }

    /// Adds a file at `path`, a relative path like `ktest/fixture.txt`. Parent directories are
    /// created in the archive automatically.
    ///
    /// Fails if the path is not a clean relative path (empty, leading `/`, `.` or `..`
    /// components, empty components) or if a file with that path was already added.
    pub fn add_file(&mut self, path: &str, data: impl Into<Vec<u8>>) -> Result<&mut Self, Error> {
        check_path(path)?;
        if self.file(path).is_some() {
            return Err(Error::Initramfs(format!(
                "two files named `{path}` (cmdline and etc/motd are always present)"
            )));
        }
        self.files.push((path.to_owned(), data.into()));
        Ok(self)
    }

    /// Reads the host file at `path` and adds it at the root of the archive under its file name
    /// (`--initrd-add some/dir/notes.txt` becomes `notes.txt`).
    pub fn add_host_file(&mut self, path: &Path) -> Result<&mut Self, Error> {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| {
                Error::Initramfs(format!(
                    "`{}` has no file name usable in the initramfs (need UTF-8)",
                    path.display()
                ))
            })?;
        let data = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read `{}`", path.display()), e))?;
        self.add_file(name, data)
    }

    /// Packs the files into a cpio newc archive.
    ///
    /// Each file's parent directories get their own directory entry before the file, as tools
    /// like GNU cpio write them; a reader that only looks files up by path does not need them,
    /// but `ls` in the shell shows them.
    pub fn to_cpio(&self) -> Result<Vec<u8>, Error> {
        let bad = |e: cpio::Error| Error::Initramfs(e.to_string());
        let mut builder = cpio::Builder::new();
        let mut dirs_done: Vec<&str> = Vec::new();
        for (path, data) in &self.files {
            // Every proper prefix ending before a `/` is a directory: `a`, then `a/b` for `a/b/c`.
            for (slash, _) in path.match_indices('/') {
                let dir = &path[..slash];
                if !dirs_done.contains(&dir) {
                    builder.add_dir(dir).map_err(bad)?;
                    dirs_done.push(dir);
                }
            }
            builder.add_file(path, data).map_err(bad)?;
        }
        Ok(builder.finish())
    }
}

/// Accepts only clean relative paths: `a`, `a/b.txt`; not `/a`, `a//b`, `./a`, `a/../b`, `a/`.
fn check_path(path: &str) -> Result<(), Error> {
    let clean = !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if clean {
        Ok(())
    } else {
        Err(Error::Initramfs(format!(
            "`{path}` is not a clean relative path inside the initramfs"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names and contents of the entries of an archive, directories marked with a trailing `/`.
    fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        cpio::Archive::new(bytes)
            .entries()
            .map(|entry| {
                let entry = entry.expect("well-formed archive");
                let suffix = if entry.is_dir() { "/" } else { "" };
                (format!("{}{suffix}", entry.name()), entry.data().to_vec())
            })
            .collect()
    }

    /// The entries every initramfs starts with.
    fn base_entries() -> Vec<(String, Vec<u8>)> {
        let mut v = vec![
            ("cmdline".to_owned(), vec![]),
            ("etc/".to_owned(), vec![]),
            ("etc/motd".to_owned(), b"Welcome to Sheaf\n".to_vec()),
            ("lib/".to_owned(), vec![]),
            ("lib/modules/".to_owned(), vec![]),
        ];
        for (name, bytes) in EXAMPLE_MODULES {
            v.push((format!("lib/modules/{name}"), bytes.to_vec()));
        }
        v
    }

    #[test]
    fn always_has_cmdline_motd_and_the_example_modules() {
        let bytes = Initramfs::new("").to_cpio().unwrap();
        assert_eq!(entries(&bytes), base_entries());
        // Real modules, not placeholders.
        for (_, bytes) in EXAMPLE_MODULES {
            assert_eq!(&bytes[..4], b"\x7fELF");
        }
    }

    #[test]
    fn stores_the_command_line() {
        let initramfs = Initramfs::new("ktest=run ktest.only=a,b");
        assert_eq!(initramfs.cmdline(), "ktest=run ktest.only=a,b");
        let bytes = initramfs.to_cpio().unwrap();
        let archive = cpio::Archive::new(&bytes);
        assert_eq!(
            archive.find("cmdline").unwrap().data(),
            b"ktest=run ktest.only=a,b"
        );
    }

    #[test]
    fn nested_files_get_their_directories_once() {
        let mut initramfs = Initramfs::new("");
        initramfs
            .add_file("ktest/fixture.txt", "x")
            .unwrap()
            .add_file("ktest/deep/er.txt", "y")
            .unwrap();
        let names: Vec<String> = entries(&initramfs.to_cpio().unwrap())
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let base: Vec<String> = base_entries().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[..base.len()], base[..]);
        assert_eq!(
            names[base.len()..],
            [
                "ktest/",
                "ktest/fixture.txt",
                "ktest/deep/",
                "ktest/deep/er.txt"
            ]
        );
    }

    #[test]
    fn same_files_give_same_bytes() {
        let make = || {
            let mut initramfs = Initramfs::new("quiet");
            initramfs.add_file("a", "1").unwrap();
            initramfs.to_cpio().unwrap()
        };
        assert_eq!(make(), make());
    }

    #[test]
    fn rejects_bad_and_duplicate_names() {
        let mut initramfs = Initramfs::new("");
        for bad in ["", "/abs", "a//b", "./a", "a/../b", "a/", "nul\0"] {
            assert!(initramfs.add_file(bad, "").is_err(), "{bad:?} accepted");
        }
        assert!(initramfs.add_file("cmdline", "again").is_err());
        assert!(initramfs.add_file("etc/motd", "again").is_err());
    }

    #[test]
    fn host_files_go_to_the_root_under_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello").unwrap();
        let mut initramfs = Initramfs::new("");
        initramfs.add_host_file(&path).unwrap();
        assert_eq!(initramfs.file("notes.txt"), Some(&b"hello"[..]));
    }

    #[test]
    fn missing_host_file_is_a_clear_error() {
        let err = Initramfs::new("")
            .add_host_file(Path::new("/no/such/file.txt"))
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("/no/such/file.txt"), "{message}");
        assert!(message.contains("No such file"), "{message}");
    }
}
