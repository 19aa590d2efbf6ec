//! The on-target test runner behind `cargo test` (`tests/kernel.rs`).
//!
//! Kernel tests (`#[ktest]` functions, see `kernel/src/ktest.rs`) can only run inside the VM,
//! but we want them to look like ordinary Rust tests: listed by `cargo test -- --list`,
//! filtered by name, reported one by one. `libtest-mimic` provides that face; this module
//! supplies the trials and runs them by booting the kernel.
//!
//! # The protocol
//!
//! The runner talks to the kernel through the initramfs file `cmdline` (host → kernel) and
//! lines on the serial console that contain `@@ktest-` (kernel → host):
//!
//! | command line                     | kernel prints                                          |
//! |----------------------------------|--------------------------------------------------------|
//! | `ktest=list`                     | `@@ktest-list <name> <flags>` per test, `@@ktest-end`  |
//! | `ktest=run ktest.only=<a>,<b>`   | per test `@@ktest-start <name>`, then `@@ktest-pass <name>` or `@@ktest-fail <name> <reason>`; finally `@@ktest-done` |
//!
//! `<flags>` is `-` or a comma-separated list of `fault=<kind>` (the test passes by causing
//! that CPU exception), `uefi` (it must boot with UEFI), `smp=<cpus>` and `numa=<nodes>` (it
//! needs a machine with that many CPUs or NUMA nodes). When all went well the kernel exits
//! QEMU with status 33; a panicking test reports `@@ktest-fail` and the kernel exits with 35;
//! an unexpected fault may take the machine down without a word (a triple fault ends QEMU
//! with status 0, thanks to `-no-reboot`).
//!
//! # Boots
//!
//! Booting takes seconds under emulation, so the runner boots as little as it can:
//!
//! 1. one boot with `ktest=list` to learn the tests' names and flags;
//! 2. one **batch** boot per kind of machine ([`Shape`]) running its selected tests in order:
//!    the default machine (BIOS, 4 CPUs) for tests without flags, and one each for the other
//!    combinations of `uefi`, `smp=` and `numa=` the tests ask for. If the kernel dies on the
//!    way, the test that was running fails (with the end of the serial log as its message)
//!    and the runner boots again for the tests that are left;
//! 3. one boot per `fault=` test, which passes only if the kernel prints `@@ktest-pass` *and*
//!    leaves QEMU with status 33 (catching the fault ends the boot).
//!
//! A batch runs lazily: the first of its trials that `libtest-mimic` starts boots the VM, and
//! the others just read the recorded results. Only the tests that `libtest-mimic` will run
//! (after the name filter, `--exact` and `--skip`) go into a batch. A watchdog kills a VM that
//! makes no progress (no new `@@ktest-` line) for `SHEAF_TEST_TIMEOUT` seconds (default 60).
//! The list of tests is cached per kernel binary, so rerunning with another filter costs no
//! listing boot.
//!
//! Besides the kernel's own tests there are a few **host-driven** trials that type into the
//! shell and check what it prints (`shell::*`, `launcher::*`).
//!
//! Every boot's full serial log is kept in `target/sheaf/logs/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libtest_mimic::{Arguments, Trial};

use crate::initramfs::Initramfs;
use crate::qemu::{Host, KernelExit, Machine, Script, Watchdog};
use crate::{Error, Firmware};

/// How long a VM may go without printing a `@@ktest-` line before it counts as hung.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variable that overrides [`DEFAULT_TIMEOUT`], in seconds.
pub const TIMEOUT_VAR: &str = "SHEAF_TEST_TIMEOUT";

/// Path of the fixture file every test boot's initramfs carries (an on-target test reads it).
pub const FIXTURE_PATH: &str = "ktest/fixture.txt";

/// Contents of [`FIXTURE_PATH`].
pub const FIXTURE: &str = "sheaf initramfs fixture\n";

/// The shell's prompt, as host-driven trials wait for it.
pub const PROMPT: &str = "sheaf>";

/// The marker that starts every protocol message.
pub const MARKER: &str = "@@ktest-";

/// How many lines of serial output a failure message shows.
const LOG_TAIL_LINES: usize = 60;

