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

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;

use crate::image::{DiskImage, Images, private_copy};
use crate::initramfs::Initramfs;
use crate::{Error, Firmware};

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
fn escape_commas(path: &Path) -> OsString {
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
    let (digits, unit) = match size.char_indices().last()? {
        (at, unit) if unit.is_ascii_alphabetic() => (&size[..at], unit.to_ascii_uppercase()),
        _ => (size, 'M'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    match unit {
        'K' => n.is_multiple_of(1024).then_some(n / 1024),
        'M' => Some(n),
        'G' => n.checked_mul(1024),
        'T' => n.checked_mul(1024 * 1024),
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

/// Input typed into the serial console, one line per shell prompt.
///
/// Sending everything at once could lose bytes that arrive before the kernel's serial driver
/// is ready, so each line is sent only once the prompt has appeared one more time, as a person
/// would type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The prompt to wait for, e.g. `sheaf>`.
    pub prompt: String,
    /// The lines to type, without their `\n`.
    pub lines: Vec<String>,
}

/// When to give up on a VM that seems to hang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    /// How long the VM may run without progress.
    pub timeout: Duration,
    /// If set, every new output line containing this marker counts as progress and restarts
    /// the timeout (so a long batch of tests is judged test by test).
    pub progress_marker: Option<String>,
}

/// What a captured run produced.
#[derive(Debug, Clone)]
pub struct Captured {
    /// QEMU's exit status, or `None` if the watchdog killed it.
    pub status: Option<ExitStatus>,
    /// The serial console output (QEMU's stdout), decoded lossily as UTF-8.
    pub output: String,
    /// QEMU's own messages (stderr).
    pub stderr: String,
    /// How long the VM ran.
    pub elapsed: Duration,
}

impl Captured {
    /// How the kernel ended, or `None` if the run timed out.
    pub fn exit(&self) -> Option<KernelExit> {
        self.status.map(KernelExit::from_status)
    }

    /// Whether the watchdog killed the VM.
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

/// Finds QEMU and builds images: everything needed to start VMs of one kernel.
#[derive(Debug)]
pub struct Host {
    qemu: PathBuf,
    images: Images,
}

impl Host {
    /// Looks for QEMU on the `PATH` and prepares images of `kernel` under `target/sheaf`.
    pub fn new(kernel: &Path) -> Result<Self, Error> {
        let qemu = find_qemu(std::env::var_os("PATH").as_deref())?;
        Ok(Self {
            qemu,
            images: Images::new(kernel),
        })
    }

    /// The image builder (and through it the kernel path and `target/sheaf`).
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// Prepares a VM: builds (or reuses) the disk image with this initramfs, makes the VM's
    /// private copies of it and of the UEFI variables, and assembles the QEMU command.
    pub fn vm(&self, machine: &Machine, initramfs: &Initramfs) -> Result<Vm, Error> {
        let mut firmware_args = Vec::new();
        let mut vars = None;
        if machine.firmware == Firmware::Uefi {
            match find_ovmf(Path::new("/"))? {
                Ovmf::Split {
                    code,
                    vars: template,
                } => {
                    let copy = private_copy(&template, &self.images.run_dir()?, "vars-", ".fd")?;
                    let mut code_drive =
                        OsString::from("if=pflash,format=raw,unit=0,readonly=on,file=");
                    code_drive.push(escape_commas(&code));
                    let mut vars_drive = OsString::from("if=pflash,format=raw,unit=1,file=");
                    vars_drive.push(escape_commas(copy.path()));
                    firmware_args = vec!["-drive".into(), code_drive, "-drive".into(), vars_drive];
                    vars = Some(copy);
                }
                Ovmf::Combined(path) => firmware_args = vec!["-bios".into(), path.into()],
            }
        }
        let image = self.images.disk_image(machine.firmware, initramfs)?;
        let mut command = Command::new(&self.qemu);
        command.args(qemu_args(machine, image.path(), &firmware_args));
        Ok(Vm {
            command,
            _image: image,
            _vars: vars,
        })
    }
}

/// A prepared QEMU command together with the files that must live as long as the VM.
#[derive(Debug)]
pub struct Vm {
    command: Command,
    _image: DiskImage,
    _vars: Option<NamedTempFile>,
}

impl Vm {
    /// The QEMU command, e.g. to show it or add arguments.
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Runs the VM on the terminal (standard input, output and error inherited) and waits.
    pub fn run_interactive(mut self) -> Result<ExitStatus, Error> {
        self.command
            .status()
            .map_err(|e| Error::io(format!("cannot start {QEMU}"), e))
    }

    /// Runs the VM with its output relayed to our standard output, and `input` typed into the
    /// serial console one line per `prompt`, as a person would.
    ///
    /// This is for input that is not a terminal (`printf 'help\npoweroff\n' | cargo run`).
    /// Handing QEMU the pipe directly would deliver the bytes as soon as it starts, while the
    /// firmware still owns the serial port: OVMF reads them as keystrokes for its own console,
    /// and a UART being initialised drops what it has received. Waiting for the prompt avoids
    /// both.
    pub fn run_relayed(
        mut self,
        prompt: &str,
        input: impl BufRead + Send + 'static,
    ) -> Result<ExitStatus, Error> {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {QEMU}"), e))?;
        // How many prompts QEMU has printed, and whether it has exited; the feeder waits on it.
        let state = Arc::new((Mutex::new((0usize, false)), Condvar::new()));

        let relay = {
            let state = Arc::clone(&state);
            let pattern = prompt.as_bytes().to_vec();
            let mut source = child.stdout.take();
            thread::spawn(move || {
                let Some(source) = source.as_mut() else {
                    return;
                };
                let mut out = std::io::stdout();
                // The last `pattern.len() - 1` bytes seen: a prompt may straddle two reads.
                let mut window: Vec<u8> = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = source.read(&mut chunk) {
                    let _ = out.write_all(&chunk[..n]).and_then(|()| out.flush());
                    window.extend_from_slice(&chunk[..n]);
                    let found = Counter::new_bytes(&pattern).update(&window);
                    let keep = pattern.len().saturating_sub(1).min(window.len());
                    window.drain(..window.len() - keep);
                    if found > 0 {
                        let (lock, ready) = &*state;
                        lock.lock().unwrap_or_else(|e| e.into_inner()).0 += found;
                        ready.notify_all();
                    }
                }
            })
        };

        // The feeder may block reading our standard input forever (`cat | cargo run`), so it
        // is never joined: it ends with the process.
        let mut stdin = child.stdin.take();
        let feeder_state = Arc::clone(&state);
        thread::spawn(move || {
            let Some(stdin) = stdin.as_mut() else { return };
            for (sent, line) in input.lines().enumerate() {
                let Ok(line) = line else { return };
                let (lock, ready) = &*feeder_state;
                let mut seen = lock.lock().unwrap_or_else(|e| e.into_inner());
                while seen.0 <= sent && !seen.1 {
                    seen = ready.wait(seen).unwrap_or_else(|e| e.into_inner());
                }
                if seen.1 {
                    return;
                }
                drop(seen);
                if stdin
                    .write_all(format!("{line}\n").as_bytes())
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    return;
                }
            }
        });

        let status = child
            .wait()
            .map_err(|e| Error::io(format!("cannot wait for {QEMU}"), e));
        let (lock, ready) = &*state;
        lock.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        ready.notify_all();
        let _ = relay.join();
        status
    }

    /// Runs the VM with its serial console captured, typing `script` (if any) into it, and
    /// kills it if `watchdog` sees no progress in time.
    pub fn run_captured(
        mut self,
        script: Option<&Script>,
        watchdog: &Watchdog,
    ) -> Result<Captured, Error> {
        let start = Instant::now();
        let mut child = self
            .command
            .stdin(if script.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {QEMU}"), e))?;

        // Two threads drain stdout and stderr so QEMU never blocks on a full pipe; this thread
        // watches the output, types the script and enforces the timeout.
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout_reader = spawn_reader(child.stdout.take(), Arc::clone(&output));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = spawn_reader(child.stderr.take(), Arc::clone(&errors));

        let mut stdin = child.stdin.take();
        let mut prompts = script.map(|s| Counter::new(&s.prompt));
        let mut progress = watchdog.progress_marker.as_deref().map(Counter::new);
        let mut lines_sent = 0;
        let mut deadline = Instant::now() + watchdog.timeout;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| Error::io(format!("cannot wait for {QEMU}"), e))?
            {
                break Some(status);
            }
            {
                let seen = output.lock().unwrap_or_else(|e| e.into_inner());
                if let (Some(script), Some(prompts), Some(input)) =
                    (script, prompts.as_mut(), stdin.as_mut())
                {
                    let shown = prompts.update(&seen);
                    while lines_sent < script.lines.len() && shown > lines_sent {
                        // A write error means QEMU is gone; try_wait will notice.
                        let _ = input
                            .write_all(format!("{}\n", script.lines[lines_sent]).as_bytes())
                            .and_then(|()| input.flush());
                        lines_sent += 1;
                    }
                }
                if let Some(progress) = progress.as_mut() {
                    let before = progress.count;
                    if progress.update(&seen) > before {
                        deadline = Instant::now() + watchdog.timeout;
                    }
                }
            }
            if Instant::now() >= deadline {
                kill(&mut child);
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        drop(stdin);
        let _ = stdout_reader.join();
        let _ = stderr_reader.join();
        let text = |buffer: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&buffer.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        };
        Ok(Captured {
            status,
            output: text(&output),
            stderr: text(&errors),
            elapsed: start.elapsed(),
        })
    }
}

/// Kills and reaps a child (best effort: it may have just exited by itself).
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Copies everything from `source` into `sink` on a new thread, until end of file.
fn spawn_reader(
    source: Option<impl Read + Send + 'static>,
    sink: Arc<Mutex<Vec<u8>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let Some(mut source) = source else { return };
        let mut chunk = [0u8; 4096];
        loop {
            match source.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
    })
}

/// Counts the occurrences of a pattern in a growing buffer, scanning each byte only once.
#[derive(Debug)]
struct Counter<'a> {
    pattern: &'a [u8],
    /// Occurrences found so far.
    count: usize,
    /// Where the next scan starts.
    from: usize,
}

impl<'a> Counter<'a> {
    fn new(pattern: &'a str) -> Self {
        Self::new_bytes(pattern.as_bytes())
    }

    fn new_bytes(pattern: &'a [u8]) -> Self {
        Self {
            pattern,
            count: 0,
            from: 0,
        }
    }

    /// Scans what was appended to `buffer` since the last call; returns the total count.
    fn update(&mut self, buffer: &[u8]) -> usize {
        let n = self.pattern.len();
        if n == 0 || buffer.len() < self.from + n {
            return self.count;
        }
        let mut i = self.from;
        while i + n <= buffer.len() {
            if &buffer[i..i + n] == self.pattern {
                self.count += 1;
                i += n;
            } else {
                i += 1;
            }
        }
        // A match may straddle the end: rescan the last n - 1 bytes next time.
        self.from = i;
        self.count
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

    #[test]
    fn counter_counts_across_chunks() {
        let mut counter = Counter::new("sheaf>");
        let mut buffer = b"boot\nshe".to_vec();
        assert_eq!(counter.update(&buffer), 0);
        buffer.extend_from_slice(b"af> help\nsheaf> ");
        assert_eq!(counter.update(&buffer), 2);
        assert_eq!(counter.update(&buffer), 2);
    }
}
