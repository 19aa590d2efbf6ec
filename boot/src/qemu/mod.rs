//! Starting QEMU: finding it and the UEFI firmware, building its command line, running it
//! either on the terminal or with its serial console captured, and reading its exit status.
//!
//! # How the kernel reports success
//!
//! A VM has no process exit code. QEMU's `isa-debug-exit` device fills the gap: we map it at I/O
//! port `0xf4`, and when the kernel writes a value `v` there QEMU exits with status
//! `(v << 1) | 1`. Sheaf writes `0x10` for success (status 33) and `0x11` for failure
//! (status 35); see `drivers/src/qemu_exit.rs`. Any other status means the kernel did not get
//! to say: with `-no-reboot` a triple fault makes QEMU exit with status 0, and QEMU's own
//! errors give status 1. [`KernelExit`] sorts this out.

mod times;
mod vm;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use crate::{Error, Firmware};

pub use times::{BootTimes, TIMES_VAR, TimesMode};
pub use vm::{Captured, Host, Script, Vm, Watchdog};

/// The QEMU program for x86_64 guests.
pub const QEMU: &str = "qemu-system-x86_64";

/// I/O port of the `isa-debug-exit` device (must match `drivers/src/qemu_exit.rs`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// QEMU's exit status when the kernel reports success (it wrote `0x10`).
pub const EXIT_SUCCESS: i32 = (0x10 << 1) | 1;

/// QEMU's exit status when the kernel reports failure, e.g. a panic (it wrote `0x11`).
pub const EXIT_FAILURE: i32 = (0x11 << 1) | 1;

/// Finds `qemu-system-x86_64` in the directories of a `PATH`-style list.
///
/// The caller passes the `PATH` value (usually `std::env::var_os("PATH")`) so that tests can
/// try other values.
pub fn find_qemu(path: Option<&OsStr>) -> Result<PathBuf, Error> {
    let path = path.ok_or(Error::QemuNotFound)?;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(QEMU))
        .find(|candidate| is_executable(candidate))
        .ok_or(Error::QemuNotFound)
}

/// Whether `path` is a file we may execute.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// UEFI firmware for QEMU: OVMF, the EDK II build for virtual machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ovmf {
    /// Split firmware: read-only code plus a template of the variable store. Each VM gets its
    /// own writable copy of the variables (UEFI writes boot entries there).
    Split {
        /// `OVMF_CODE.fd`, mapped read-only as the first flash chip.
        code: PathBuf,
        /// `OVMF_VARS.fd`, copied per VM and mapped as the second flash chip.
        vars: PathBuf,
    },
    /// A single combined image (`OVMF.fd`), loaded with `-bios`.
    Combined(PathBuf),
}

/// Where distributions install OVMF, relative to the root: `(code, vars)` pairs first, then
/// combined images.
const OVMF_SPLIT: &[(&str, &str)] = &[
    // Debian and Ubuntu (package `ovmf`).
    ("usr/share/OVMF/OVMF_CODE.fd", "usr/share/OVMF/OVMF_VARS.fd"),
    (
        "usr/share/OVMF/OVMF_CODE_4M.fd",
        "usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    // Fedora (edk2-ovmf).
    (
        "usr/share/edk2/ovmf/OVMF_CODE.fd",
        "usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
    // Arch (edk2-ovmf).
    (
        "usr/share/edk2/x64/OVMF_CODE.fd",
        "usr/share/edk2/x64/OVMF_VARS.fd",
    ),
];
const OVMF_COMBINED: &[&str] = &["usr/share/ovmf/OVMF.fd", "usr/share/qemu/OVMF.fd"];

/// Looks for OVMF under `root` (normally `/`; a parameter so tests can use a fake tree).
pub fn find_ovmf(root: &Path) -> Result<Ovmf, Error> {
    for (code, vars) in OVMF_SPLIT {
        let (code, vars) = (root.join(code), root.join(vars));
        if code.is_file() && vars.is_file() {
            return Ok(Ovmf::Split { code, vars });
        }
    }
    for combined in OVMF_COMBINED {
        let combined = root.join(combined);
        if combined.is_file() {
            return Ok(Ovmf::Combined(combined));
        }
    }
    let looked = OVMF_SPLIT
        .iter()
        .map(|(code, _)| root.join(code))
        .chain(OVMF_COMBINED.iter().map(|c| root.join(c)))
        .collect();
    Err(Error::OvmfNotFound(looked))
}

/// Where the guest's first serial port (the kernel console) goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serial {
    /// `-serial mon:stdio`: the terminal, multiplexed with the QEMU monitor (Ctrl-A C switches,
    /// Ctrl-A X quits). For people.
    Monitor,
    /// `-serial stdio`: plain standard input and output. For programs (the test runner).
    Stdio,
}

/// How to set up the virtual machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// BIOS or UEFI.
    pub firmware: Firmware,
    /// Number of CPUs (`-smp`).
    pub smp: u32,
    /// Memory size in QEMU's syntax (`-m`), e.g. `512M`.
    pub mem: String,
    /// Split the machine into this many NUMA nodes (CPUs and memory evenly divided, see
    /// [`numa_args`]); `None` for a plain machine.
    pub numa: Option<u32>,
    /// Open a display window; otherwise `-display none`.
    pub display: bool,
    /// Start a GDB server on TCP port 1234 and wait for GDB before running (`-s -S`).
    pub gdb: bool,
    /// Where the serial console goes.
    pub serial: Serial,
}