/// One protocol message, parsed from a line of serial output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// `@@ktest-list <name> <flags>`: a registered test.
    List {
        /// The test's name.
        name: &'a str,
        /// Its flags, unparsed (`-` for none); see [`Flags::parse`].
        flags: &'a str,
    },
    /// `@@ktest-end`: the list is complete.
    ListEnd,
    /// `@@ktest-start <name>`: a test begins.
    Start(&'a str),
    /// `@@ktest-pass <name>`: a test passed.
    Pass(&'a str),
    /// `@@ktest-fail <name> <reason...>`: a test failed.
    Fail {
        /// The test's name.
        name: &'a str,
        /// Why, in the kernel's words (may be empty).
        reason: &'a str,
    },
    /// `@@ktest-done`: every requested test has run.
    Done,
}

/// Parses one line of serial output. The marker may appear anywhere in the line (other output
/// can share the line); trailing `\r` is ignored. Lines without a valid message give `None`.
pub fn parse_line(line: &str) -> Option<Event<'_>> {
    let start = line.find(MARKER)?;
    let message = line[start + MARKER.len()..].trim_end_matches(['\r', '\n']);
    let (kind, rest) = message.split_once(' ').unwrap_or((message, ""));
    let rest = rest.trim();
    let mut words = rest.split_whitespace();
    match kind {
        "list" => Some(Event::List {
            name: words.next()?,
            flags: words.next().unwrap_or("-"),
        }),
        "end" => Some(Event::ListEnd),
        "start" => Some(Event::Start(words.next()?)),
        "pass" => Some(Event::Pass(words.next()?)),
        "fail" => {
            let (name, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            (!name.is_empty()).then_some(Event::Fail {
                name,
                reason: reason.trim(),
            })
        }
        "done" => Some(Event::Done),
        _ => None,
    }
}

/// A test's flags, from its `@@ktest-list` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `fault=<kind>`: the CPU exception the test expects, e.g. `page_fault`.
    pub fault: Option<String>,
    /// `uefi`: the test must run in a UEFI boot.
    pub uefi: bool,
    /// `smp=<cpus>`: the test needs a machine with this many CPUs.
    pub smp: Option<u32>,
    /// `numa=<nodes>`: the test needs a machine with this many NUMA nodes.
    pub numa: Option<u32>,
    /// Flags this runner does not know (the test fails, asking to update the runner).
    pub unknown: Vec<String>,
}

impl Flags {
    /// Parses `-` or a comma-separated list like `fault=page_fault,uefi` or `smp=8,numa=2`.
    pub fn parse(flags: &str) -> Self {
        let mut parsed = Flags::default();
        let count = |n: &str, max: u32| n.parse::<u32>().ok().filter(|n| (1..=max).contains(n));
        for flag in flags.split(',').filter(|f| !f.is_empty() && *f != "-") {
            match flag.split_once('=') {
                Some(("fault", kind)) if !kind.is_empty() => parsed.fault = Some(kind.to_owned()),
                Some(("smp", n)) if count(n, 255).is_some() => parsed.smp = count(n, 255),
                Some(("numa", n)) if count(n, 64).is_some() => parsed.numa = count(n, 64),
                None if flag == "uefi" => parsed.uefi = true,
                _ => parsed.unknown.push(flag.to_owned()),
            }
        }
        parsed
    }

    /// Whether the test can share a boot with other tests that need the same machine: any
    /// test but one that expects a fault (which ends the boot when it passes).
    pub fn is_batchable(&self) -> bool {
        self.fault.is_none() && self.unknown.is_empty()
    }

    /// The machine the test needs.
    pub fn shape(&self) -> Shape {
        let default = Shape::default();
        Shape {
            firmware: if self.uefi {
                Firmware::Uefi
            } else {
                Firmware::Bios
            },
            smp: self.smp.unwrap_or(default.smp),
            numa: self.numa,
        }
    }
}

/// The kind of machine a test needs. Tests needing the same shape share batch boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shape {
    /// BIOS or UEFI.
    pub firmware: Firmware,
    /// Number of CPUs.
    pub smp: u32,
    /// Number of NUMA nodes, if any.
    pub numa: Option<u32>,
}

impl Default for Shape {
    /// The launcher's default machine: BIOS, 4 CPUs, no NUMA.
    fn default() -> Self {
        let machine = Machine::default();
        Self {
            firmware: machine.firmware,
            smp: machine.smp,
            numa: machine.numa,
        }
    }
}

impl Shape {
    /// The VM for this shape: the default machine (512 MiB, headless, serial on stdio) with
    /// this firmware, CPU count and NUMA nodes.
    pub fn machine(&self) -> Machine {
        Machine {
            firmware: self.firmware,
            smp: self.smp,
            numa: self.numa,
            ..Machine::default()
        }
    }
}

impl std::fmt::Display for Shape {
    /// E.g. `bios-smp4` or `uefi-smp8-numa2`, for log file names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-smp{}", self.firmware.name(), self.smp)?;
        if let Some(nodes) = self.numa {
            write!(f, "-numa{nodes}")?;
        }
        Ok(())
    }
}

/// A test the kernel has registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTest {
    /// Its full name, e.g. `memory::frame::frames_come_back`.
    pub name: String,
    /// Its flags.
    pub flags: Flags,
}

/// Reads the test list out of a `ktest=list` boot's output. Fails if `@@ktest-end` is missing
/// (the list would be incomplete).
pub fn parse_list(output: &str) -> Result<Vec<KernelTest>, String> {
    let mut tests: Vec<KernelTest> = Vec::new();
    for event in output.lines().filter_map(parse_line) {
        match event {
            Event::List { name, flags } => {
                if !tests.iter().any(|t| t.name == name) {
                    tests.push(KernelTest {
                        name: name.to_owned(),
                        flags: Flags::parse(flags),
                    });
                }
            }
            Event::ListEnd => return Ok(tests),
            _ => {}
        }
    }
    Err("the kernel did not finish the test list (no @@ktest-end)".to_owned())
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootEnd {
    /// QEMU exited.
    Exited(KernelExit),
    /// The watchdog killed QEMU after this long without progress.
    TimedOut(Duration),
}

impl std::fmt::Display for BootEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootEnd::Exited(exit) => write!(f, "{exit}"),
            BootEnd::TimedOut(after) => write!(
                f,
                "timed out: no progress for {} s (set {TIMEOUT_VAR} to wait longer)",
                after.as_secs()
            ),
        }
    }
}

