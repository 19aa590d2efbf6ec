//! Bootable disk images, built with the `bootloader` crate and cached under `target/sheaf/`.
//!
//! A disk image here is a raw disk file that QEMU boots from. The `bootloader` crate builds it:
//! for BIOS an MBR disk whose first sectors hold the boot stages, for UEFI a GPT disk with an
//! EFI system partition holding `bootx64.efi`. Both carry a FAT partition with three files:
//! the kernel ELF, the ramdisk (our initramfs) and `boot.json`, the bootloader's runtime
//! configuration.
//!
//! Building an image copies the whole kernel, so two things keep it fast:
//!
//! - **Stripping.** The kernel is built with full debug info (for GDB), which makes the ELF
//!   over ten times larger than its code and data. The BIOS bootloader loads the entire file
//!   from disk through emulated BIOS calls and copies it byte by byte (about 0.45 s per MiB
//!   under TCG), so we put a copy without debug info *and without the symbol table* on the
//!   disk (`llvm-objcopy --strip-all`, from rustup's `llvm-tools` component): nothing in the
//!   VM reads the symbols, and GDB uses the original ELF. Dropping `.symtab`/`.strtab` makes
//!   the file about a quarter smaller than `--strip-debug` did. The stripped copy is redone
//!   only when the kernel is newer.
//! - **Caching.** An image is fully determined by the firmware, the stripped kernel and the
//!   initramfs bytes, so it is kept under a name derived from a hash of the three and reused.
//!
//! QEMU takes a write lock on its disk file, so two VMs can't share one: every run gets its own
//! copy of the cached image ([`DiskImage`]), deleted when the run is over. The copy costs a
//! few milliseconds; the tests boot several VMs in parallel.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bootloader::{BiosBoot, BootConfig, UefiBoot};
use bootloader_boot_config::LevelFilter;
use tempfile::NamedTempFile;

use crate::initramfs::Initramfs;
use crate::{Error, Firmware};

/// The `bootloader` version pinned in `boot/Cargo.toml`: part of the image cache key.
const BOOTLOADER_VERSION: &str = "0.11.17";

/// How many cached images to keep; older ones (by last use) are deleted.
const CACHED_IMAGES: usize = 32;

/// Per-run files older than this are leftovers of a killed run and get deleted.
const STALE_RUN_FILE: Duration = Duration::from_secs(6 * 60 * 60);

