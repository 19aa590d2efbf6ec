//! Running VMs: [`Host`] prepares a [`Vm`] (disk image, UEFI variables, QEMU command), which
//! then runs on the terminal, with piped input relayed at the shell's prompts, or with its
//! serial console captured under a [`Watchdog`].

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;

use super::times::{BootTimes, Follower};
use super::{KernelExit, Machine, Ovmf, QEMU, escape_commas, find_ovmf, find_qemu, qemu_args};
use crate::decode::{self, Decoder};
use crate::image::{DiskImage, Images, private_copy};
use crate::initramfs::Initramfs;
use crate::{Error, Firmware};

/// How the kernel's first log line starts (its timestamp at boot), seen on the serial port.
const KERNEL_FIRST_LINE: &str = "[    0.000000]";

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
    /// When (after QEMU started) the kernel's first log line arrived, if it did.
    pub first_line: Option<Duration>,
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
    /// The image builder, to change how it builds images (see [`Images::set_bootloader_log`]).
    pub fn images_mut(&mut self) -> &mut Images {
        &mut self.images
    }

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
            times: None,
            decoder: Decoder::shared(self.images.kernel()),
        })
    }

    /// Like [`Host::vm`], and the VM's boot is timed into `times` (see [`BootTimes`]): QEMU
    /// also writes SeaBIOS's debug console (port `0x402`) to a file that is followed.
    pub fn timed_vm(
        &self,
        machine: &Machine,
        initramfs: &Initramfs,
        times: Arc<BootTimes>,
    ) -> Result<Vm, Error> {
        let mut vm = self.vm(machine, initramfs)?;
        let debugcon = tempfile::Builder::new()
            .prefix("debugcon-")
            .suffix(".log")
            .tempfile_in(self.images.run_dir()?)
            .map_err(|e| Error::io("cannot create the debug console file", e))?;
        // SeaBIOS writes its log to port 0x402 (`-debugcon` alone would listen on 0xe9).
        let mut chardev = OsString::from("file,id=sheaf-debugcon,path=");
        chardev.push(escape_commas(debugcon.path()));
        vm.command.arg("-chardev").arg(chardev).args([
            "-device",
            "isa-debugcon,iobase=0x402,chardev=sheaf-debugcon",
        ]);
        vm.times = Some(Timing { times, debugcon });
        Ok(vm)
    }
}

/// A timed VM's timeline and the file its debug console goes to.
#[derive(Debug)]
struct Timing {
    times: Arc<BootTimes>,
    debugcon: NamedTempFile,
}

/// A prepared QEMU command together with the files that must live as long as the VM.
#[derive(Debug)]
pub struct Vm {
    command: Command,
    _image: DiskImage,
    _vars: Option<NamedTempFile>,
    times: Option<Timing>,
    /// Adds `file:line` to the backtraces shown on the terminal ([`crate::decode`]).
    decoder: Arc<Decoder>,
}

impl Vm {
    /// The QEMU command, e.g. to show it or add arguments.
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Runs the VM on the terminal and waits. Standard input and error are inherited (QEMU
    /// puts the terminal in raw mode); the output is relayed to ours with the backtraces
    /// decoded ([`crate::decode`]), each byte shown as soon as it comes but for a line that
    /// may be a backtrace's.
    pub fn run_interactive(mut self) -> Result<ExitStatus, Error> {
        let mut child = self
            .command
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {QEMU}"), e))?;
        let source = child.stdout.take();
        let decoder = Arc::clone(&self.decoder);
        let relay = thread::spawn(move || {
            if let Some(source) = source {
                decode::relay(source, std::io::stdout(), Some(decoder), |_| {});
            }
        });
        let status = child
            .wait()
            .map_err(|e| Error::io(format!("cannot wait for {QEMU}"), e));
        let _ = relay.join();
        status
    }

    /// Runs the VM with its output relayed to our standard output (backtraces decoded, as
    /// [`Vm::run_interactive`]), and `input` typed into the
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
        let times = self.times.as_ref().map(|t| Arc::clone(&t.times));
        let _follower = self
            .times
            .as_ref()
            .map(|t| Follower::start(t.debugcon.path().to_path_buf(), Arc::clone(&t.times)));
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {QEMU}"), e))?;
        if let Some(times) = &times {
            times.mark("launcher: starting QEMU (fork and exec)");
        }
        // How many prompts QEMU has printed, and whether it has exited; the feeder waits on it.
        let state = Arc::new((Mutex::new((0usize, false)), Condvar::new()));

        let relay = {
            let state = Arc::clone(&state);
            let pattern = prompt.as_bytes().to_vec();
            let source = child.stdout.take();
            let times = times.clone();
            let decoder = Arc::clone(&self.decoder);
            thread::spawn(move || {
                let Some(source) = source else {
                    return;
                };
                // The last `pattern.len() - 1` bytes seen: a prompt may straddle two reads.
                let mut window: Vec<u8> = Vec::new();
                // The end of the output so far, for milestones split across reads.
                let mut tail: Vec<u8> = Vec::new();
                // Shown with the backtraces decoded; the prompts and milestones are looked
                // for in the raw bytes.
                decode::relay(source, std::io::stdout(), Some(decoder), |chunk| {
                    if let Some(times) = &times {
                        tail.extend_from_slice(chunk);
                        times.scan(&String::from_utf8_lossy(&tail), Instant::now());
                        tail.drain(..tail.len().saturating_sub(64));
                    }
                    window.extend_from_slice(chunk);
                    let found = Counter::new_bytes(&pattern).update(&window);
                    let keep = pattern.len().saturating_sub(1).min(window.len());
                    window.drain(..window.len() - keep);
                    if found > 0 {
                        let (lock, ready) = &*state;
                        lock.lock().unwrap_or_else(|e| e.into_inner()).0 += found;
                        ready.notify_all();
                    }
                });
            })
        };

        // The feeder may block reading our standard input forever (`cat | cargo run`), so it
        // is never joined: it ends with the process.
        let mut stdin = child.stdin.take();
        let feeder_state = Arc::clone(&state);
        thread::spawn(move || {
            let Some(stdin) = stdin.as_mut() else { return };
            // Bytes, not `String`s: a line that is not UTF-8 is typed as it is (the shell
            // answers it), rather than ending the input.
            for (sent, line) in input.split(b'\n').enumerate() {
                let Ok(mut line) = line else { return };
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let (lock, ready) = &*feeder_state;
                let mut seen = lock.lock().unwrap_or_else(|e| e.into_inner());
                while seen.0 <= sent && !seen.1 {
                    seen = ready.wait(seen).unwrap_or_else(|e| e.into_inner());
                }
                if seen.1 {
                    return;
                }
                drop(seen);
                line.push(b'\n');
                if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
                    return;
                }
            }
        });

        let status = child
            .wait()
            .map_err(|e| Error::io(format!("cannot wait for {QEMU}"), e));
        if let Some(times) = &times {
            times.mark("shell: the typed input, power-off, QEMU's exit");
        }
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
        let mut kernel_line = Counter::new(KERNEL_FIRST_LINE);
        let mut first_line = None;
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
                if first_line.is_none() && kernel_line.update(&seen) > 0 {
                    first_line = Some(start.elapsed());
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
            first_line,
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
