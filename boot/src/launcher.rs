//! The launcher: `cargo run -- [options]` boots the kernel in QEMU with the serial console on
//! the terminal.
//!
//! The options are parsed by hand ([`parse_args`]): there are few of them, and a hand-written
//! parser is easy to read and to test. The kernel's exit is mapped to the launcher's exit
//! status, so scripts can use it: `printf 'poweroff\n' | cargo run` exits 0.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crate::initramfs::Initramfs;
use crate::qemu::{BootTimes, Host, KernelExit, Machine, Serial, TIMES_VAR, TimesMode};
use crate::{Error, Firmware};

/// The help text (`--help`, and after a usage error).
pub const USAGE: &str = "\
Boot the Sheaf kernel in QEMU, with its serial console on this terminal.

Usage: cargo run -- [OPTIONS]

Options:
  --uefi              boot with UEFI firmware (OVMF) instead of BIOS
  --smp N             number of CPUs (default 4)
  --mem SIZE          memory size, e.g. 512M or 1G (default 512M; at least 24M,
                      or 48M with --uefi: the boot path needs that much)
  --numa N            split CPUs and memory evenly into N NUMA nodes (default: no NUMA)
  --gdb               wait for GDB on localhost:1234 before starting (prints how to attach)
  --initrd-add FILE   add FILE to the initramfs root under its file name (repeatable)
  --append \"ARGS\"     kernel command line (the initramfs file `cmdline`; repeats are joined)
  --display           open a QEMU window (default: headless)
  --gen-headers       write the C headers generated from the kernel build
                      (include/generated/) and exit
  -h, --help          print this help

In the console, Ctrl-A X quits QEMU and Ctrl-A C switches to the QEMU monitor.
Exit status: 0 when the kernel powers off, 1 when it panics or QEMU fails, 2 for usage errors.";

// The virtual address the kernel is loaded at (`KERNEL_IMAGE` in
// `kernel/core/src/memory/layout.rs`), from its one owner.
pub use consts::KERNEL_BASE;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    /// `--help`: print [`USAGE`] and exit successfully.
    Help,
    /// `--gen-headers`: write the generated C headers ([`crate::headers`]) and exit.
    GenHeaders,
    /// Boot with these options.
    Run(Options),
}

/// The launcher's settings, after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// BIOS (default) or UEFI (`--uefi`).
    pub firmware: Firmware,
    /// Number of CPUs (`--smp`, default 4).
    pub smp: u32,
    /// Memory size in QEMU syntax (`--mem`, default `512M`).
    pub mem: String,
    /// Number of NUMA nodes (`--numa`), if any.
    pub numa: Option<u32>,
    /// Wait for GDB (`--gdb`).
    pub gdb: bool,
    /// Host files to add to the initramfs (`--initrd-add`).
    pub initrd_add: Vec<PathBuf>,
    /// The kernel command line (`--append`).
    pub append: String,
    /// Open a window (`--display`).
    pub display: bool,
}

impl Default for Options {
    /// The machine of [`Machine::default`], nothing added to the initramfs.
    fn default() -> Self {
        let machine = Machine::default();
        Self {
            firmware: machine.firmware,
            smp: machine.smp,
            mem: machine.mem,
            numa: machine.numa,
            gdb: machine.gdb,
            initrd_add: Vec::new(),
            append: String::new(),
            display: machine.display,
        }
    }
}

impl Options {
    /// The VM these options describe, with the serial console multiplexed with the monitor.
    pub fn machine(&self) -> Machine {
        Machine {
            firmware: self.firmware,
            smp: self.smp,
            mem: self.mem.clone(),
            numa: self.numa,
            display: self.display,
            gdb: self.gdb,
            serial: Serial::Monitor,
        }
    }
}