impl Default for Machine {
    /// BIOS, 4 CPUs, 512 MiB, no NUMA, headless, serial on stdio.
    fn default() -> Self {
        Self {
            firmware: Firmware::Bios,
            smp: 4,
            mem: "512M".to_owned(),
            numa: None,
            display: false,
            gdb: false,
            serial: Serial::Stdio,
        }
    }
}

/// QEMU's option syntax splits on commas; a literal comma in a value is written `,,`.
pub(super) fn escape_commas(path: &Path) -> OsString {
    let text = path.to_string_lossy();
    if text.contains(',') {
        OsString::from(text.replace(',', ",,"))
    } else {
        path.as_os_str().to_owned()
    }
}

/// QEMU's arguments for `machine`, booting `image`. `firmware_args` selects UEFI firmware
/// (empty for BIOS: SeaBIOS is QEMU's default).
pub fn qemu_args(machine: &Machine, image: &Path, firmware_args: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let push = |args: &mut Vec<OsString>, items: &[&str]| {
        args.extend(items.iter().map(OsString::from));
    };
    push(
        &mut args,
        &["-m", &machine.mem, "-smp", &machine.smp.to_string()],
    );
    if let Some(nodes) = machine.numa {
        args.extend(
            numa_args(nodes, machine.smp, &machine.mem)
                .into_iter()
                .map(OsString::from),
        );
    }
    // QEMU's default CPU model (qemu64) claims to be an AMD CPU, and for AMD CPUs QEMU 7.1+
    // reserves the HyperTransport hole below 1 TiB in the e820 memory map. The bootloader maps
    // "all physical memory" up to the highest address in that map, so it would build 2 MiB
    // mappings for a whole TiB (512 Ki entries, about 75 ms under TCG) for a machine with
    // 512 MiB. The same model with Intel's vendor string has no such entry: the mapping stops at
    // 4 GiB. Nothing in Sheaf looks at the vendor.
    push(&mut args, &["-cpu", "qemu64,vendor=GenuineIntel"]);
    // On a guest reset (e.g. a triple fault) exit instead of rebooting into the same crash.
    push(&mut args, &["-no-reboot"]);
    push(
        &mut args,
        &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
    );
    let serial = match machine.serial {
        Serial::Monitor => "mon:stdio",
        Serial::Stdio => "stdio",
    };
    push(&mut args, &["-serial", serial]);
    if !machine.display {
        push(&mut args, &["-display", "none"]);
    }
    if machine.gdb {
        // -s: GDB server on tcp::1234; -S: don't start the CPUs until GDB says `continue`.
        push(&mut args, &["-s", "-S"]);
    }
    args.extend(firmware_args.iter().cloned());
    // The disk is a virtio block device rather than the default IDE disk: the firmware reads
    // the bootloader, kernel and initramfs through it, and under emulation virtio's few large
    // requests are much faster than IDE's port I/O (about 0.3 s off a BIOS boot). `bootindex`
    // makes it the first boot device, so UEFI doesn't first try the empty CD-ROM drive (about
    // a second).
    let mut drive = OsString::from("if=none,id=boot-disk,format=raw,file=");
    drive.push(escape_commas(image));
    args.push("-drive".into());
    args.push(drive);
    push(
        &mut args,
        &["-device", "virtio-blk-pci,drive=boot-disk,bootindex=0"],
    );
    args
}

/// A memory size in QEMU's syntax (digits, then an optional `K`, `M`, `G` or `T`; no unit
/// means MiB) converted to whole MiB. `None` if it is malformed or not a whole number of MiB.
pub fn size_in_mib(size: &str) -> Option<u64> {
    size_in_kib(size).and_then(|kib| kib.is_multiple_of(1024).then_some(kib / 1024))
}

