//! Booting VMs for the tests ([`Runner`]): the listing boot and its cache, batch boots, boots
//! of single tests, and the host-driven trials that type into the shell ([`command_output`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use super::boot_log::{
    BootEnd, BootLog, TestResult, interpret_batch, interpret_fault_test, run_batch,
};
use super::protocol::{KernelTest, Shape, parse_list};
use super::{ADDED_MODULE, FIXTURE, FIXTURE_PATH, MARKER, PROMPT};
use crate::initramfs::Initramfs;
use crate::qemu::{Host, KernelExit, Machine, Script, Watchdog};
use crate::{Error, Firmware};

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

/// Whether a boot's label is of one kind (for the summary's rows).
type IsKind = fn(&str) -> bool;

/// What one boot of the test run cost, for the summary ([`Runner::summary`]).
#[derive(Debug, Clone)]
struct BootStat {
    /// The boot's label (`list`, `batch-1-bios-4cpu`, a test name, `shell-help`).
    label: String,
    /// Preparing it: the initramfs, the disk image (cached, or built) and its private copy.
    prepare: Duration,
    /// From starting QEMU to its exit.
    run: Duration,
    /// From starting QEMU to the kernel's first line, if it printed one.
    to_kernel: Option<Duration>,
}

/// Boots VMs for the tests and keeps their logs.
#[derive(Debug)]
pub struct Runner {
    host: Host,
    timeout: Duration,
    log_dir: PathBuf,
    batches: AtomicUsize,
    stats: Mutex<Vec<BootStat>>,
    /// How the list of tests was obtained, and how long it took.
    listing: Mutex<Option<(&'static str, Duration)>>,
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
            stats: Mutex::new(Vec::new()),
            listing: Mutex::new(None),
        }
    }

    /// The runner's part of `cargo test`'s time, printed after libtest's result line: the
    /// listing, then the boots by kind with their preparation (disk images), QEMU time and
    /// time to the kernel's first line. `wall` is the whole run of the test binary.
    pub fn summary(&self, wall: Duration) -> String {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut text = format!(
            "on-target runner: {:.1} s in all, {} boot(s)\n",
            wall.as_secs_f64(),
            stats.len()
        );
        if let Some((how, took)) = *self.listing.lock().unwrap_or_else(|e| e.into_inner()) {
            text.push_str(&format!(
                "  listing the tests: {how}, {:.2} s\n",
                took.as_secs_f64()
            ));
        }
        let kinds: [(&str, IsKind); 4] = [
            ("listing boot", |l| l == "list"),
            ("batch boots", |l| l.starts_with("batch-")),
            ("shell and UEFI boots", |l| {
                l.starts_with("shell-") || l == "uefi-shell"
            }),
            ("boots of single tests", |_| true),
        ];
        let mut left: Vec<&BootStat> = stats.iter().collect();
        for (kind, matches) in kinds {
            let (these, rest): (Vec<&BootStat>, Vec<&BootStat>) =
                left.into_iter().partition(|s| matches(&s.label));
            left = rest;
            if these.is_empty() {
                continue;
            }
            let sum = |f: fn(&BootStat) -> Duration| these.iter().map(|s| f(s)).sum::<Duration>();
            let mut runs: Vec<Duration> = these.iter().map(|s| s.run).collect();
            runs.sort();
            let firsts: Vec<Duration> = these.iter().filter_map(|s| s.to_kernel).collect();
            let to_kernel = if firsts.is_empty() {
                String::new()
            } else {
                let mean = firsts.iter().sum::<Duration>() / firsts.len() as u32;
                format!(
                    ", QEMU start to the kernel's first line {:.2} s on average",
                    mean.as_secs_f64()
                )
            };
            text.push_str(&format!(
                "  {kind}: {}, preparing images {:.2} s, in QEMU {:.1} s (longest {:.1} s, median {:.1} s){to_kernel}\n",
                these.len(),
                sum(|s| s.prepare).as_secs_f64(),
                sum(|s| s.run).as_secs_f64(),
                runs[runs.len() - 1].as_secs_f64(),
                runs[runs.len() / 2].as_secs_f64(),
            ));
        }
        text.push_str("  (boots run in parallel, one per test thread: QEMU time adds up past the wall time)\n");
        text
    }

    /// The initramfs of a test boot: the command line plus [`FIXTURE`], and a module at the
    /// root as `cargo run -- --initrd-add` puts one ([`ADDED_MODULE`]).
    pub fn initramfs(cmdline: &str) -> Initramfs {
        let mut initramfs = Initramfs::new(cmdline);
        initramfs
            .add_file(FIXTURE_PATH, FIXTURE)
            .expect("the fixture path is valid and unique");
        let (_, hello_c) = crate::initramfs::EXAMPLE_MODULES
            .iter()
            .find(|(name, _)| *name == "hello_c.ko")
            .expect("hello_c is an example");
        initramfs
            .add_file(ADDED_MODULE, *hello_c)
            .expect("the added module's path is valid and unique");
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
        let prepare = Instant::now();
        let vm = self.host.vm(machine, &Self::initramfs(cmdline))?;
        let prepare = prepare.elapsed();
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
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(BootStat {
                label: label.to_owned(),
                prepare,
                run: captured.elapsed,
                to_kernel: captured.first_line,
            });
        let log_file = self.save_log(label, machine, cmdline, &captured.output, &captured.stderr);
        Ok(BootLog {
            output: captured.output,
            stderr: captured.stderr,
            end,
            log_file,
            kernel: Some(self.host.images().kernel().to_owned()),
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
        let start = Instant::now();
        let result = self.list_uncounted();
        let how = if self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            "cached for this kernel"
        } else {
            "one boot"
        };
        *self.listing.lock().unwrap_or_else(|e| e.into_inner()) = Some((how, start.elapsed()));
        result
    }

    /// [`Runner::list`] without the bookkeeping for the summary.
    fn list_uncounted(&self) -> Result<Vec<KernelTest>, String> {
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
                "the kernel lists flags this runner does not know: {} (update boot/src/ktest/protocol.rs)",
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
        self.shell_with(label, firmware, "", lines, check)
    }

    /// [`Self::shell`] with the kernel command line `cmdline`.
    pub fn shell_with(
        &self,
        label: &str,
        firmware: Firmware,
        cmdline: &str,
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
                cmdline,
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
pub(super) fn host_trials(runner: &Arc<Runner>) -> Vec<Trial> {
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
    trials.push(Trial::test("shell::sysfs_slab_view", move || {
        let top = "ls /sys";
        let ls = "ls /sys/kernel/slab";
        let cat = "cat /sys/kernel/slab/kmalloc-64/object_size";
        r.shell(
            "shell-sysfs",
            Firmware::Bios,
            &[top, ls, cat, "poweroff"],
            |out| {
                expect_words(out, top, &["kernel/", "module/"])?;
                expect_words(out, ls, &[":0000064/", "kmalloc-64", "->", ":0000064"])?;
                expect_words(out, cat, &["64"])
            },
        )
        .map_err(Into::into)
    }));
    let r = Arc::clone(runner);
    trials.push(Trial::test(
        "shell::echo_to_sysfs_and_proc_slabinfo",
        move || {
            let proc = "cat /proc/slabinfo";
            let shrink = "echo 1 > /sys/kernel/slab/kmalloc-64/shrink";
            let bad = "echo 0 > /sys/kernel/slab/kmalloc-64/shrink";
            let ro = "echo 1 >/sys/kernel/slab/kmalloc-64/order";
            r.shell(
                "shell-echo",
                Firmware::Bios,
                &[proc, shrink, bad, ro, "poweroff"],
                |out| {
                    expect_words(
                        out,
                        proc,
                        &[
                            "slabinfo",
                            "version:",
                            "2.1",
                            "<active_objs>",
                            "kmalloc-64",
                            "tunables",
                            "slabdata",
                        ],
                    )?;
                    let said = command_output(out, shrink).unwrap_or_default();
                    if said.contains("echo:") {
                        return Err(format!("`{shrink}` failed: {said}"));
                    }
                    expect_words(out, bad, &["Invalid", "argument"])?;
                    expect_words(out, ro, &["Permission", "denied"])
                },
            )
            .map_err(Into::into)
        },
    ));
    let r = Arc::clone(runner);
    trials.push(Trial::test(
        "headers::kmem_cache_size_h_is_current",
        move || {
            let kernel = r.host.images().kernel();
            crate::headers::check(kernel, &crate::headers::repo_root()).map_err(Into::into)
        },
    ));
    let r = Arc::clone(runner);
    trials.push(Trial::test(
        "shell::slub_debug_zu_reports_name_the_callers_of_kmalloc",
        move || {
            // Every kmalloc cache red-zones and tracks callers: the shell's own kmalloc(13),
            // written one byte past, is reported at kfree with the function that allocated it.
            // (A boot-time check of `kmalloc-32/alloc_calls` naming `thread::create` failed
            // once in a full CI run, every location `<not-available>`, and never in 16 runs
            // since: see the notes; the allocations here come straight from the shell.)
            let overflow = "kmalloc-overflow";
            let calls = "cat /sys/kernel/slab/kmalloc-32/alloc_calls";
            r.shell_with(
                "shell-slub-debug-zu",
                Firmware::Bios,
                "slub_debug=ZU",
                &[overflow, calls, "poweroff"],
                |out| {
                    let said = command_output(out, overflow).unwrap_or_default();
                    let named = said.lines().any(|l| {
                        l.contains("INFO: Allocated in kernel::shell::slab::kmalloc_overflow+0x")
                            && l.contains(" age=")
                            && l.contains(" pid=")
                    });
                    if !said.contains("kmalloc red zone overwritten at offset 13") || !named {
                        return Err(format!(
                            "`{overflow}` should be reported with `INFO: Allocated in \
                             kernel::shell::slab::kmalloc_overflow+0x... age= cpu= pid=`:\n{said}"
                        ));
                    }
                    // Linux's format: `count caller age=... pid=...`, one line per location.
                    let listed = command_output(out, calls).unwrap_or_default();
                    let lines: Vec<&str> =
                        listed.lines().filter(|l| !l.trim().is_empty()).collect();
                    let linux_like = |l: &&str| {
                        let mut words = l.split_whitespace();
                        words.next().is_some_and(|n| n.parse::<u64>().is_ok())
                            && words.next().is_some()
                            && l.contains(" age=")
                            && l.contains(" pid=")
                    };
                    if lines.is_empty() || !lines.iter().all(linux_like) {
                        return Err(format!("`{calls}` in Linux's format:\n{listed}"));
                    }
                    Ok(())
                },
            )
            .map_err(Into::into)
        },
    ));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