/// A command line the launcher does not understand. The message says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the launcher's arguments (without the program name).
///
/// Options that take a value accept it as the next argument (`--smp 2`) or after `=`
/// (`--smp=2`).
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Cli, UsageError> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|arg| UsageError(format!("argument {arg:?} is not valid UTF-8")))?;
        // Split `--name=value` into the name and an inline value.
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        // Takes the option's value: the inline one, or else the next argument.
        let mut value = || -> Result<OsString, UsageError> {
            match inline.clone() {
                Some(value) => Ok(value.into()),
                None => args
                    .next()
                    .ok_or_else(|| UsageError(format!("{name} needs a value"))),
            }
        };
        let text = |value: OsString| {
            value
                .into_string()
                .map_err(|v| UsageError(format!("value {v:?} of {name} is not valid UTF-8")))
        };
        match name {
            "-h" | "--help" => return Ok(Cli::Help),
            "--gen-headers" => return Ok(Cli::GenHeaders),
            "--uefi" | "--gdb" | "--display" if inline.is_some() => {
                return Err(UsageError(format!("{name} takes no value")));
            }
            "--uefi" => options.firmware = Firmware::Uefi,
            "--gdb" => options.gdb = true,
            "--display" => options.display = true,
            "--smp" => {
                let value = text(value()?)?;
                options.smp = match value.parse::<u32>() {
                    Ok(n @ 1..=255) => n,
                    _ => {
                        return Err(UsageError(format!(
                            "--smp wants a number of CPUs from 1 to 255, not `{value}`"
                        )));
                    }
                };
            }
            "--mem" => {
                let value = text(value()?)?;
                if !is_memory_size(&value) {
                    return Err(UsageError(format!(
                        "--mem wants a size like 512M or 2G, not `{value}`"
                    )));
                }
                options.mem = value;
            }
            "--numa" => {
                let value = text(value()?)?;
                options.numa = match value.parse::<u32>() {
                    Ok(n @ 1..=64) => Some(n),
                    _ => {
                        return Err(UsageError(format!(
                            "--numa wants a number of nodes from 1 to 64, not `{value}`"
                        )));
                    }
                };
            }
            "--initrd-add" => options.initrd_add.push(PathBuf::from(value()?)),
            "--append" => {
                let value = text(value()?)?;
                if !options.append.is_empty() {
                    options.append.push(' ');
                }
                options.append.push_str(&value);
            }
            _ if name.starts_with('-') => {
                return Err(UsageError(format!("unknown option `{name}`")));
            }
            _ => return Err(UsageError(format!("unexpected argument `{name}`"))),
        }
    }
    let floor = options.firmware.min_memory_mib();
    if crate::qemu::size_in_kib(&options.mem).is_some_and(|kib| kib < floor * 1024) {
        let with = match options.firmware {
            Firmware::Bios => "",
            Firmware::Uefi => " with --uefi",
        };
        return Err(UsageError(format!(
            "--mem {} is too little to boot: Sheaf needs at least {floor}M{with} (the \
             bootloader stops before the kernel runs with less)",
            options.mem
        )));
    }
    if let Some(nodes) = options.numa
        && crate::qemu::size_in_mib(&options.mem).is_none_or(|mib| mib < u64::from(nodes))
    {
        return Err(UsageError(format!(
            "--numa {nodes} needs --mem in whole MiB, at least 1M per node (not `{}`)",
            options.mem
        )));
    }
    Ok(Cli::Run(options))
}

/// Whether `size` is a memory size QEMU understands: digits and an optional unit letter.
fn is_memory_size(size: &str) -> bool {
    let digits = size.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    size.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
}