/// Finds the Cargo target directory that contains the kernel binary.
///
/// Cargo marks its target directory with a `CACHEDIR.TAG` file, and also each per-target
/// directory inside it (`target/x86_64-unknown-none/`). So we take the nearest ancestor of the
/// kernel path holding one, and climb while the parent holds one too. Failing that,
/// `CARGO_TARGET_DIR`, then an ancestor named `target`, then the kernel's own directory.
pub fn target_dir(kernel: &Path) -> PathBuf {
    let tagged = |dir: &Path| dir.join("CACHEDIR.TAG").is_file();
    let ancestors = || kernel.ancestors().skip(1);
    if let Some(mut dir) = ancestors().find(|dir| tagged(dir)) {
        while let Some(parent) = dir.parent().filter(|parent| tagged(parent)) {
            dir = parent;
        }
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = ancestors().find(|dir| dir.file_name().is_some_and(|n| n == "target")) {
        return dir.to_path_buf();
    }
    kernel.parent().unwrap_or(Path::new(".")).to_path_buf()
}

/// The directory for Sheaf's host-side files: `<target dir>/sheaf`.
pub fn work_dir(kernel: &Path) -> PathBuf {
    target_dir(kernel).join("sheaf")
}

/// Finds `llvm-objcopy` in the active Rust toolchain (rustup component `llvm-tools`).
///
/// It lives in `<sysroot>/lib/rustlib/<host triple>/bin/`. We ask `rustc` for the sysroot and
/// look in every triple's directory, preferring x86_64 Linux.
pub fn find_llvm_objcopy() -> Option<PathBuf> {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let sysroot = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    let rustlib = sysroot.join("lib").join("rustlib");
    let preferred = rustlib.join("x86_64-unknown-linux-gnu/bin/llvm-objcopy");
    if preferred.is_file() {
        return Some(preferred);
    }
    fs::read_dir(&rustlib)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin").join("llvm-objcopy"))
        .find(|candidate| candidate.is_file())
}

/// The kernel as it goes on the disk: its path and a hash of its bytes (for the image cache).
#[derive(Debug, Clone)]
struct DiskKernel {
    path: PathBuf,
    hash: u64,
}

/// Builds (and caches) disk images of one kernel.
///
/// One `Images` serves a whole program run and may be shared between threads.
#[derive(Debug)]
pub struct Images {
    /// The kernel ELF as Cargo built it (with debug info).
    kernel: PathBuf,
    /// `target/sheaf`: stripped kernel, cached images, per-run files, logs.
    dir: PathBuf,
    /// The kernel copy to put on disks, once prepared.
    disk_kernel: Mutex<Option<DiskKernel>>,
    /// The kernel's symbol table ([`crate::kallsyms`]), once made.
    kallsyms: Mutex<Option<std::sync::Arc<Vec<u8>>>>,
    /// Whether the bootloader logs its stages on the serial port (for boot timing only).
    bootloader_log: bool,
}

impl Images {
    /// Prepares to build images of `kernel`, keeping files under [`work_dir`].
    pub fn new(kernel: &Path) -> Self {
        Self::with_dir(kernel, &work_dir(kernel))
    }

    /// Like [`Images::new`] with an explicit directory for the generated files.
    pub fn with_dir(kernel: &Path, dir: &Path) -> Self {
        Self {
            kernel: kernel.to_path_buf(),
            dir: dir.to_path_buf(),
            disk_kernel: Mutex::new(None),
            kallsyms: Mutex::new(None),
            bootloader_log: false,
        }
    }

    /// Makes the bootloader log its stages on the serial port (at `Info` level) in the images
    /// built from now on. Off by default: under emulation the log costs boot time, so it is
    /// only for finding out where that time goes (`SHEAF_BOOT_TIMES=bootloader`).
    pub fn set_bootloader_log(&mut self, on: bool) {
        self.bootloader_log = on;
    }

    /// The kernel ELF with debug info (the one to give to GDB).
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    /// The directory holding the generated files (`target/sheaf`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A directory for files that live only as long as one VM (image copies, UEFI variables).
    /// Leftovers of runs that were killed before cleaning up are deleted on the way.
    pub fn run_dir(&self) -> Result<PathBuf, Error> {
        let dir = self.dir.join("run");
        create_dir(&dir)?;
        remove_stale_files(&dir);
        Ok(dir)
    }

    /// The kernel without debug info or symbols, made with `llvm-objcopy --strip-all` and kept
    /// as `target/sheaf/kernel-<hash>.disk`; redone only when the kernel is newer than it.
    ///
    /// If `llvm-objcopy` is missing or fails, prints a note and returns the original kernel:
    /// it boots just the same, only more slowly.
    pub fn stripped_kernel(&self) -> Result<PathBuf, Error> {
        create_dir(&self.dir)?;
        // One stripped copy per kernel path, so debug and release builds don't overwrite
        // each other's.
        let out = self
            .dir
            .join(format!("kernel-{:016x}.disk", hash_of(&self.kernel)));
        let kernel_time = modified(&self.kernel)
            .map_err(|e| Error::io(format!("cannot read `{}`", self.kernel.display()), e))?;
        if modified(&out).is_ok_and(|stripped_time| stripped_time >= kernel_time) {
            return Ok(out);
        }
        let Some(objcopy) = find_llvm_objcopy() else {
            eprintln!(
                "note: llvm-objcopy not found (rustup component add llvm-tools); \
                 booting the unstripped kernel, which loads more slowly"
            );
            return Ok(self.kernel.clone());
        };
        // Strip into a temporary file next to the final one, then rename it into place: a
        // concurrent run never sees a half-written kernel.
        let tmp = NamedTempFile::new_in(&self.dir).map_err(|e| {
            Error::io(
                format!("cannot create a file in `{}`", self.dir.display()),
                e,
            )
        })?;
        let result = Command::new(&objcopy)
            .arg("--strip-all")
            .arg(&self.kernel)
            .arg(tmp.path())
            .output();
        match result {
            Ok(output) if output.status.success() => {
                tmp.persist(&out)
                    .map_err(|e| Error::io(format!("cannot write `{}`", out.display()), e.error))?;
                Ok(out)
            }
            Ok(output) => {
                eprintln!(
                    "note: `{} --strip-all` failed ({}); booting the unstripped kernel\n{}",
                    objcopy.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim_end()
                );
                Ok(self.kernel.clone())
            }
            Err(e) => {
                eprintln!(
                    "note: cannot run `{}` ({e}); booting the unstripped kernel",
                    objcopy.display()
                );
                Ok(self.kernel.clone())
            }
        }
    }

    /// The kernel to put on disks, prepared once per `Images`.
    fn disk_kernel(&self) -> Result<DiskKernel, Error> {
        let mut slot = self.disk_kernel.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prepared) = &*slot {
            return Ok(prepared.clone());
        }
        let path = self.stripped_kernel()?;
        let bytes = fs::read(&path)
            .map_err(|e| Error::io(format!("cannot read `{}`", path.display()), e))?;
        let prepared = DiskKernel {
            path,
            hash: hash_of(&bytes),
        };
        *slot = Some(prepared.clone());
        Ok(prepared)
    }

    /// A hash of the kernel as it goes on the disk: changes whenever the kernel does, so it can
    /// key caches of facts about this kernel (like its list of tests).
    pub fn kernel_hash(&self) -> Result<u64, Error> {
        Ok(self.disk_kernel()?.hash)
    }

    /// Returns the cached image for this firmware and initramfs, building it if needed.
    ///
    /// The returned path is shared: don't boot it directly (see [`Images::disk_image`]).
    pub fn cached_image(
        &self,
        firmware: Firmware,
        initramfs: &Initramfs,
    ) -> Result<PathBuf, Error> {
        let ramdisk = self.with_kallsyms(initramfs)?.to_cpio()?;
        let kernel = self.disk_kernel()?;
        let key = {
            let mut hasher = DefaultHasher::new();
            (firmware, kernel.hash, &ramdisk, self.bootloader_log).hash(&mut hasher);
            // A different bootloader version makes different images.
            BOOTLOADER_VERSION.hash(&mut hasher);
            hasher.finish()
        };
        let images = self.dir.join("images");
        create_dir(&images)?;
        let cached = images.join(format!("{}-{key:016x}.img", firmware.name()));
        if cached.is_file() {
            // Mark it as recently used, so pruning keeps it (best effort).
            let _ = fs::File::options()
                .append(true)
                .open(&cached)
                .and_then(|file| file.set_modified(SystemTime::now()));
            return Ok(cached);
        }

        // The bootloader crate reads the ramdisk from a file.
        let io_err =
            |what: &str, e| Error::io(format!("cannot {what} in `{}`", images.display()), e);
        let mut ramdisk_file =
            NamedTempFile::new_in(&images).map_err(|e| io_err("create a file", e))?;
        std::io::Write::write_all(&mut ramdisk_file, &ramdisk).map_err(|e| io_err("write", e))?;
        let image_file = NamedTempFile::new_in(&images).map_err(|e| io_err("create a file", e))?;

        let config = boot_config(self.bootloader_log);
        let built = match firmware {
            Firmware::Bios => BiosBoot::new(&kernel.path)
                .set_ramdisk(ramdisk_file.path())
                .set_boot_config(&config)
                .create_disk_image(image_file.path()),
            Firmware::Uefi => UefiBoot::new(&kernel.path)
                .set_ramdisk(ramdisk_file.path())
                .set_boot_config(&config)
                .create_disk_image(image_file.path()),
        };
        built.map_err(|e| Error::Image(format!("{e:#}")))?;
        image_file
            .persist(&cached)
            .map_err(|e| Error::io(format!("cannot write `{}`", cached.display()), e.error))?;
        prune(&images, CACHED_IMAGES);
        Ok(cached)
    }

    /// `initramfs` with the kernel's symbol table added as [`crate::kallsyms::PATH`] (made
    /// once per `Images`), unless it has one already.
    pub fn with_kallsyms(&self, initramfs: &Initramfs) -> Result<Initramfs, Error> {
        let mut initramfs = initramfs.clone();
        if initramfs.file(crate::kallsyms::PATH).is_some() {
            return Ok(initramfs);
        }
        let table = {
            let mut cached = self.kallsyms.lock().unwrap_or_else(|e| e.into_inner());
            match &*cached {
                Some(table) => std::sync::Arc::clone(table),
                None => {
                    let table = std::sync::Arc::new(crate::kallsyms::from_elf(&self.kernel)?);
                    *cached = Some(std::sync::Arc::clone(&table));
                    table
                }
            }
        };
        initramfs.add_file(crate::kallsyms::PATH, table.to_vec())?;
        Ok(initramfs)
    }

    /// A private disk image for one VM: a copy of the cached image, deleted on drop.
    pub fn disk_image(
        &self,
        firmware: Firmware,
        initramfs: &Initramfs,
    ) -> Result<DiskImage, Error> {
        let run_dir = self.run_dir()?;
        let prefix = format!("{}-", firmware.name());
        let cached = self.cached_image(firmware, initramfs)?;
        let file = match private_copy(&cached, &run_dir, &prefix, ".img") {
            // Another run may have pruned the cached image just now: build it again, once.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let cached = self.cached_image(firmware, initramfs)?;
                private_copy(&cached, &run_dir, &prefix, ".img")?
            }
            other => other?,
        };
        Ok(DiskImage { file })
    }
}

