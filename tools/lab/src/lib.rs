//! `cargo lab`: Sheaf's graded labs (issue #22).
//!
//! A lab's solution lives in the repository, between marker lines in the source:
//!
//! ```text
//! // LAB(01) BEGIN
//! // LAB-HINT: what to look at (kept in the student's tree)
//! // LAB-STUB: pub const X: Option<usize> = None;
//! pub const X: Option<usize> = Some(20);
//! // LAB(01) END
//! ```
//!
//! The student's tree ([`new_tree`]) keeps the markers and every `// LAB-` directive line of a
//! region, and replaces the rest of it by the region's stub: the text after `// LAB-STUB: ` of
//! each stub line, at that line's indentation, or `todo!("lab NAME: your code here");` for a
//! region without one. Stubbing is idempotent and leaves everything outside the lab's regions
//! unchanged. [`grade`] runs a lab's graded items (on-target tests, host tests and loom models,
//! the fast path's instruction count: [`Judge`]) against a tree with the grader's pristine test
//! files; [`check`] finds malformed regions, unknown labs and handouts naming missing files.
//! The labs themselves are the rows of [`labs::LABS`].

pub mod labs;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use labs::{Graded, Judge, LABS, Lab};

/// The start of every directive line inside a region (hints, stubs).
pub const DIRECTIVE: &str = "// LAB-";
/// The start of a stub line inside a region.
pub const STUB: &str = "// LAB-STUB:";

/// The repository this tool belongs to (the solution tree).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// A marker line: `// LAB(name) BEGIN` or `// LAB(name) END`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    Begin(String),
    End(String),
}

/// Parses a marker line (surrounding whitespace ignored), or `None` for any other line.
fn marker(line: &str) -> Option<Marker> {
    let rest = line.trim().strip_prefix("// LAB(")?;
    let (name, kind) = rest.split_once(')')?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    match kind.trim() {
        "BEGIN" => Some(Marker::Begin(name.to_owned())),
        "END" => Some(Marker::End(name.to_owned())),
        _ => None,
    }
}

/// A marked region: its lab and the 1-based line numbers of its markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The lab named in the markers.
    pub lab: String,
    /// Line of the `BEGIN` marker.
    pub begin: usize,
    /// Line of the `END` marker.
    pub end: usize,
}

/// A malformed region, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionError {
    /// Where.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The regions of `text`, in order; an error for an `END` without its `BEGIN`, a `BEGIN`
/// inside a region (regions do not nest), or a region left open.
pub fn regions(text: &str) -> Result<Vec<Region>, RegionError> {
    let mut found = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        match (marker(line), &open) {
            (Some(Marker::Begin(lab)), None) => open = Some((lab, line_no)),
            (Some(Marker::Begin(lab)), Some((outer, at))) => {
                return Err(RegionError {
                    line: line_no,
                    message: format!(
                        "LAB({lab}) BEGIN inside the LAB({outer}) region of line {at} \
                         (regions do not nest)"
                    ),
                });
            }
            (Some(Marker::End(lab)), Some((outer, at))) => {
                if lab != *outer {
                    return Err(RegionError {
                        line: line_no,
                        message: format!(
                            "LAB({lab}) END closes the LAB({outer}) region of line {at}"
                        ),
                    });
                }
                found.push(Region {
                    lab,
                    begin: *at,
                    end: line_no,
                });
                open = None;
            }
            (Some(Marker::End(lab)), None) => {
                return Err(RegionError {
                    line: line_no,
                    message: format!("LAB({lab}) END without a BEGIN"),
                });
            }
            (None, _) => {}
        }
    }
    match open {
        Some((lab, at)) => Err(RegionError {
            line: at,
            message: format!("LAB({lab}) BEGIN is never closed by LAB({lab}) END"),
        }),
        None => Ok(found),
    }
}

/// The line ending of `line` (a piece of `split_inclusive('\n')`): `"\r\n"`, `"\n"` or `""`.
fn ending(line: &str) -> &str {
    if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    }
}