/// What one boot produced, as the interpreting functions need it.
#[derive(Debug, Clone)]
pub struct BootLog {
    /// The serial output.
    pub output: String,
    /// QEMU's own messages, if any.
    pub stderr: String,
    /// How the boot ended.
    pub end: BootEnd,
    /// Where the full log was saved, if it was.
    pub log_file: Option<PathBuf>,
}

impl BootLog {
    /// Where the report on line `index` ends: the lines after it up to the next protocol line
    /// continue it (a multi-line panic message, e.g. `left: ...`/`right: ...`). Returns the
    /// index just past the report.
    fn report_end(&self, index: usize) -> usize {
        self.output
            .lines()
            .enumerate()
            .skip(index + 1)
            .find(|(_, line)| line.contains(MARKER))
            .map_or_else(|| self.output.lines().count(), |(next, _)| next)
    }

    /// A failure message: `reason`, then the last lines of the serial output up to line
    /// `upto` (exclusive; `None` for all of it), and QEMU's messages if there are any.
    fn failure(&self, reason: &str, upto: Option<usize>) -> String {
        let lines: Vec<&str> = self
            .output
            .lines()
            .map(|line| line.trim_end_matches('\r'))
            .collect();
        let lines = &lines[..upto.unwrap_or(lines.len()).min(lines.len())];
        let shown = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        let mut message = format!("{reason}\n");
        let whole = match &self.log_file {
            Some(path) => format!("; full log: {}", path.display()),
            None => String::new(),
        };
        message.push_str(&format!(
            "--- serial output (last {} of {} lines{whole}) ---\n",
            shown.len(),
            lines.len()
        ));
        for line in shown {
            message.push_str(line);
            message.push('\n');
        }
        if !self.stderr.trim().is_empty() {
            message.push_str("--- QEMU stderr ---\n");
            message.push_str(self.stderr.trim_end());
            message.push('\n');
        }
        message.push_str("---");
        message
    }
}

/// The result of one test: `Err` carries the failure message.
pub type TestResult = Result<(), String>;

/// Decides what a batch boot, asked to run `requested` in order, says about those tests.
///
/// Returns the tests it decided, in order. A test is decided when the kernel reported it, or
/// when the kernel died (or hung) while it was running; if none was running and the death does
/// not follow a reported failure, the first unfinished test takes the blame. If the kernel
/// died before reporting anything at all, every requested test fails with that message, so
/// that a kernel that can't boot is not booted once per test.
///
/// Whenever `requested` is not empty, at least one test is decided, so booting again for the
/// rest always makes progress.
pub fn interpret_batch(requested: &[String], boot: &BootLog) -> Vec<(String, TestResult)> {
    let mut decided: Vec<(String, TestResult)> = Vec::new();
    let is_open = |decided: &Vec<(String, TestResult)>, name: &str| {
        requested.iter().any(|r| r == name) && !decided.iter().any(|(d, _)| d == name)
    };
    let mut running: Option<&str> = None;
    // Whether the last thing the kernel reported was a failure: a failing test panics, and
    // the panic ends the boot, so then the death is explained and blames no other test.
    let mut ended_by_failure = false;
    let mut done = false;
    for (index, line) in boot.output.lines().enumerate() {
        match parse_line(line) {
            Some(Event::Start(name)) => {
                running = Some(name);
                ended_by_failure = false;
            }
            Some(Event::Pass(name)) => {
                if is_open(&decided, name) {
                    decided.push((name.to_owned(), Ok(())));
                }
                running = None;
                ended_by_failure = false;
            }
            Some(Event::Fail { name, reason }) => {
                if is_open(&decided, name) {
                    let reason = if reason.is_empty() { "failed" } else { reason };
                    let upto = boot.report_end(index);
                    decided.push((name.to_owned(), Err(boot.failure(reason, Some(upto)))));
                    ended_by_failure = true;
                }
                running = None;
            }
            Some(Event::Done) => done = true,
            _ => {}
        }
    }
    let undecided: Vec<&String> = requested
        .iter()
        .filter(|name| is_open(&decided, name))
        .collect();
    if undecided.is_empty() {
        return decided;
    }
    if done && boot.end == BootEnd::Exited(KernelExit::Success) {
        // The kernel says it is done, yet it skipped these: report rather than loop.
        for name in undecided {
            let reason = "the kernel finished the batch (@@ktest-done) without reporting this test";
            decided.push((name.clone(), Err(boot.failure(reason, None))));
        }
        return decided;
    }
    let how = match boot.end {
        BootEnd::Exited(KernelExit::Success) => {
            "the kernel exited with success (status 33) before finishing the batch".to_owned()
        }
        end => end.to_string(),
    };
    if let Some(name) = running.filter(|name| is_open(&decided, name)) {
        let reason = format!("{how}\n(while this test was running)");
        decided.push((name.to_owned(), Err(boot.failure(&reason, None))));
    } else if ended_by_failure {
        // The failed test took the kernel down with it; the rest run in the next boot.
    } else if !decided.is_empty() {
        let reason =
            format!("{how}\n(after the previous test had finished, before this one reported)");
        decided.push((undecided[0].clone(), Err(boot.failure(&reason, None))));
    } else {
        let reason = format!("{how}\n(before any test reported)");
        for name in undecided {
            decided.push((name.clone(), Err(boot.failure(&reason, None))));
        }
    }
    decided
}

