//! The on-target test runner behind `cargo test` (`tests/kernel.rs`).
//!
//! Kernel tests (`#[ktest]` functions, see `kernel/core/src/ktest.rs`) can only run inside the VM,
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
//! makes no progress (no new `@@ktest-` line) for `SHEAF_TEST_TIMEOUT` seconds (default 60);
//! a long test prints `@@ktest-progress` lines (`kcore::ktest::progress`), which only feed it.
//! The list of tests is cached per kernel binary, so rerunning with another filter costs no
//! listing boot.
//!
//! Besides the kernel's own tests there are a few **host-driven** trials that type into the
//! shell and check what it prints (`shell::*`, `launcher::*`).
//!
//! Every boot's full serial log is kept in `target/sheaf/logs/`.

mod boot_log;
mod protocol;
mod runner;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};

use crate::qemu::Host;
use runner::host_trials;

pub use boot_log::{
    BootEnd, BootLog, TestResult, interpret_batch, interpret_fault_test, run_batch,
};
pub use protocol::{Event, Flags, KernelTest, Shape, parse_line, parse_list};
pub use runner::{Runner, command_output};

/// How long a VM may go without printing a `@@ktest-` line before it counts as hung.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variable that overrides [`DEFAULT_TIMEOUT`], in seconds.
pub const TIMEOUT_VAR: &str = "SHEAF_TEST_TIMEOUT";

/// Path of the fixture file every test boot's initramfs carries (an on-target test reads it).
pub const FIXTURE_PATH: &str = "ktest/fixture.txt";

/// Contents of [`FIXTURE_PATH`].
pub const FIXTURE: &str = "sheaf initramfs fixture\n";

/// A module every test boot's initramfs has at its root, where `--initrd-add` puts a file:
/// `hello_c.ko` under another file name (a test loads it with `insmod added-hello.ko`).
pub const ADDED_MODULE: &str = "added-hello.ko";

/// The shell's prompt, as host-driven trials wait for it.
pub const PROMPT: &str = "sheaf>";

/// The marker that starts every protocol message.
pub const MARKER: &str = "@@ktest-";

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
    let start = Instant::now();
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
    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list {
        println!("{}", runner.summary(start.elapsed()));
    }
    conclusion.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

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