/// `text` with the regions of lab `lab` stubbed (see the crate docs); other labs' regions and
/// everything outside regions are unchanged.
pub fn stub(text: &str, lab: &str) -> Result<String, RegionError> {
    regions(text)?;
    let mut out = String::with_capacity(text.len());
    // Inside a region of `lab`: its stub lines so far, and whether one was seen.
    let mut inside: Option<Vec<String>> = None;
    let mut last_ending = "\n";
    for line in text.split_inclusive('\n') {
        let eol = ending(line);
        if !eol.is_empty() {
            last_ending = eol;
        }
        let content = &line[..line.len() - eol.len()];
        match (marker(content), &mut inside) {
            (Some(Marker::Begin(name)), None) if name == lab => {
                out.push_str(line);
                inside = Some(Vec::new());
            }
            (Some(Marker::End(_)), Some(stubs)) => {
                let indent = &content[..content.len() - content.trim_start().len()];
                if stubs.is_empty() {
                    stubs.push(format!("{indent}todo!(\"lab {lab}: your code here\");"));
                }
                for s in stubs.iter() {
                    out.push_str(s);
                    out.push_str(last_ending);
                }
                out.push_str(line);
                inside = None;
            }
            (_, Some(stubs)) => {
                let trimmed = content.trim_start();
                if trimmed.starts_with(DIRECTIVE) {
                    out.push_str(line);
                    if let Some(code) = trimmed.strip_prefix(STUB) {
                        let indent = &content[..content.len() - trimmed.len()];
                        let code = code.strip_prefix(' ').unwrap_or(code);
                        stubs.push(format!("{indent}{code}"));
                    }
                }
            }
            (_, None) => out.push_str(line),
        }
    }
    Ok(out)
}

/// The files `cargo lab` looks for regions in (by extension).
pub fn is_marked_source(path: &str) -> bool {
    // The tool's own sources and tests spell markers in strings; they are not regions.
    !path.starts_with("tools/lab/") && [".rs", ".c", ".h"].iter().any(|ext| path.ends_with(ext))
}