/// Runs `names` as batches: boots with the tests not yet decided until every one is.
///
/// `boot` boots the kernel asking for the given tests, in order.
pub fn run_batch(
    names: &[String],
    mut boot: impl FnMut(&[String]) -> Result<BootLog, Error>,
) -> BTreeMap<String, TestResult> {
    let mut results = BTreeMap::new();
    let mut remaining = names.to_vec();
    while !remaining.is_empty() {
        match boot(&remaining) {
            Ok(log) => {
                for (name, result) in interpret_batch(&remaining, &log) {
                    results.insert(name, result);
                }
            }
            Err(error) => {
                for name in &remaining {
                    results.insert(
                        name.clone(),
                        Err(format!("cannot boot the kernel: {error}")),
                    );
                }
            }
        }
        remaining.retain(|name| !results.contains_key(name));
    }
    results
}

/// Decides a test that expects the CPU fault `fault`: it passes only if the kernel printed
/// `@@ktest-pass <name>` *and* exited with success.
pub fn interpret_fault_test(name: &str, fault: &str, boot: &BootLog) -> TestResult {
    let mut passed = false;
    for (index, line) in boot.output.lines().enumerate() {
        match parse_line(line) {
            Some(Event::Pass(n)) if n == name => passed = true,
            Some(Event::Fail { name: n, reason }) if n == name => {
                let reason = if reason.is_empty() { "failed" } else { reason };
                return Err(boot.failure(reason, Some(boot.report_end(index))));
            }
            _ => {}
        }
    }
    match (passed, boot.end) {
        (true, BootEnd::Exited(KernelExit::Success)) => Ok(()),
        (true, end) => Err(boot.failure(
            &format!(
                "the test reported a pass, but then {end} (a fault test must exit with status 33)"
            ),
            None,
        )),
        (false, end) => Err(boot.failure(
            &format!("expected a {fault} fault to be caught, but {end}"),
            None,
        )),
    }
}

/// What the shell printed in response to `command`: the text after the first line where
/// `command` was typed at a prompt, up to the next prompt.
pub fn command_output<'a>(output: &'a str, command: &str) -> Option<&'a str> {
    let mut rest = output;
    while let Some(at) = rest.find(PROMPT) {
        let after = &rest[at + PROMPT.len()..];
        let typed = after.trim_start_matches(' ');
        if let Some(tail) = typed.strip_prefix(command)
            && tail.starts_with(['\r', '\n'])
        {
            let end = tail.find(PROMPT).unwrap_or(tail.len());
            return Some(&tail[..end]);
        }
        rest = after;
    }
    None
}

/// Boots VMs for the tests and keeps their logs.
#[derive(Debug)]
pub struct Runner {
    host: Host,
    timeout: Duration,
    log_dir: PathBuf,
    batches: AtomicUsize,
}

impl Runner {
    /// A runner booting through `host`, with the given watchdog timeout.
    pub fn new(host: Host, timeout: Duration) -> Self {
        let log_dir = host.images().dir().join("logs");
        Self {
            host,
            timeout,
            log_dir,
            batches: AtomicUsize::new(0),
        }
    }

    /// The initramfs of a test boot: the command line plus [`FIXTURE`].
    pub fn initramfs(cmdline: &str) -> Initramfs {
        let mut initramfs = Initramfs::new(cmdline);
        initramfs
            .add_file(FIXTURE_PATH, FIXTURE)
            .expect("the fixture path is valid and unique");
        initramfs
    }

    /// Boots once with `cmdline` (typing `script`, if any) and saves the log as
    /// `target/sheaf/logs/<label>.log`.
    pub fn boot(
        &self,
        label: &str,
        machine: &Machine,
        cmdline: &str,
        script: Option<&Script>,
    ) -> Result<BootLog, Error> {
        let vm = self.host.vm(machine, &Self::initramfs(cmdline))?;
        let watchdog = Watchdog {
            timeout: self.timeout,
            // The shell trials print no markers: their timeout counts from the start.
            progress_marker: script.is_none().then(|| MARKER.to_owned()),
        };
        let captured = vm.run_captured(script, &watchdog)?;
        let end = match captured.status {
            Some(status) => BootEnd::Exited(KernelExit::from_status(status)),
            None => BootEnd::TimedOut(self.timeout),
        };
        let log_file = self.save_log(label, machine, cmdline, &captured.output, &captured.stderr);
        Ok(BootLog {
            output: captured.output,
            stderr: captured.stderr,
            end,
            log_file,
        })
    }

    /// Writes a boot's output to the log directory; returns the path, or `None` if that fails
    /// (logs are a convenience, not worth failing a test over).
    fn save_log(
        &self,
        label: &str,
        machine: &Machine,
        cmdline: &str,
        output: &str,
        stderr: &str,
    ) -> Option<PathBuf> {
        let name: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.log_dir.join(format!("{name}.log"));
        let text = format!(
            "# {} boot, {} CPUs, NUMA nodes: {:?}, cmdline: {cmdline}\n{output}\n# QEMU stderr:\n{stderr}",
            machine.firmware, machine.smp, machine.numa
        );
        std::fs::create_dir_all(&self.log_dir).ok()?;
        std::fs::write(&path, text).ok()?;
        Some(path)
    }

