//! Where a boot's time goes: [`BootTimes`] collects timestamped milestones of one `cargo run`
//! and prints them as a table of phases.
//!
//! Turned on with the environment variable [`TIMES_VAR`] (`SHEAF_BOOT_TIMES=1`), for a boot
//! with piped input (`printf 'poweroff\n' | SHEAF_BOOT_TIMES=1 cargo run`). The milestones
//! come from three places, all seen from the host:
//!
//! - the launcher itself (start, disk image ready, QEMU started, QEMU exited), and Cargo's
//!   start from `/proc` (Cargo is the launcher's parent under `cargo run`);
//! - SeaBIOS's debug console: QEMU writes what the BIOS prints to I/O port `0x402` to a file,
//!   which a thread follows. SeaBIOS names the moment it hands over to the boot sector, and
//!   the BIOS calls of the bootloader's second stage show when it has loaded the files (its
//!   first VESA query) and when it leaves for the third stage (the VESA mode set). OVMF
//!   (UEFI) prints nothing there, so a UEFI boot shows firmware and bootloader as one phase;
//! - the serial console: the kernel's first line and the shell's prompt. With
//!   `SHEAF_BOOT_TIMES=bootloader` the bootloader also logs its fourth stage (BIOS) or its
//!   whole run (UEFI) on the serial port, which splits the phase before the kernel further;
//!   that log costs time of its own, so compare phases, not the total, in that mode.
//!
//! Times are read when the host sees the bytes (the follower thread polls every millisecond),
//! so each is a few milliseconds late at most.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The environment variable that turns the phase breakdown on: `1` (or any value but `0` and
/// `bootloader`) for the breakdown, `bootloader` to add the bootloader's own log.
pub const TIMES_VAR: &str = "SHEAF_BOOT_TIMES";

/// What [`TIMES_VAR`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimesMode {
    /// No breakdown (the variable is unset, empty or `0`).
    Off,
    /// The breakdown, from the launcher, SeaBIOS's debug console and the serial console.
    On,
    /// The breakdown plus the bootloader's serial log (slower; see the module documentation).
    Bootloader,
}

impl TimesMode {
    /// Reads [`TIMES_VAR`].
    pub fn from_env() -> Self {
        Self::parse(std::env::var(TIMES_VAR).ok().as_deref())
    }

    /// Interprets a value of [`TIMES_VAR`].
    pub fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("" | "0") => TimesMode::Off,
            Some("bootloader") => TimesMode::Bootloader,
            Some(_) => TimesMode::On,
        }
    }
}

/// Lines of SeaBIOS's debug console and of the serial console that mark the end of a phase:
/// `(text to look for, name of the phase that ends there)`. Each counts once, the first time.
const MILESTONES: &[(&str, &str)] = &[
    // SeaBIOS (debug console).
    (
        "SeaBIOS (version",
        "QEMU start-up (to the BIOS's first output)",
    ),
    (
        "Booting from 0000:7c00",
        "SeaBIOS (POST, finding the boot disk)",
    ),
    (
        "VBE mode info request",
        "stage 1+2: boot sector, stage 2 loads stages 3, 4, kernel, ramdisk",
    ),
    ("VBE mode set", "stage 2: VESA mode list and choice"),
    // The bootloader's log (serial), only with SHEAF_BOOT_TIMES=bootloader.
    (
        "UEFI bootloader started",
        "OVMF (UEFI firmware) to the bootloader",
    ),
    (
        "4th Stage",
        "stage 2 mode set + stage 3 (VESA mode set, text on the frame buffer, long mode)",
    ),
    (
        "Map physical memory",
        "stage 4: kernel ELF loaded, stack, frame buffer",
    ),
    ("Allocate bootinfo", "bootloader: physical-memory map"),
    // The kernel (serial).
    (
        " booting",
        "to the kernel's first line (BIOS: stages 3-4; UEFI: OVMF and the bootloader)",
    ),
    ("sheaf>", "kernel (first line to the shell prompt)"),
];

/// Timestamped milestones of one boot, shared by the threads that watch its output.
#[derive(Debug)]
pub struct BootTimes {
    start: Instant,
    marks: Mutex<Vec<(Duration, String)>>,
    seen: Mutex<Vec<bool>>,
    /// How long the process ran before `start` (Cargo, under `cargo run`), if known.
    before: Mutex<Option<Duration>>,
}