/// The repository paths a handout names: words (in backquotes or not) that start with one
/// of the repository's top-level directories, without trailing punctuation.
pub fn handout_paths(markdown: &str) -> Vec<String> {
    const TOP: &[&str] = &[
        "boot/", "docs/", "drivers/", "include/", "kernel/", "modules/", "src/", "tests/", "tools/",
    ];
    let mut paths: Vec<String> = markdown
        .split(|c: char| c.is_whitespace() || "`()[]<>\"'".contains(c))
        .map(|w| w.trim_end_matches(['.', ',', ':', ';', '!', '?']))
        .filter(|w| TOP.iter().any(|top| w.starts_with(top)))
        .filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        })
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The tracked files of the repository at `root` (`git ls-files`), relative to it.
pub fn tracked_files(root: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("git ls-files: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git ls-files in {}: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Writes the student tree of `lab` to `dir` (which must not exist, or be empty): every
/// tracked file of `root` that exists, with the lab's regions stubbed, as the first commit of
/// a new git repository. Returns the files that were stubbed.
pub fn new_tree(root: &Path, lab: &Lab, dir: &Path) -> Result<Vec<String>, String> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    let mut stubbed = Vec::new();
    for file in tracked_files(root)? {
        let src = root.join(&file);
        // A tracked file deleted in the working tree is not part of the tree.
        if !src.is_file() {
            continue;
        }
        let dst = dir.join(&file);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let data = std::fs::read(&src).map_err(|e| format!("{file}: {e}"))?;
        let data = match (is_marked_source(&file), String::from_utf8(data)) {
            (true, Ok(text)) => {
                let out = stub(&text, lab.name).map_err(|e| format!("{file}: {e}"))?;
                if out != text {
                    stubbed.push(file.clone());
                }
                out.into_bytes()
            }
            (_, Ok(text)) => text.into_bytes(),
            (_, Err(e)) => e.into_bytes(),
        };
        std::fs::write(&dst, data).map_err(|e| format!("{}: {e}", dst.display()))?;
        let mode = std::fs::metadata(&src)
            .map_err(|e| format!("{file}: {e}"))?
            .permissions();
        std::fs::set_permissions(&dst, mode).map_err(|e| format!("{}: {e}", dst.display()))?;
    }
    // A repository of its own, with the starting point committed: the student can diff their
    // work, and `cargo lab check` and the tool's tests (which list files with git) work there.
    let message = format!("lab {}: starting point", lab.name);
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=cargo lab",
            "-c",
            "user.email=lab@sheaf.invalid",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            &message,
        ],
    ] {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("git {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "git {} in {}: {}",
                args.join(" "),
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(stubbed)
}

/// What [`check`] found wrong, one line each.
pub fn check(root: &Path) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let files = tracked_files(root).map_err(|e| vec![e])?;
    let mut regions_of: std::collections::BTreeMap<&str, usize> = Default::default();
    for file in files.iter().filter(|f| is_marked_source(f)) {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        match regions(&text) {
            Err(e) => problems.push(format!("{file}: {e}")),
            Ok(found) => {
                for r in found {
                    match labs::find(&r.lab) {
                        Some(lab) => *regions_of.entry(lab.name).or_default() += 1,
                        None => problems.push(format!(
                            "{file}: line {}: LAB({}) is no lab of tools/lab/src/labs.rs",
                            r.begin, r.lab
                        )),
                    }
                }
            }
        }
    }
    for lab in LABS {
        if !regions_of.contains_key(lab.name) {
            problems.push(format!(
                "lab {}: no LAB({}) region anywhere",
                lab.name, lab.name
            ));
        }
        let files = lab
            .student_files
            .iter()
            .chain(lab.test_files)
            .chain([&lab.handout]);
        for f in files {
            if !root.join(f).is_file() {
                problems.push(format!("lab {}: {f} does not exist", lab.name));
            }
        }
        if let Ok(md) = std::fs::read_to_string(root.join(lab.handout)) {
            for p in handout_paths(&md) {
                if !root.join(&p).exists() {
                    problems.push(format!("{}: names {p}, which does not exist", lab.handout));
                }
            }
        }
        let tests: String = lab
            .test_files
            .iter()
            .filter_map(|f| std::fs::read_to_string(root.join(f)).ok())
            .collect();
        for t in lab.tests.iter().filter(|t| t.judge == Judge::Kernel) {
            if let Some(b) = lab.breaks.iter().find(|b| t.name.contains(*b)) {
                problems.push(format!(
                    "lab {}: graded test {} is skipped as broken ({b:?} in breaks)",
                    lab.name, t.name
                ));
            }
            let short = t.name.rsplit("::").next().unwrap_or(t.name);
            if !t.name.contains(lab.filter) || !tests.contains(&format!("fn {short}(")) {
                problems.push(format!(
                    "lab {}: graded test {} is not in its test files or filter",
                    lab.name, t.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Puts the pristine copies (from `root`) of `lab`'s test files and the runner's files into
/// `dir`, where they differ. Returns the files that were replaced.
pub fn restore_test_files(root: &Path, lab: &Lab, dir: &Path) -> Result<Vec<String>, String> {
    let mut restored = Vec::new();
    for file in lab.test_files.iter().chain(labs::RUNNER_FILES) {
        let pristine = std::fs::read(root.join(file)).map_err(|e| format!("{file}: {e}"))?;
        let dst = dir.join(file);
        if std::fs::read(&dst).ok().as_ref() != Some(&pristine) {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&dst, pristine).map_err(|e| format!("{}: {e}", dst.display()))?;
            restored.push((*file).to_owned());
        }
    }
    Ok(restored)
}

/// The outcome of one graded test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed, with the first line of its failure message.
    Failed(String),
}

/// The outcomes libtest printed for `tests` (`test NAME ... ok` / `FAILED`, the names padded
/// to one width), each failure with
/// the first line of its message; a test libtest did not report is a failure.
pub fn parse_results(output: &str, tests: &[Graded]) -> Vec<Outcome> {
    tests
        .iter()
        .map(|t| {
            // `test NAME ... ok`, the name padded to the longest one's width.
            let status = output.lines().find_map(|l| {
                let (name, status) = l.trim_end().strip_prefix("test ")?.split_once(" ... ")?;
                (name.trim_end() == t.name).then_some(status.trim())
            });
            match status {
                Some("ok") => Outcome::Passed,
                Some(_) => {
                    let header = format!("---- {} ----", t.name);
                    let message = output
                        .lines()
                        .skip_while(|l| l.trim() != header)
                        .skip(1)
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .unwrap_or("failed (no message)");
                    Outcome::Failed(message.to_owned())
                }
                None => Outcome::Failed("did not run (see the output above)".to_owned()),
            }
        })
        .collect()
}

/// A graded run: the outcome of each of the lab's tests, in the table's order.
#[derive(Debug, Clone)]
pub struct Report {
    /// The lab.
    pub lab: &'static Lab,
    /// One outcome per graded test.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Points scored.
    pub fn score(&self) -> u32 {
        self.lab
            .tests
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, o)| **o == Outcome::Passed)
            .map(|(t, _)| t.points)
            .sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (t, o) in self.lab.tests.iter().zip(&self.outcomes) {
            match o {
                Outcome::Passed => writeln!(f, "[{}/{}] {}: ok", t.points, t.points, t.name)?,
                Outcome::Failed(why) => {
                    writeln!(f, "[0/{}] {}: FAILED\n      {why}", t.points, t.name)?
                }
            }
        }
        write!(f, "Score: {}/{}", self.score(), self.lab.max_points())
    }
}

/// Runs `cmd` with its output captured, killing it after `limit`. Returns whether it
/// succeeded and its stdout followed by its stderr.
fn run_limited(mut cmd: Command, limit: Duration) -> Result<(bool, String), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut text = out.join().unwrap_or_default();
    text.push_str(&err.join().unwrap_or_default());
    if status.is_none() {
        text.push_str(&format!("\n(killed after {} s)\n", limit.as_secs()));
    }
    Ok((status.is_some_and(|s| s.success()), text))
}

/// Grades `lab` in the tree `dir`: restores the pristine test files from `root`, then judges
/// each graded item ([`Judge`]): the on-target tests together (the test kernel built with
/// `cargo test --test kernel --no-run`, then run with the lab's per-test time limit), host
/// tests and the instruction count one by one. Builds use `target_dir` if given. `log`
/// receives progress lines. What does not build scores 0 (the build's output goes to `log`).
pub fn grade(
    root: &Path,
    lab: &'static Lab,
    dir: &Path,
    target_dir: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> Result<Report, String> {
    for f in restore_test_files(root, lab, dir)? {
        log(&format!(
            "restored the grader's copy of {f} (edits to it are not graded)"
        ));
    }
    let grader = Grader {
        lab,
        dir,
        target_dir,
    };
    let mut outcomes = vec![None; lab.tests.len()];
    let kernel: Vec<Graded> = lab
        .tests
        .iter()
        .filter(|t| t.judge == Judge::Kernel)
        .copied()
        .collect();
    if !kernel.is_empty() {
        let mut judged = grader.kernel_tests(&kernel, log)?.into_iter();
        for (t, o) in lab.tests.iter().zip(&mut outcomes) {
            if t.judge == Judge::Kernel {
                *o = judged.next();
            }
        }
    }
    for (t, o) in lab.tests.iter().zip(&mut outcomes) {
        match t.judge {
            Judge::Kernel => {}
            Judge::Host { args, loom } => *o = Some(grader.host(t, args, loom, log)?),
            Judge::Instructions { mode, at_most } => {
                *o = Some(grader.instructions(mode, at_most, log)?)
            }
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.expect("every item judged"))
        .collect();
    Ok(Report { lab, outcomes })
}

/// The tree being graded, and how to run cargo in it.
struct Grader<'a> {
    lab: &'static Lab,
    dir: &'a Path,
    target_dir: Option<&'a Path>,
}

impl Grader<'_> {
    /// `cargo ARGS` in the tree, in the grading target directory.
    fn cargo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(args).current_dir(self.dir);
        if let Some(t) = self.target_dir {
            cmd.env("CARGO_TARGET_DIR", t);
        }
        cmd
    }

    /// The target directory the tree's builds use.
    fn target(&self) -> PathBuf {
        self.target_dir
            .map_or_else(|| self.dir.join("target"), Path::to_path_buf)
    }

    /// The on-target tests `tests`, run together: one outcome each, in order.
    fn kernel_tests(
        &self,
        tests: &[Graded],
        log: &mut dyn FnMut(&str),
    ) -> Result<Vec<Outcome>, String> {
        log(&format!(
            "building the test kernel of {}",
            self.dir.display()
        ));
        let (built, output) = run_limited(
            self.cargo(&["test", "--test", "kernel", "--no-run"]),
            Duration::from_secs(3600),
        )?;
        if !built {
            log(&output);
            let why = "the tree does not build (see the output above)";
            return Ok(tests.iter().map(|_| Outcome::Failed(why.into())).collect());
        }
        log(&format!(
            "running the on-target tests of lab {}",
            self.lab.name
        ));
        let mut run = self.cargo(&["test", "--test", "kernel", "--", self.lab.filter]);
        run.env("SHEAF_TEST_TIMEOUT", self.lab.time_limit_secs.to_string());
        let limit = Duration::from_secs(self.lab.time_limit_secs * (tests.len() as u64 + 2));
        let (_, output) = run_limited(run, limit)?;
        let outcomes = parse_results(&output, tests);
        if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Failed(m) if m.starts_with("did not run")))
        {
            log(&output);
        }
        Ok(outcomes)
    }

    /// A [`Judge::Host`] item: `cargo ARGS --no-run`, then `cargo ARGS` within the lab's time
    /// limit.
    fn host(
        &self,
        item: &Graded,
        args: &[&str],
        loom: bool,
        log: &mut dyn FnMut(&str),
    ) -> Result<Outcome, String> {
        let command = |extra: &[&str]| {
            let mut cmd = self.cargo(&[args, extra].concat());
            if loom {
                cmd.env("RUSTFLAGS", "--cfg loom")
                    .env("CARGO_TARGET_DIR", self.target().join("loom"));
            }
            cmd
        };
        let shown = format!(
            "{}cargo {}",
            if loom {
                "RUSTFLAGS=\"--cfg loom\" "
            } else {
                ""
            },
            args.join(" ")
        );
        log(&format!("building {} ({shown})", item.name));
        let (built, output) = run_limited(command(&["--no-run"]), Duration::from_secs(3600))?;
        if !built {
            log(&output);
            return Ok(Outcome::Failed(format!(
                "`{shown}` does not build (see the output above)"
            )));
        }
        log(&format!("running {shown}"));
        let limit = Duration::from_secs(self.lab.time_limit_secs);
        let (passed, output) = run_limited(command(&[]), limit)?;
        if passed {
            return Ok(Outcome::Passed);
        }
        log(&output);
        Ok(Outcome::Failed(host_failure(&output, &shown)))
    }

    /// A [`Judge::Instructions`] item: runs the callgrind script and compares its figure.
    fn instructions(
        &self,
        mode: &str,
        at_most: f64,
        log: &mut dyn FnMut(&str),
    ) -> Result<Outcome, String> {
        const SCRIPT: &str = "kernel/crates/slab/examples/count_fastpath.sh";
        log(&format!("counting instructions: sh {SCRIPT} {mode}"));
        let mut cmd = Command::new("sh");
        cmd.args([SCRIPT, mode]).current_dir(self.dir);
        if let Some(t) = self.target_dir {
            cmd.env("CARGO_TARGET_DIR", t);
        }
        let (ran, output) = run_limited(cmd, Duration::from_secs(1800))?;
        let figure = output
            .lines()
            .find_map(|l| l.strip_prefix("instructions per alloc+free pair: "))
            .and_then(|n| n.trim().parse::<f64>().ok());
        let Some(figure) = figure.filter(|_| ran) else {
            log(&output);
            return Ok(Outcome::Failed(format!(
                "`sh {SCRIPT} {mode}` printed no count (is valgrind installed? see the output above)"
            )));
        };
        log(&format!(
            "fast path ({mode}): {figure:.2} instructions per alloc+free pair (bound {at_most})"
        ));
        if figure <= at_most {
            Ok(Outcome::Passed)
        } else {
            Ok(Outcome::Failed(format!(
                "an allocation and a free took {figure:.2} instructions (callgrind), more than \
                 the bound of {at_most}: most of them do not stay on the main sheaf \
                 (`sheaves CACHE` and the `alloc_fastpath`/`free_fastpath` statistics show how many do)"
            )))
        }
    }
}

/// The first failure of a host test run, in a line: the first failing test's panic message
/// (`---- NAME stdout ----` then `thread '..' panicked at FILE:LINE:` then the message), or
/// why the run ended.
pub fn host_failure(output: &str, shown: &str) -> String {
    let mut lines = output.lines().map(str::trim);
    while let Some(l) = lines.next() {
        if let Some(name) = l
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            let mut message = lines
                .by_ref()
                .skip_while(|l| !l.contains("panicked at"))
                .skip(1)
                .filter(|l| !l.is_empty());
            let message = message.next().unwrap_or("failed (no message)");
            return format!("{name}: {message}");
        }
    }
    if output.contains("(killed after ") {
        return format!("`{shown}` did not finish in time (a test hangs?)");
    }
    format!("`{shown}` failed (see the output above)")
}

#[cfg(test)]
mod tests;