    /// Returns the kernel's tests: boots with `ktest=list`, or reuses the answer of an earlier
    /// run if the kernel has not changed since (`target/sheaf/ktest-list-<kernel hash>.txt`),
    /// which saves a boot when tests are rerun with other filters.
    pub fn list(&self) -> Result<Vec<KernelTest>, String> {
        let dir = self.host.images().dir().to_path_buf();
        let cache = self
            .host
            .images()
            .kernel_hash()
            .ok()
            .map(|hash| dir.join(format!("ktest-list-{hash:016x}.txt")));
        if let Some(tests) = cache
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| parse_list(&text).ok())
        {
            return Ok(tests);
        }
        let boot = self
            .boot("list", &Machine::default(), "ktest=list", None)
            .map_err(|e| format!("cannot boot the kernel: {e}"))?;
        match parse_list(&boot.output) {
            Ok(tests) if boot.end == BootEnd::Exited(KernelExit::Success) => {
                if let Some(cache) = cache {
                    save_list_cache(&dir, &cache, &boot.output);
                }
                Ok(tests)
            }
            Ok(_) => Err(boot.failure(&format!("listing the tests: {}", boot.end), None)),
            Err(reason) => Err(boot.failure(&format!("{reason}; {}", boot.end), None)),
        }
    }

    /// Boots a machine of `shape` with `ktest=run ktest.only=<names>`.
    pub fn run_tests(&self, label: &str, shape: Shape, names: &[String]) -> Result<BootLog, Error> {
        let cmdline = format!("ktest=run ktest.only={}", names.join(","));
        self.boot(label, &shape.machine(), &cmdline, None)
    }

    /// Runs the batchable tests `names`, which all need a machine of `shape`, in batch boots.
    pub fn run_batch(&self, shape: Shape, names: &[String]) -> BTreeMap<String, TestResult> {
        run_batch(names, |remaining| {
            let n = self.batches.fetch_add(1, Ordering::Relaxed) + 1;
            self.run_tests(&format!("batch-{n}-{shape}"), shape, remaining)
        })
    }

    /// Runs one test in a boot of its own.
    pub fn run_alone(&self, test: &KernelTest) -> TestResult {
        if !test.flags.unknown.is_empty() {
            return Err(format!(
                "the kernel lists flags this runner does not know: {} (update boot/src/ktest.rs)",
                test.flags.unknown.join(",")
            ));
        }
        let names = [test.name.clone()];
        let boot = self
            .run_tests(&test.name, test.flags.shape(), &names)
            .map_err(|e| format!("cannot boot the kernel: {e}"))?;
        match &test.flags.fault {
            Some(fault) => interpret_fault_test(&test.name, fault, &boot),
            None => interpret_batch(&names, &boot)
                .into_iter()
                .next()
                .map_or_else(|| Err("no result (runner bug)".to_owned()), |(_, r)| r),
        }
    }

    /// Boots the shell (empty command line), types `lines` at its prompts, requires a clean
    /// power-off (status 33), then lets `check` inspect the output.
    pub fn shell(
        &self,
        label: &str,
        firmware: Firmware,
        lines: &[&str],
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> TestResult {
        let script = Script {
            prompt: PROMPT.to_owned(),
            lines: lines.iter().map(|line| (*line).to_owned()).collect(),
        };
        let boot = self
            .boot(
                label,
                &Shape {
                    firmware,
                    ..Shape::default()
                }
                .machine(),
                "",
                Some(&script),
            )
            .map_err(|e| format!("cannot boot the kernel: {e}"))?;
        if boot.end != BootEnd::Exited(KernelExit::Success) {
            return Err(boot.failure(
                &format!(
                    "typed {lines:?}, expected a power-off with status 33, but {}",
                    boot.end
                ),
                None,
            ));
        }
        check(&boot.output).map_err(|reason| boot.failure(&reason, None))
    }
}

/// Keeps the protocol lines of a successful `ktest=list` boot in `cache`, and deletes the lists
/// of older kernels. Best effort: a cache that can't be written only costs a boot next time.
fn save_list_cache(dir: &Path, cache: &Path, output: &str) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("ktest-list-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let lines: String = output
        .lines()
        .filter(|line| line.contains(MARKER))
        .map(|line| format!("{}\n", line.trim_end_matches('\r')))
        .collect();
    let _ = std::fs::write(cache, lines);
}

/// Checks that the shell printed `words` (each as a whole word) in response to `command`.
fn expect_words(output: &str, command: &str, words: &[&str]) -> Result<(), String> {
    let printed = command_output(output, command)
        .ok_or_else(|| format!("no `{command}` typed at a `{PROMPT}` prompt in the output"))?;
    let tokens: Vec<&str> = printed.split_whitespace().collect();
    let missing: Vec<&&str> = words.iter().filter(|w| !tokens.contains(w)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "`{command}` did not print {missing:?}; it printed:\n{printed}"
        ))
    }
}