/// The bootloader's runtime configuration (`boot.json` on the disk).
///
/// By default the bootloader logs nothing: its log would go to the serial port (slowly, byte
/// by byte under emulation) and to the frame buffer, and the kernel has its own console. The
/// level is `Off` rather than the default `Trace`, so its log calls return at once instead
/// of building records for no one. With `log`, it logs its stages (`Info`) on the serial port,
/// which [`crate::qemu::BootTimes`] timestamps.
pub fn boot_config(log: bool) -> BootConfig {
    let mut config = BootConfig::default();
    config.frame_buffer_logging = false;
    config.serial_logging = log;
    config.log_level = if log {
        LevelFilter::Info
    } else {
        LevelFilter::Off
    };
    config
}

/// A disk image that belongs to one VM. The file is deleted when this is dropped.
#[derive(Debug)]
pub struct DiskImage {
    file: NamedTempFile,
}

impl DiskImage {
    /// Where the image is, for QEMU's `-drive file=...`.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Copies `source` to a new temporary file in `dir`, deleted when the handle is dropped.
pub fn private_copy(
    source: &Path,
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<NamedTempFile, Error> {
    let copy = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("cannot create a file in `{}`", dir.display()), e))?;
    fs::copy(source, copy.path()).map_err(|e| {
        Error::io(
            format!(
                "cannot copy `{}` to `{}`",
                source.display(),
                copy.path().display()
            ),
            e,
        )
    })?;
    Ok(copy)
}