/// A QEMU memory size (`512M`, `2G`, `65536K`, `1024` = MiB) in KiB, or `None` if it is not
/// one.
pub fn size_in_kib(size: &str) -> Option<u64> {
    let (digits, unit) = match size.char_indices().last()? {
        (at, unit) if unit.is_ascii_alphabetic() => (&size[..at], unit.to_ascii_uppercase()),
        _ => (size, 'M'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    match unit {
        'K' => Some(n),
        'M' => n.checked_mul(1024),
        'G' => n.checked_mul(1024 * 1024),
        'T' => n.checked_mul(1024 * 1024 * 1024),
        _ => None,
    }
}

/// QEMU arguments that split the machine into `nodes` NUMA nodes.
///
/// Each node gets a RAM backend of `mem / nodes` MiB (the last one also takes the remainder)
/// and a contiguous, even share of the `smp` CPUs (node `i` gets CPUs `i*smp/nodes` up to
/// `(i+1)*smp/nodes - 1`; with fewer CPUs than nodes some nodes have memory only). QEMU then
/// describes the topology to the guest in the ACPI SRAT and SLIT tables.
pub fn numa_args(nodes: u32, smp: u32, mem: &str) -> Vec<String> {
    let nodes = nodes.max(1);
    let total = size_in_mib(mem).unwrap_or(512);
    let share = total / u64::from(nodes);
    let mut args = Vec::new();
    for node in 0..nodes {
        let size = if node == nodes - 1 {
            total - share * u64::from(nodes - 1)
        } else {
            share
        };
        args.push("-object".to_owned());
        args.push(format!("memory-backend-ram,id=numa-mem{node},size={size}M"));
        let mut spec = format!("node,nodeid={node},memdev=numa-mem{node}");
        let (first, end) = (node * smp / nodes, (node + 1) * smp / nodes);
        if end > first {
            spec.push_str(&format!(",cpus={first}-{}", end - 1));
        }
        args.push("-numa".to_owned());
        args.push(spec);
    }
    args
}

/// How the VM ended, from the kernel's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelExit {
    /// The kernel wrote `0x10` to the debug-exit port (power-off, tests passed): status 33.
    Success,
    /// The kernel wrote `0x11` (panic, failed test): status 35.
    Failure,
    /// QEMU ended some other way (status 0 after a triple fault with `-no-reboot`, a QEMU
    /// error, a signal).
    Other(ExitStatus),
}

impl KernelExit {
    /// Classifies QEMU's exit status.
    pub fn from_status(status: ExitStatus) -> Self {
        match status.code() {
            Some(EXIT_SUCCESS) => KernelExit::Success,
            Some(EXIT_FAILURE) => KernelExit::Failure,
            _ => KernelExit::Other(status),
        }
    }
}

impl fmt::Display for KernelExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::unix::process::ExitStatusExt;
        match self {
            KernelExit::Success => write!(f, "the kernel exited successfully (QEMU status 33)"),
            KernelExit::Failure => write!(f, "the kernel reported a failure (QEMU status 35)"),
            KernelExit::Other(status) => match (status.code(), status.signal()) {
                (Some(0), _) => write!(
                    f,
                    "QEMU exited with status 0 without the kernel reporting: the machine reset \
                     (a triple fault?), or QEMU was quit (Ctrl-A X, closed window)"
                ),
                (Some(code), _) => write!(
                    f,
                    "QEMU exited with status {code} (not 33 or 35: a QEMU error?)"
                ),
                (None, Some(signal)) => write!(f, "QEMU was killed by signal {signal}"),
                (None, None) => write!(f, "QEMU ended with {status}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;

    fn status(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn missing_qemu_names_the_debian_package() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_qemu(Some(empty.path().as_os_str())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "qemu-system-x86_64 not found; install the Debian package qemu-system-x86"
        );
        assert!(matches!(find_qemu(None), Err(Error::QemuNotFound)));
        assert!(matches!(
            find_qemu(Some(OsStr::new(""))),
            Err(Error::QemuNotFound)
        ));
    }

    #[test]
    fn finds_an_executable_qemu_in_path() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        // Not executable: skipped.
        std::fs::write(first.path().join(QEMU), "").unwrap();
        let good = second.path().join(QEMU);
        std::fs::write(&good, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([first.path(), second.path()]).unwrap();
        assert_eq!(find_qemu(Some(&path)).unwrap(), good);
    }

    #[test]
    fn missing_ovmf_names_the_debian_package() {
        let root = tempfile::tempdir().unwrap();
        let message = find_ovmf(root.path()).unwrap_err().to_string();
        assert!(
            message.contains("install the Debian package ovmf"),
            "{message}"
        );
    }

    #[test]
    fn prefers_split_ovmf() {
        let root = tempfile::tempdir().unwrap();
        let combined = root.path().join("usr/share/ovmf/OVMF.fd");
        std::fs::create_dir_all(combined.parent().unwrap()).unwrap();
        std::fs::write(&combined, "").unwrap();
        assert_eq!(find_ovmf(root.path()).unwrap(), Ovmf::Combined(combined));
        let split = root.path().join("usr/share/OVMF");
        std::fs::create_dir_all(&split).unwrap();
        std::fs::write(split.join("OVMF_CODE.fd"), "").unwrap();
        std::fs::write(split.join("OVMF_VARS.fd"), "").unwrap();
        assert!(matches!(find_ovmf(root.path()), Ok(Ovmf::Split { .. })));
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(KernelExit::from_status(status(33)), KernelExit::Success);
        assert_eq!(KernelExit::from_status(status(35)), KernelExit::Failure);
        let zero = KernelExit::from_status(status(0));
        assert_eq!(zero, KernelExit::Other(status(0)));
        assert!(zero.to_string().contains("status 0"));
        assert!(
            KernelExit::from_status(status(1))
                .to_string()
                .contains("status 1")
        );
        let killed = KernelExit::from_status(ExitStatus::from_raw(9));
        assert!(killed.to_string().contains("signal 9"), "{killed}");
    }

    #[test]
    fn args_for_a_headless_bios_boot() {
        let machine = Machine::default();
        let args = qemu_args(&machine, Path::new("/t/a,b.img"), &[]);
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-m",
                "512M",
                "-smp",
                "4",
                "-cpu",
                "qemu64,vendor=GenuineIntel",
                "-no-reboot",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-serial",
                "stdio",
                "-display",
                "none",
                "-drive",
                "if=none,id=boot-disk,format=raw,file=/t/a,,b.img",
                "-device",
                "virtio-blk-pci,drive=boot-disk,bootindex=0"
            ]
        );
    }

    #[test]
    fn args_for_gdb_with_a_window() {
        let machine = Machine {
            display: true,
            gdb: true,
            serial: Serial::Monitor,
            ..Machine::default()
        };
        let args = qemu_args(
            &machine,
            Path::new("x.img"),
            &["-bios".into(), "o.fd".into()],
        );
        let joined = args
            .iter()
            .map(|a| a.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains("-serial mon:stdio"), "{joined}");
        assert!(joined.contains("-s -S"), "{joined}");
        assert!(joined.contains("-bios o.fd"), "{joined}");
        assert!(!joined.contains("-display"), "{joined}");
    }

    #[test]
    fn sizes_in_mib() {
        assert_eq!(size_in_mib("512M"), Some(512));
        assert_eq!(size_in_mib("512"), Some(512));
        assert_eq!(size_in_mib("2G"), Some(2048));
        assert_eq!(size_in_mib("2048k"), Some(2));
        assert_eq!(size_in_mib("1000K"), None);
        assert_eq!(size_in_mib("M"), None);
        assert_eq!(size_in_mib("1.5G"), None);
    }

    #[test]
    fn numa_splits_cpus_and_memory() {
        assert_eq!(
            numa_args(2, 4, "512M"),
            [
                "-object",
                "memory-backend-ram,id=numa-mem0,size=256M",
                "-numa",
                "node,nodeid=0,memdev=numa-mem0,cpus=0-1",
                "-object",
                "memory-backend-ram,id=numa-mem1,size=256M",
                "-numa",
                "node,nodeid=1,memdev=numa-mem1,cpus=2-3",
            ]
        );
        let three = numa_args(3, 2, "100M");
        assert_eq!(three[1], "memory-backend-ram,id=numa-mem0,size=33M");
        assert_eq!(three[9], "memory-backend-ram,id=numa-mem2,size=34M");
        // 2 CPUs over 3 nodes: node 0 has none.
        assert_eq!(three[3], "node,nodeid=0,memdev=numa-mem0");
        assert_eq!(three[7], "node,nodeid=1,memdev=numa-mem1,cpus=0-0");
        assert_eq!(three[11], "node,nodeid=2,memdev=numa-mem2,cpus=1-1");
    }
}