/// The host-driven trials: boots that type into the shell and check the answers.
fn host_trials(runner: &Arc<Runner>) -> Vec<Trial> {
    let mut trials = Vec::new();
    let r = Arc::clone(runner);
    trials.push(Trial::test("shell::help_and_poweroff", move || {
        r.shell("shell-help", Firmware::Bios, &["help", "poweroff"], |out| {
            expect_words(
                out,
                "help",
                &["help", "echo", "ls", "meminfo", "uptime", "poweroff"],
            )
        })
        .map_err(Into::into)
    }));
    let r = Arc::clone(runner);
    trials.push(Trial::test("shell::unknown_command", move || {
        r.shell(
            "shell-unknown",
            Firmware::Bios,
            &["frobnicate", "poweroff"],
            |out| {
                if out.contains("unknown command: frobnicate") {
                    Ok(())
                } else {
                    Err("no `unknown command: frobnicate` in the output".to_owned())
                }
            },
        )
        .map_err(Into::into)
    }));
    let r = Arc::clone(runner);
    trials.push(Trial::test("shell::ls_lists_initramfs", move || {
        r.shell("shell-ls", Firmware::Bios, &["ls", "poweroff"], |out| {
            expect_words(out, "ls", &["etc/motd", "cmdline"])
        })
        .map_err(Into::into)
    }));
    let r = Arc::clone(runner);
    trials.push(Trial::test("launcher::uefi_boots_to_shell", move || {
        r.shell("uefi-shell", Firmware::Uefi, &["poweroff"], |out| {
            if out.contains(PROMPT) {
                Ok(())
            } else {
                Err(format!("no `{PROMPT}` prompt in the output"))
            }
        })
        .map_err(Into::into)
    }));
    trials
}

/// Whether libtest-mimic will run a trial called `name` (same filter, `--exact`, `--skip` and
/// `--ignored` rules, applied by libtest-mimic itself to a stand-in trial).
fn is_selected(args: &Arguments, name: &str) -> bool {
    let probe = Trial::test(name, || Ok(()));
    !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
}

/// The results of one batch (tests sharing a machine shape), computed once by whichever of its
/// trials runs first.
struct Batch {
    shape: Shape,
    names: Vec<String>,
    results: OnceLock<BTreeMap<String, TestResult>>,
}

/// All trials: the kernel's tests (after a listing boot) and the host-driven ones.
///
/// Order matters for speed with several test threads: the first test of each batch comes
/// first (each starts its batch boot), the default machine's batch, the largest, leading; then
/// the trials with boots of their own; then the other batched tests, which only read results.
pub fn trials(args: &Arguments, runner: &Arc<Runner>) -> Vec<Trial> {
    let mut leaders = Vec::new();
    let mut alone = Vec::new();
    let mut followers = Vec::new();
    match runner.list() {
        Ok(tests) => {
            let mut batches: BTreeMap<Shape, Arc<Batch>> = BTreeMap::new();
            for test in tests.iter().filter(|t| t.flags.is_batchable()) {
                let shape = test.flags.shape();
                let batch = batches.entry(shape).or_insert_with(|| {
                    Arc::new(Batch {
                        shape,
                        names: Vec::new(),
                        results: OnceLock::new(),
                    })
                });
                if is_selected(args, &test.name) {
                    Arc::get_mut(batch)
                        .expect("no trial holds the batch yet")
                        .names
                        .push(test.name.clone());
                }
            }
            let mut led: Vec<Shape> = Vec::new();
            for test in tests {
                let runner = Arc::clone(runner);
                if !test.flags.is_batchable() {
                    alone.push(Trial::test(test.name.clone(), move || {
                        runner.run_alone(&test).map_err(Into::into)
                    }));
                    continue;
                }
                let batch = Arc::clone(&batches[&test.flags.shape()]);
                let shape = batch.shape;
                let name = test.name.clone();
                let trial = Trial::test(test.name, move || {
                    let results = batch
                        .results
                        .get_or_init(|| runner.run_batch(batch.shape, &batch.names));
                    match results.get(&name) {
                        Some(result) => result.clone().map_err(Into::into),
                        None => Err("not part of its batch (runner bug)".into()),
                    }
                });
                if led.contains(&shape) {
                    followers.push(trial);
                } else {
                    led.push(shape);
                    if shape == Shape::default() {
                        leaders.insert(0, trial);
                    } else {
                        leaders.push(trial);
                    }
                }
            }
        }
        Err(message) => alone.push(Trial::test("ktest::list", move || Err(message.into()))),
    }
    alone.extend(host_trials(runner));
    leaders.into_iter().chain(alone).chain(followers).collect()
}

/// The watchdog timeout: [`TIMEOUT_VAR`] seconds if set and valid, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Duration {
    match std::env::var(TIMEOUT_VAR) {
        Ok(value) => match value.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => {
                eprintln!(
                    "warning: {TIMEOUT_VAR}={value:?} is not a positive number of seconds; \
                     using {}",
                    DEFAULT_TIMEOUT.as_secs()
                );
                DEFAULT_TIMEOUT
            }
        },
        Err(_) => DEFAULT_TIMEOUT,
    }
}

