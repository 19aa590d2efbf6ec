//! The host side of Sheaf: everything that runs on the developer's machine rather than in the VM.
//!
//! The kernel is a bare-metal ELF file. To run it, the host has to:
//!
//! 1. pack an **initramfs** ([`initramfs`]): a cpio archive with the kernel command line and a
//!    few files, which the bootloader loads into memory next to the kernel;
//! 2. build a bootable **disk image** ([`image`]) that holds the `bootloader` crate's BIOS or
//!    UEFI stages, the kernel and the initramfs;
//! 3. start **QEMU** ([`qemu`]) on that image and turn its exit status back into success or
//!    failure (the kernel leaves QEMU through the `isa-debug-exit` device).
//!
//! Two programs are built on top of that:
//!
//! - the **launcher** ([`launcher`], `cargo run -- [options]`): boots the kernel interactively
//!   with the serial console on the terminal;
//! - the **on-target test runner** ([`ktest`], `cargo test`): asks the kernel which tests it
//!   has, runs them in as few boots as possible and reports them through `libtest-mimic`, like
//!   ordinary `#[test]`s.
//!
//! Nothing here needs `unsafe`: it is plain file and process handling.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod decode;
pub mod headers;
pub mod image;
pub mod initramfs;
pub mod kallsyms;
pub mod ktest;
pub mod launcher;
pub mod qemu;

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Which firmware the virtual machine starts with, and so which kind of disk image it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Firmware {
    /// Legacy BIOS (QEMU's built-in SeaBIOS) booting an MBR disk.
    Bios,
    /// UEFI (OVMF) booting a GPT disk with an EFI system partition.
    Uefi,
}

impl Firmware {
    /// The least memory, in MiB, a machine with this firmware needs to boot Sheaf; the launcher
    /// refuses less.
    ///
    /// The floor is the boot path's, not the kernel's: the BIOS bootloader loads the kernel at
    /// 16 MiB and its last stage needs frames above it for the kernel's segments, the ramdisk,
    /// the boot information and the page tables of the physical-memory map; with too little it
    /// halts before the kernel runs, with no output at all. Measured on QEMU 7.2 with today's
    /// kernel: BIOS boots with 22M and hangs with 21M; UEFI (OVMF, then the UEFI bootloader)
    /// boots with 45M and hangs with 44M. The floors leave 2–3 MiB for the kernel to grow.
    /// The kernel itself needs less (`kcore::memory::MIN_USABLE_MEMORY`) and says so if it
    /// finds too little.
    pub fn min_memory_mib(self) -> u64 {
        match self {
            Firmware::Bios => 24,
            Firmware::Uefi => 48,
        }
    }

    /// A short lowercase name, used in file names (`bios`, `uefi`).
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
        })
    }
}

/// Everything that can go wrong on the host before or while starting QEMU.
///
/// Each variant's message is written for a person: the programs print it after `error: ` and
/// exit, without a backtrace.
#[derive(Debug)]
pub enum Error {
    /// `qemu-system-x86_64` is not on the `PATH`.
    QemuNotFound,
    /// No OVMF firmware file was found for a UEFI boot; the list says where we looked.
    OvmfNotFound(Vec<PathBuf>),
    /// A file or process operation failed; `context` says what we were doing.
    Io {
        /// What we were doing, e.g. "reading `foo.txt`".
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The `bootloader` crate could not build a disk image.
    Image(String),
    /// The initramfs could not be built (a bad or duplicate file name).
    Initramfs(String),
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::QemuNotFound => write!(
                f,
                "{} not found; install the Debian package qemu-system-x86",
                qemu::QEMU
            ),
            Error::OvmfNotFound(looked) => {
                write!(
                    f,
                    "OVMF (UEFI firmware for QEMU) not found; install the Debian package ovmf \
                     (looked for"
                )?;
                for path in looked {
                    write!(f, " {}", path.display())?;
                }
                write!(f, ")")
            }
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Image(message) => write!(f, "cannot build the disk image: {message}"),
            Error::Initramfs(message) => write!(f, "cannot build the initramfs: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