/// The launcher's `main`: parses `std::env::args`, boots `kernel`, and maps the outcome to an
/// exit code (0 power-off, 1 failure, 2 usage error). Errors are printed, never panicked.
pub fn main(kernel: &Path) -> ExitCode {
    let options = match parse_args(std::env::args_os().skip(1)) {
        Ok(Cli::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::GenHeaders) => {
            return match crate::headers::generate(kernel, &crate::headers::repo_root()) {
                Ok(paths) => {
                    for p in paths {
                        println!("wrote {}", p.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Cli::Run(options)) => options,
        Err(error) => {
            eprintln!("error: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(kernel, &options) {
        Ok(KernelExit::Success) => ExitCode::SUCCESS,
        Ok(exit @ KernelExit::Failure) => {
            eprintln!("sheaf: {exit}");
            ExitCode::FAILURE
        }
        Ok(exit @ KernelExit::Other(_)) => {
            eprintln!("error: {exit}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Boots `kernel` with `options` on this terminal and waits for QEMU to exit.
///
/// With [`TIMES_VAR`] set and piped input, prints where the boot's time went when QEMU has
/// exited (see [`BootTimes`]).
pub fn run(kernel: &Path, options: &Options) -> Result<KernelExit, Error> {
    let start = Instant::now();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal() || options.gdb;
    let mode = TimesMode::from_env();
    if mode != TimesMode::Off && interactive {
        eprintln!(
            "note: {TIMES_VAR} times only boots with piped input (printf 'poweroff\\n' | cargo run)"
        );
    }
    let times = (mode != TimesMode::Off && !interactive).then(|| Arc::new(BootTimes::new(start)));
    // Check the cheap things first, so mistakes are reported before any image is built.
    let mut host = Host::new(kernel)?;
    if times.is_some() && mode == TimesMode::Bootloader {
        host.images_mut().set_bootloader_log(true);
    }
    let mut initramfs = Initramfs::new(&options.append);
    for file in &options.initrd_add {
        initramfs.add_host_file(file).map_err(|error| match error {
            Error::Io { context, source } => Error::io(format!("--initrd-add: {context}"), source),
            other => other,
        })?;
    }
    let machine = options.machine();
    let vm = match &times {
        Some(times) => {
            times.mark_process_start();
            let vm = host.timed_vm(&machine, &initramfs, Arc::clone(times))?;
            times.mark("launcher: initramfs, disk image (cached or built), QEMU command");
            vm
        }
        None => host.vm(&machine, &initramfs)?,
    };
    if options.gdb {
        eprintln!(
            "{}",
            gdb_instructions(kernel, is_position_independent(kernel))
        );
    } else if stdin.is_terminal() {
        eprintln!(
            "Booting Sheaf ({}, {} CPUs, {}). Ctrl-A X quits QEMU.",
            options.firmware, options.smp, options.mem
        );
    }
    let status = if interactive {
        vm.run_interactive()?
    } else {
        // Piped input: type it line by line at the shell's prompts (see `Vm::run_relayed`).
        vm.run_relayed(crate::ktest::PROMPT, std::io::BufReader::new(stdin))?
    };
    if let Some(times) = times {
        eprint!("{}", times.report());
    }
    Ok(KernelExit::from_status(status))
}

/// How to attach GDB to a VM started with `--gdb`.
///
/// GDB needs the ELF *with* debug info (the one Cargo built, not the stripped copy on the
/// disk). A position-independent kernel is linked at address 0 and moved to [`KERNEL_BASE`]
/// by the bootloader, so its symbols must be shifted by that much (`symbol-file -o`).
pub fn gdb_instructions(kernel: &Path, position_independent: bool) -> String {
    let kernel = kernel.display();
    let load = if position_independent {
        format!("symbol-file {kernel} -o {KERNEL_BASE:#x}")
    } else {
        format!("symbol-file {kernel}")
    };
    let why = if position_independent {
        format!(
            "The kernel is position-independent and runs at {KERNEL_BASE:#x}: `-o` moves its \
             symbols there\n(plain `gdb {kernel} -ex 'target remote :1234'` connects too, but \
             its symbols would not match the code).\n"
        )
    } else {
        String::new()
    };
    let script = gdb_script();
    let script = script.display();
    format!(
        "QEMU is waiting for GDB on localhost:1234. In another terminal run:\n\n    \
         gdb -ex '{load}' -x {script} -ex 'target remote :1234'\n\n\
         {why}\
         Then stop somewhere with a hardware breakpoint (the kernel is not mapped yet, so \
         `break` can't patch it),\ne.g. `hbreak kernel::init`, and `continue`.\n\
         Modules: once one is loaded (Ctrl-C; `hbreak kcore::module::debug::publish` stops at \
         each insmod and rmmod, then `finish`),\n`sheaf-symbols [DIR...]` (from {script}) \
         loads the symbols of every loaded module, e.g. then `break init_module`."
    )
}

/// The GDB script with Sheaf's commands (`sheaf-symbols`, `sheaf-modules`):
/// `tools/gdb/sheaf.py` in this repository.
pub fn gdb_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("tools/gdb/sheaf.py")
}

/// Whether the ELF file at `path` is position-independent (`e_type` is `ET_DYN`).
///
/// Reads only the ELF header. An unreadable file counts as position-independent, which is
/// what Sheaf's build produces.
pub fn is_position_independent(path: &Path) -> bool {
    const ET_EXEC: u16 = 2;
    let mut header = [0u8; 18];
    let read = std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut header));
    match read {
        // The magic, then `e_type` at offset 16 (little-endian on x86_64).
        Ok(()) if header.starts_with(b"\x7fELF") => {
            u16::from_le_bytes([header[16], header[17]]) != ET_EXEC
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, UsageError> {
        parse_args(args.iter().map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Cli::Run(options)) => options,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(options(&[]), Options::default());
        let machine = Options::default().machine();
        assert_eq!(machine.smp, 4);
        assert_eq!(machine.mem, "512M");
        assert_eq!(machine.firmware, Firmware::Bios);
        assert_eq!(machine.serial, Serial::Monitor);
        assert!(!machine.display && !machine.gdb);
    }

    #[test]
    fn all_options() {
        let parsed = options(&[
            "--uefi",
            "--smp",
            "2",
            "--mem=1G",
            "--numa",
            "2",
            "--gdb",
            "--initrd-add",
            "a.txt",
            "--initrd-add=dir/b.bin",
            "--append",
            "log=debug quiet",
            "--display",
        ]);
        assert_eq!(
            parsed,
            Options {
                firmware: Firmware::Uefi,
                smp: 2,
                mem: "1G".to_owned(),
                numa: Some(2),
                gdb: true,
                initrd_add: vec![PathBuf::from("a.txt"), PathBuf::from("dir/b.bin")],
                append: "log=debug quiet".to_owned(),
                display: true,
            }
        );
    }

    #[test]
    fn append_values_are_joined() {
        assert_eq!(options(&["--append", "a=1", "--append=b"]).append, "a=1 b");
        // An `=` inside the value is kept.
        assert_eq!(options(&["--append=x=y"]).append, "x=y");
    }

    #[test]
    fn help() {
        assert_eq!(parse(&["--help"]), Ok(Cli::Help));
        assert_eq!(parse(&["--smp", "2", "-h"]), Ok(Cli::Help));
    }

    #[test]
    fn unknown_option() {
        let err = parse(&["--frobnicate"]).unwrap_err();
        assert_eq!(err.to_string(), "unknown option `--frobnicate`");
        assert!(parse(&["stray"]).is_err());
    }

    #[test]
    fn missing_and_bad_values() {
        assert_eq!(
            parse(&["--smp"]).unwrap_err().to_string(),
            "--smp needs a value"
        );
        for bad in ["0", "-1", "four", "256", ""] {
            assert!(parse(&["--smp", bad]).is_err(), "--smp {bad} accepted");
        }
        for bad in ["", "M", "0", "512MB", "1.5G", "-1G"] {
            assert!(parse(&["--mem", bad]).is_err(), "--mem {bad} accepted");
        }
        for good in ["512M", "2G", "1024", "65536k"] {
            assert_eq!(options(&["--mem", good]).mem, good);
        }
        assert!(parse(&["--uefi=yes"]).is_err());
        for bad in ["0", "65", "two"] {
            assert!(parse(&["--numa", bad]).is_err(), "--numa {bad} accepted");
        }
        assert!(parse(&["--numa", "2", "--mem", "1000K"]).is_err());
        assert_eq!(options(&["--numa", "2"]).machine().numa, Some(2));
        assert!(parse(&["--append"]).is_err());
        assert!(parse(&["--initrd-add"]).is_err());
    }

    #[test]
    fn memory_below_the_boot_floor_is_refused() {
        // Below these the bootloader hangs before the kernel prints anything (issue #9).
        for small in ["12M", "20M", "21M", "23M", "20480K", "16"] {
            let err = parse(&["--mem", small]).unwrap_err().to_string();
            assert!(err.contains("at least 24M"), "--mem {small}: {err}");
        }
        for small in ["24M", "32M", "44M", "47M"] {
            let err = parse(&["--uefi", "--mem", small]).unwrap_err().to_string();
            assert!(
                err.contains("at least 48M with --uefi"),
                "--uefi --mem {small}: {err}"
            );
        }
        assert_eq!(options(&["--mem", "24M"]).mem, "24M");
        assert_eq!(options(&["--mem", "24576K"]).mem, "24576K");
        assert_eq!(options(&["--uefi", "--mem", "48M"]).mem, "48M");
        assert!(USAGE.contains("at least 24M"), "--help names the floor");
    }

    #[test]
    fn missing_qemu_is_an_error_not_a_panic() {
        // `run` looks QEMU up in the real PATH; here we check the message it would print.
        let err = crate::qemu::find_qemu(Some(std::ffi::OsStr::new("/nonexistent"))).unwrap_err();
        assert_eq!(
            format!("error: {err}"),
            "error: qemu-system-x86_64 not found; install the Debian package qemu-system-x86"
        );
    }

    #[test]
    fn gdb_instructions_shift_a_pie_kernel() {
        let script = gdb_script();
        let text = gdb_instructions(Path::new("/t/kernel"), true);
        assert!(
            text.contains(&format!(
                "gdb -ex 'symbol-file /t/kernel -o 0xffffffff80000000' -x {} -ex 'target remote :1234'",
                script.display()
            )),
            "{text}"
        );
        let text = gdb_instructions(Path::new("/t/kernel"), false);
        assert!(text.contains("-ex 'symbol-file /t/kernel' -x"), "{text}");
    }

    #[test]
    fn gdb_instructions_name_the_module_script_and_command() {
        let script = gdb_script();
        assert!(script.is_file(), "{}", script.display());
        let text = gdb_instructions(Path::new("/t/kernel"), false);
        assert!(text.contains("sheaf-symbols"), "{text}");
        assert!(text.contains(&*script.to_string_lossy()), "{text}");
        let source = std::fs::read_to_string(&script).unwrap();
        assert!(
            source.contains("\"sheaf-symbols\""),
            "the script defines the command"
        );
    }

    #[test]
    fn elf_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elf");
        let mut header = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
        header.extend_from_slice(&2u16.to_le_bytes());
        std::fs::write(&path, &header).unwrap();
        assert!(!is_position_independent(&path));
        header[16] = 3;
        std::fs::write(&path, &header).unwrap();
        assert!(is_position_independent(&path));
    }
}
