//! What a boot's serial output says about its tests: how the boot ended ([`BootEnd`]), the
//! log itself ([`BootLog`]) and failure messages built from it, and the decisions for a batch
//! of tests ([`interpret_batch`], [`run_batch`]) or a test that expects a fault
//! ([`interpret_fault_test`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::protocol::{Event, parse_line};
use super::{MARKER, TIMEOUT_VAR};
use crate::Error;
use crate::decode::{Decoder, TraceState, decode_line};
use crate::qemu::KernelExit;

/// How many lines of serial output a failure message shows.
const LOG_TAIL_LINES: usize = 60;

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
    /// The kernel ELF, to show the backtraces of failure messages with `file:line`
    /// ([`crate::decode`]); `None` shows them as the kernel printed them.
    pub kernel: Option<PathBuf>,
}

impl BootLog {
    /// Where the report on line `index` ends: the lines after it up to the next protocol line
    /// continue it (a multi-line panic message, e.g. `left: ...`/`right: ...`). Returns the
    /// index just past the report.
    pub(super) fn report_end(&self, index: usize) -> usize {
        self.output
            .lines()
            .enumerate()
            .skip(index + 1)
            .find(|(_, line)| line.contains(MARKER))
            .map_or_else(|| self.output.lines().count(), |(next, _)| next)
    }

    /// A failure message: `reason`, then the last lines of the serial output up to line
    /// `upto` (exclusive; `None` for all of it), and QEMU's messages if there are any.
    pub(super) fn failure(&self, reason: &str, upto: Option<usize>) -> String {
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
        let decoder = self.kernel.as_deref().map(Decoder::shared);
        let mut trace = TraceState::default();
        for line in shown {
            message.push_str(&decode_line(decoder.as_deref(), &mut trace, line));
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
        (true, BootEnd::Exited(KernelExit::Success)) => {
            exception_trace_names(&boot.output, name, fault).map_err(|e| boot.failure(&e, None))
        }
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

/// Checks the backtrace the kernel printed for a fault test's exception (or, for
/// `fault = "panic"`, its panic): after the `EXCEPTION:` (`KERNEL PANIC:`) line, a
/// `Call Trace:` with a frame in the test function (the faulting instruction, or a caller of
/// it: the test's name is the last part of the function's path, or a function nested in it),
/// and none of the exception handler's own frames.
fn exception_trace_names(output: &str, name: &str, fault: &str) -> Result<(), String> {
    let test_fn = name.rsplit("::").next().unwrap_or(name);
    let start = if fault == "panic" {
        "KERNEL PANIC:"
    } else {
        "EXCEPTION:"
    };
    // Lines, not `\n`: the serial console ends them with `\r\n`.
    let mut lines = output
        .lines()
        .skip_while(|l| !l.starts_with(start))
        .skip_while(|l| l.trim_end() != "Call Trace:");
    if lines.next().is_none() {
        return Err(format!("no `Call Trace:` after the `{start}` line"));
    }
    let frames: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).collect();
    let trace = frames.join("\n");
    if !frames
        .iter()
        .any(|f| f.contains(&format!("::{test_fn}+0x")) || f.contains(&format!("::{test_fn}::")))
    {
        return Err(format!(
            "the exception's backtrace does not name the test function `{test_fn}`:\n{trace}"
        ));
    }
    if let Some(f) = frames
        .iter()
        .find(|f| f.contains("arch::interrupts::fatal+") || f.contains("::exception_trace+"))
    {
        return Err(format!(
            "the exception's backtrace shows the handler's own frame `{}`:\n{trace}",
            f.trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktest::DEFAULT_TIMEOUT;

    #[test]
    fn a_fault_test_s_trace_must_name_the_test_and_not_the_handler() {
        let good = "EXCEPTION: page fault at address 0x0\nCall Trace:\n kcore::arch::interrupts::pf_test+0x12/0x3e\n kcore::ktest::run_request+0x5/0xa\n@@ktest-pass x\n";
        assert_eq!(
            exception_trace_names(good, "arch::interrupts::pf_test", "page_fault"),
            Ok(())
        );
        let nested = good.replace("pf_test+0x12", "pf_test::recurse+0x12");
        assert_eq!(
            exception_trace_names(&nested, "arch::interrupts::pf_test", "page_fault"),
            Ok(())
        );
        assert!(exception_trace_names(good, "arch::interrupts::other_test", "page_fault").is_err());
        let handler = good.replace(
            "Call Trace:\n",
            "Call Trace:\n kcore::arch::interrupts::fatal+0x13f/0x17d\n",
        );
        assert!(
            exception_trace_names(&handler, "arch::interrupts::pf_test", "page_fault").is_err()
        );
        assert!(
            exception_trace_names("EXCEPTION: x\n", "a::b", "page_fault").is_err(),
            "no trace"
        );
        let panic =
            "\nKERNEL PANIC: panicked at x.rs:1:1:\nboom\nCall Trace:\n kcore::a::p_test+0x5/0x9\n";
        assert_eq!(exception_trace_names(panic, "a::p_test", "panic"), Ok(()));
        assert!(exception_trace_names(panic, "a::p_test", "page_fault").is_err());
        let serial = good.replace('\n', "\r\n");
        assert_eq!(
            exception_trace_names(&serial, "arch::interrupts::pf_test", "page_fault"),
            Ok(())
        );
    }
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
            kernel: None,
        }
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
        let pass = "@@ktest-start f\nEXCEPTION: page fault\nCall Trace:\n kcore::t::f+0x1/0x2\n\
                    ktest: caught the expected page fault\n@@ktest-pass f\n";
        assert_eq!(
            interpret_fault_test("f", "page_fault", &log(pass, exited(33))),
            Ok(())
        );
        let untraced = "@@ktest-start f\nktest: caught the expected page fault\n@@ktest-pass f\n";
        let message =
            interpret_fault_test("f", "page_fault", &log(untraced, exited(33))).unwrap_err();
        assert!(message.contains("no `Call Trace:`"), "{message}");
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
    fn failure_messages_show_backtraces_with_file_and_line() {
        // A frame of this test binary, as the first of an exception's trace.
        let (frame, _) = crate::decode::tests::marker_frame();
        let output = format!("EXCEPTION: page fault\r\nCall Trace:\r\n{frame}\r\n");
        let mut boot = log(&output, exited(35));
        let plain = boot.failure("boom", None);
        assert!(plain.contains(&format!("{frame}\n")), "{plain}");
        boot.kernel = Some(std::env::current_exe().expect("test binary"));
        let decoded = boot.failure("boom", None);
        assert!(
            decoded.contains(&format!("{frame} (")) && decoded.contains(" boot/src/decode.rs:"),
            "{decoded}"
        );
        assert_eq!(boot.output, output, "the log itself stays as it was");
    }
}