/// Creates `dir` and its parents if needed.
fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create `{}`", dir.display()), e))
}

/// A file's modification time.
fn modified(path: &Path) -> std::io::Result<SystemTime> {
    fs::metadata(path)?.modified()
}

/// A 64-bit hash, good enough to name cache files (not a security boundary).
fn hash_of(value: &(impl Hash + ?Sized)) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Deletes all but the `keep` most recently modified files in `dir` (best effort: a file that
/// another process deletes first is fine).
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut images: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "img"))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    images.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in images.into_iter().skip(keep) {
        let _ = fs::remove_file(path);
    }
}

/// Deletes files in `dir` not modified for [`STALE_RUN_FILE`]. On Linux a VM that still has
/// such a file open keeps using it: deleting only removes the name.
fn remove_stale_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.filter_map(Result::ok) {
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok());
        if age.is_some_and(|age| age > STALE_RUN_FILE) {
            // Another run may have deleted it first; that's fine.
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_is_the_ancestor_with_cachedir_tag() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        let kernel_dir = target.join("x86_64-unknown-none/debug/deps");
        fs::create_dir_all(&kernel_dir).unwrap();
        let tag = "Signature: 8a477f597d28d172789f06886806bc55";
        fs::write(target.join("CACHEDIR.TAG"), tag).unwrap();
        fs::write(target.join("x86_64-unknown-none/CACHEDIR.TAG"), tag).unwrap();
        let kernel = kernel_dir.join("kernel-0123");
        assert_eq!(target_dir(&kernel), target);
        assert_eq!(work_dir(&kernel), target.join("sheaf"));
    }

    #[test]
    fn prune_keeps_the_newest_images() {
        let dir = tempfile::tempdir().unwrap();
        let base = SystemTime::now() - Duration::from_secs(100);
        for i in 0..5u64 {
            let path = dir.path().join(format!("{i}.img"));
            fs::write(&path, "x").unwrap();
            let file = fs::File::options().append(true).open(&path).unwrap();
            file.set_modified(base + Duration::from_secs(i)).unwrap();
        }
        fs::write(dir.path().join("other.txt"), "x").unwrap();
        prune(dir.path(), 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["3.img", "4.img", "other.txt"]);
    }

    #[test]
    fn private_copies_are_separate_and_deleted_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("cached.img");
        fs::write(&source, "disk").unwrap();
        let a = private_copy(&source, dir.path(), "bios-", ".img").unwrap();
        let b = private_copy(&source, dir.path(), "bios-", ".img").unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(fs::read(a.path()).unwrap(), b"disk");
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());
    }
}
