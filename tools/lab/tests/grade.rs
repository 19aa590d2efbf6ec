//! The labs end to end, for every lab of the table: the solution tree (this repository)
//! scores full marks, a fresh student tree builds and scores zero (or close to it), and the
//! student tree's other on-target tests all pass (the stubs break nothing outside the lab but
//! the tests its row lists in `breaks`).
//!
//! Boots QEMU and builds a student tree's test kernel (a target directory of its own, in
//! `target/lab-ci/`): ignored by default, run by `.ci/run` as
//! `cargo test -p lab --test grade -- --ignored`.

use std::path::Path;
use std::process::Command;

/// `cargo lab ARGS`: its success and its stdout.
fn lab(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(args)
        .output()
        .expect("the lab binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "$ cargo lab {}\n{stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout)
}

/// The `Score: N/M` line's numbers.
fn score(stdout: &str) -> (u32, u32) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Score: "))
        .expect("a score line");
    let (n, m) = line.split_once('/').expect("N/M");
    (n.trim().parse().expect("N"), m.trim().parse().expect("M"))
}

/// Starts the student trees' target directory `to` as a copy of the solution's `from` (once),
/// so that their build reuses the registry crates (the bootloader's stages above all) and
/// rebuilds only the workspace's own crates. Safe because cargo decides from modification
/// times: the student trees are written after the copy, so every one of their workspace
/// crates is newer than its copied artifacts and is rebuilt.
fn seed(from: &Path, to: &Path) {
    if to.exists() {
        return;
    }
    std::fs::create_dir_all(to).expect("the student trees' target directory");
    for dir in ["debug", "x86_64-unknown-none"] {
        if from.join(dir).is_dir() {
            let ok = Command::new("cp")
                .arg("-a")
                .arg(from.join(dir))
                .arg(to)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cp -a {}", from.join(dir).display());
        }
    }
}

#[test]
#[ignore = "builds a student tree's kernel and boots QEMU: run by .ci/run"]
fn the_solution_scores_full_marks_and_a_student_tree_zero() {
    let root = lab::repo_root();
    let scratch = root.join("target/lab-ci");
    let target = scratch.join("target");
    assert!(lab(&["check"]).0, "cargo lab check");
    seed(&root.join("target"), &target);
    for l in lab::LABS {
        let (full, out) = lab(&["grade", l.name]);
        assert!(full, "lab {}: the solution tree fails its grading", l.name);
        assert_eq!(
            score(&out),
            (l.max_points(), l.max_points()),
            "lab {}",
            l.name
        );

        let dir = scratch.join(l.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove the old student tree");
        }
        let dir_s = dir.to_str().expect("UTF-8 path");
        let (ok, out) = lab(&["new", l.name, dir_s]);
        assert!(ok, "lab {}: cargo lab new", l.name);
        for f in l.student_files {
            assert!(
                out.contains(&format!("stubbed {f}")),
                "lab {}: {f} not stubbed",
                l.name
            );
        }
        let (full, out) = lab(&[
            "grade",
            l.name,
            dir_s,
            "--target-dir",
            target.to_str().unwrap(),
        ]);
        assert!(!full, "lab {}: the student tree's grading succeeds", l.name);
        let (n, m) = score(&out);
        assert_eq!(m, l.max_points());
        assert!(
            n * 10 <= m,
            "lab {}: a fresh student tree scores {n}/{m}",
            l.name
        );
        assert!(
            !out.contains("does not build"),
            "lab {}: the student tree does not build",
            l.name
        );

        // Everything the lab does not touch works in the student tree: all but its graded
        // tests and the tests it is known to break (`Lab::breaks`).
        let mut args = vec!["test", "--test", "kernel", "--", "--skip", l.filter];
        for b in l.breaks {
            args.extend(["--skip", b]);
        }
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(&args)
            .current_dir(Path::new(&dir))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cargo test in the student tree");
        assert!(
            status.success(),
            "lab {}: the student tree's other tests fail",
            l.name
        );
    }
}