impl BootTimes {
    /// A timeline starting at `start` (the launcher's start).
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            marks: Mutex::new(Vec::new()),
            seen: Mutex::new(vec![false; MILESTONES.len()]),
            before: Mutex::new(None),
        }
    }

    /// Records that the phase `what` ended now.
    pub fn mark(&self, what: impl Into<String>) {
        self.mark_at(Instant::now(), what);
    }

    /// Records that the phase `what` ended at `at`.
    pub fn mark_at(&self, at: Instant, what: impl Into<String>) {
        let offset = at.saturating_duration_since(self.start);
        self.marks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((offset, what.into()));
    }

    /// Looks for milestones in `text`, which arrived at `at`; each milestone counts once.
    pub fn scan(&self, text: &str, at: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (index, (needle, phase)) in MILESTONES.iter().enumerate() {
            if !seen[index] && text.contains(needle) {
                seen[index] = true;
                self.mark_at(at, *phase);
            }
        }
    }

    /// Records how long this process ran before the launcher's `main` started timing.
    ///
    /// `cargo run` *replaces* itself with the launcher (`exec`), so the process started when
    /// Cargo did, and that time is Cargo's: checking that nothing needs rebuilding, then
    /// starting the program. Read from `/proc` in clock ticks (10 ms).
    pub fn mark_process_start(&self) {
        let age = process_age().map(|age| age.saturating_sub(self.start.elapsed()));
        *self.before.lock().unwrap_or_else(|e| e.into_inner()) = age;
    }

    /// The phases in order, as a table: end time since the launcher started, duration, name.
    pub fn report(&self) -> String {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        marks.sort_by_key(|(at, _)| *at);
        let before = self
            .before
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_default();
        let mut text = String::from(
            "boot phases (SHEAF_BOOT_TIMES): end of each phase since the process started, \
             and its duration\n",
        );
        if !before.is_zero() {
            marks.insert(
                0,
                (
                    Duration::ZERO,
                    "cargo run: Cargo's checks and exec of the launcher (10 ms resolution)"
                        .to_owned(),
                ),
            );
            for (at, _) in marks.iter_mut().skip(1) {
                *at += before;
            }
            marks[0].0 = before;
        }
        let mut last = Duration::ZERO;
        for (at, what) in marks {
            let took = at.saturating_sub(last);
            text.push_str(&format!(
                "  {:>7.3} s  {:>7.3} s  {what}\n",
                at.as_secs_f64(),
                took.as_secs_f64()
            ));
            last = at;
        }
        text
    }
}

/// How long ago this process started, from `/proc/uptime` and `/proc/self/stat` (field 22,
/// the start time in clock ticks since boot; `USER_HZ` is 100 on every common configuration).
fn process_age() -> Option<Duration> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let ticks: u64 = stat_field(&std::fs::read_to_string("/proc/self/stat").ok()?, 22)?
        .parse()
        .ok()?;
    let started = Duration::from_millis(ticks * 10);
    Duration::try_from_secs_f64(uptime)
        .ok()?
        .checked_sub(started)
}

/// Field `n` (1-based, as in `proc(5)`) of a `/proc/<pid>/stat` line. The command name (field
/// 2) is in parentheses and may contain spaces, so fields after it are counted from its `)`.
fn stat_field(stat: &str, n: usize) -> Option<String> {
    match n {
        1 => stat.split_whitespace().next().map(str::to_owned),
        2 => Some(stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned()),
        _ => stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .nth(n - 3)
            .map(str::to_owned),
    }
}

/// Follows a file that QEMU appends to (the debug console), scanning what arrives for
/// milestones, until dropped.
#[derive(Debug)]
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Follower {
    /// Starts following `path` (which may not exist yet) for `times`.
    pub fn start(path: PathBuf, times: Arc<BootTimes>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut file: Option<File> = None;
            let mut pending = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let stopping = flag.load(Ordering::Relaxed);
                if file.is_none() {
                    file = File::open(&path).ok();
                }
                if let Some(file) = file.as_mut() {
                    while let Ok(n @ 1..) = file.read(&mut chunk) {
                        pending.extend_from_slice(&chunk[..n]);
                    }
                }
                if !pending.is_empty() {
                    times.scan(&String::from_utf8_lossy(&pending), Instant::now());
                    // Keep a partial last line for the next round.
                    let keep = pending
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    pending.drain(..keep);
                }
                if stopping {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(TimesMode::parse(None), TimesMode::Off);
        assert_eq!(TimesMode::parse(Some("0")), TimesMode::Off);
        assert_eq!(TimesMode::parse(Some("")), TimesMode::Off);
        assert_eq!(TimesMode::parse(Some("1")), TimesMode::On);
        assert_eq!(TimesMode::parse(Some("bootloader")), TimesMode::Bootloader);
    }

    #[test]
    fn milestones_count_once_and_sort() {
        let start = Instant::now();
        let times = BootTimes::new(start);
        times.scan(
            "SeaBIOS (version 1.16)\n",
            start + Duration::from_millis(70),
        );
        times.scan(
            "Booting from 0000:7c00\n",
            start + Duration::from_millis(100),
        );
        times.scan(
            "SeaBIOS (version 1.16)\n",
            start + Duration::from_millis(900),
        );
        times.mark_at(start + Duration::from_millis(30), "image ready");
        let report = times.report();
        let lines: Vec<&str> = report.lines().skip(1).collect();
        assert_eq!(lines.len(), 3, "{report}");
        assert!(lines[0].contains("0.030 s") && lines[0].ends_with("image ready"));
        assert!(
            lines[1].contains("0.070 s    0.040 s  QEMU start-up"),
            "{report}"
        );
        assert!(lines[2].contains("0.100 s    0.030 s  SeaBIOS"), "{report}");
    }

    #[test]
    fn stat_fields_skip_the_command_name() {
        let stat = "42 (my (odd) prog) S 7 42 42 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345 99";
        assert_eq!(stat_field(stat, 1).as_deref(), Some("42"));
        assert_eq!(stat_field(stat, 2).as_deref(), Some("my (odd) prog"));
        assert_eq!(stat_field(stat, 4).as_deref(), Some("7"));
        assert_eq!(stat_field(stat, 22).as_deref(), Some("12345"));
    }
}