/// `main` of `tests/kernel.rs`: runs the on-target tests of `kernel` with libtest-mimic's
/// command-line interface (`cargo test -- [FILTER] [--exact] [--skip S] [--list] ...`).
pub fn main(kernel: &Path) -> ExitCode {
    let args = Arguments::from_args();
    let host = match Host::new(kernel) {
        Ok(host) => host,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runner = Arc::new(Runner::new(host, timeout_from_env()));
    let trials = trials(&args, &runner);
    libtest_mimic::run(&args, trials).exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn exited(code: i32) -> BootEnd {
        BootEnd::Exited(KernelExit::from_status(std::process::ExitStatus::from_raw(
            code << 8,
        )))
    }

    fn log(output: &str, end: BootEnd) -> BootLog {
        BootLog {
            output: output.to_owned(),
            stderr: String::new(),
            end,
            log_file: None,
        }
    }

    #[test]
    fn parses_protocol_lines() {
        assert_eq!(
            parse_line("@@ktest-list memory::frame::reuse -\r"),
            Some(Event::List {
                name: "memory::frame::reuse",
                flags: "-"
            })
        );
        assert_eq!(
            parse_line("[ 0.1] log noise @@ktest-start a::b"),
            Some(Event::Start("a::b"))
        );
        assert_eq!(
            parse_line("@@ktest-pass a::b\r\n"),
            Some(Event::Pass("a::b"))
        );
        assert_eq!(
            parse_line("@@ktest-fail a::b panicked: 1 != 2 at x.rs:3\r"),
            Some(Event::Fail {
                name: "a::b",
                reason: "panicked: 1 != 2 at x.rs:3"
            })
        );
        assert_eq!(
            parse_line("@@ktest-fail a::b"),
            Some(Event::Fail {
                name: "a::b",
                reason: ""
            })
        );
        assert_eq!(parse_line("@@ktest-end"), Some(Event::ListEnd));
        assert_eq!(parse_line("@@ktest-done\r"), Some(Event::Done));
        assert_eq!(parse_line("@@ktest-start"), None);
        assert_eq!(parse_line("@@ktest-bogus x"), None);
        assert_eq!(parse_line("plain output"), None);
    }

    #[test]
    fn parses_flags() {
        assert_eq!(Flags::parse("-"), Flags::default());
        assert!(Flags::parse("-").is_batchable());
        let flags = Flags::parse("fault=page_fault,uefi");
        assert_eq!(flags.fault.as_deref(), Some("page_fault"));
        assert!(flags.uefi);
        assert_eq!(flags.shape().firmware, Firmware::Uefi);
        assert!(!flags.is_batchable());
        let flags = Flags::parse("smp=8,numa=2");
        assert!(flags.is_batchable());
        assert_eq!(
            flags.shape(),
            Shape {
                firmware: Firmware::Bios,
                smp: 8,
                numa: Some(2)
            }
        );
        assert_eq!(flags.shape().to_string(), "bios-smp8-numa2");
        // smp=4 is the default machine: such a test joins the main batch.
        assert_eq!(Flags::parse("smp=4").shape(), Shape::default());
        assert_eq!(Flags::parse("smp=0").unknown, ["smp=0"]);
        assert_eq!(Flags::parse("colour=blue").unknown, ["colour=blue"]);
        assert!(!Flags::parse("colour=blue").is_batchable());
    }

    #[test]
    fn parses_a_list() {
        let output = "boot\r\n@@ktest-list a::x -\r\n@@ktest-list b::y fault=double_fault\r\n\
                      @@ktest-list c uefi\r\n@@ktest-end\r\n";
        let tests = parse_list(output).unwrap();
        assert_eq!(tests.len(), 3);
        assert_eq!(tests[1].name, "b::y");
        assert_eq!(tests[1].flags.fault.as_deref(), Some("double_fault"));
        assert!(tests[2].flags.uefi);
        assert!(parse_list("@@ktest-list a -\n").is_err());
    }

    #[test]
    fn batch_all_pass() {
        let requested = names(&["a", "b"]);
        let output =
            "@@ktest-start a\n@@ktest-pass a\n@@ktest-start b\n@@ktest-pass b\n@@ktest-done\n";
        let decided = interpret_batch(&requested, &log(output, exited(33)));
        assert_eq!(decided, vec![("a".into(), Ok(())), ("b".into(), Ok(()))]);
    }

    #[test]
    fn batch_reported_failure_keeps_reason_and_log() {
        let requested = names(&["a", "b", "c"]);
        let output = "@@ktest-start a\n@@ktest-pass a\n@@ktest-start b\nsome detail\n\
                      @@ktest-fail b panicked: boom\n  left: 1\n right: 2\n@@ktest-other x\n";
        let decided = interpret_batch(&requested, &log(output, exited(35)));
        assert_eq!(decided.len(), 2, "{decided:?}");
        let message = decided[1].1.clone().unwrap_err();
        assert!(message.starts_with("panicked: boom\n"), "{message}");
        assert!(message.contains("some detail"), "{message}");
        // The rest of a multi-line panic message is kept, up to the next protocol line.
        assert!(message.contains(" right: 2\n"), "{message}");
        assert!(!message.contains("@@ktest-other x"), "{message}");
    }

    #[test]
    fn batch_crash_blames_the_running_test() {
        let requested = names(&["a", "b", "c"]);
        let output = "@@ktest-start a\n@@ktest-pass a\n@@ktest-start b\ntriple fault soon\n";
        let decided = interpret_batch(&requested, &log(output, exited(0)));
        assert_eq!(decided.len(), 2);
        assert_eq!(decided[1].0, "b");
        let message = decided[1].1.clone().unwrap_err();
        assert!(message.contains("status 0"), "{message}");
        assert!(message.contains("triple fault soon"), "{message}");
    }

    #[test]
    fn batch_timeout_blames_the_running_test() {
        let requested = names(&["a", "b"]);
        let output = "@@ktest-start a\n";
        let decided = interpret_batch(&requested, &log(output, BootEnd::TimedOut(DEFAULT_TIMEOUT)));
        assert_eq!(decided.len(), 1);
        assert!(decided[0].1.clone().unwrap_err().contains("timed out"));
    }

    #[test]
    fn batch_death_before_any_report_fails_everything() {
        let requested = names(&["a", "b"]);
        let decided = interpret_batch(&requested, &log("KERNEL PANIC: early\n", exited(35)));
        assert_eq!(decided.len(), 2);
        assert!(
            decided
                .iter()
                .all(|(_, r)| r.as_ref().unwrap_err().contains("early"))
        );
    }

    #[test]
    fn batch_done_but_missing_test() {
        let requested = names(&["a", "b"]);
        let output = "@@ktest-start a\n@@ktest-pass a\n@@ktest-done\n";
        let decided = interpret_batch(&requested, &log(output, exited(33)));
        assert_eq!(decided.len(), 2);
        assert!(decided[1].1.is_err());
    }

    #[test]
    fn run_batch_reboots_for_the_rest() {
        let all = names(&["a", "b", "c", "d"]);
        let mut boots = Vec::new();
        let results = run_batch(&all, |remaining| {
            boots.push(remaining.to_vec());
            let output = match remaining.len() {
                // First boot: a passes, b crashes the machine.
                4 => "@@ktest-start a\n@@ktest-pass a\n@@ktest-start b\n",
                // Second boot: c fails by panicking, which ends the boot.
                2 => "@@ktest-start c\n@@ktest-fail c panicked\n",
                // Third boot: d passes.
                _ => "@@ktest-start d\n@@ktest-pass d\n@@ktest-done\n",
            };
            let end = if remaining.len() == 1 {
                exited(33)
            } else {
                exited(35)
            };
            Ok(log(output, end))
        });
        assert_eq!(boots, vec![all.clone(), names(&["c", "d"]), names(&["d"])]);
        assert_eq!(results["a"], Ok(()));
        assert!(results["b"].is_err());
        assert!(results["c"].is_err());
        assert_eq!(results["d"], Ok(()));
    }

    #[test]
    fn fault_tests_need_pass_and_success() {
        let pass = "@@ktest-start f\nktest: caught the expected page fault\n@@ktest-pass f\n";
        assert_eq!(
            interpret_fault_test("f", "page_fault", &log(pass, exited(33))),
            Ok(())
        );
        assert!(interpret_fault_test("f", "page_fault", &log(pass, exited(35))).is_err());
        let silent = "@@ktest-start f\n";
        let message = interpret_fault_test("f", "page_fault", &log(silent, exited(0))).unwrap_err();
        assert!(message.contains("expected a page_fault fault"), "{message}");
        let failed = "@@ktest-start f\n@@ktest-fail f returned without the expected page_fault\n";
        let message =
            interpret_fault_test("f", "page_fault", &log(failed, exited(33))).unwrap_err();
        assert!(message.starts_with("returned without"), "{message}");
    }

    #[test]
    fn failure_messages_show_the_log_tail() {
        let output: String = (0..100).map(|i| format!("line {i}\r\n")).collect();
        let message = log(&output, exited(35)).failure("boom", None);
        assert!(message.contains("last 60 of 100 lines"), "{message}");
        assert!(message.contains("line 99\n"));
        assert!(message.contains("line 40\n"));
        assert!(!message.contains("line 39\n"));
        assert!(!message.contains('\r'));
    }

    #[test]
    fn finds_a_command_output() {
        let output = "Welcome\r\nsheaf> help\r\nCommands:\r\n  help  list\r\n  ls  files\r\nsheaf> poweroff\r\nPowering off.\r\n";
        let help = command_output(output, "help").unwrap();
        assert!(
            help.contains("Commands:") && !help.contains("Powering"),
            "{help:?}"
        );
        assert_eq!(expect_words(output, "help", &["help", "ls"]), Ok(()));
        assert!(expect_words(output, "help", &["meminfo"]).is_err());
        assert!(command_output(output, "ls").is_none());
        assert!(
            command_output(output, "poweroff")
                .unwrap()
                .contains("Powering off.")
        );
    }

    #[test]
    fn selection_follows_libtest_filters() {
        let args = Arguments::from_iter(["test", "frame"]);
        assert!(is_selected(&args, "memory::frame::reuse"));
        assert!(!is_selected(&args, "shell::help_and_poweroff"));
        let args = Arguments::from_iter(["test", "--exact", "a::b"]);
        assert!(is_selected(&args, "a::b"));
        assert!(!is_selected(&args, "a::bc"));
        let args = Arguments::from_iter(["test", "--skip", "memory"]);
        assert!(!is_selected(&args, "memory::frame::reuse"));
        assert!(is_selected(&args, "cmdline::parses"));
    }
}
