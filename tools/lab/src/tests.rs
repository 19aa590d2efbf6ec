//! Host tests of the region parser, the stubber, the handout scanner and the result parser.

use super::*;
use proptest::prelude::*;

const SOLVED: &str = "\
fn f() -> usize {
    // LAB(01) BEGIN
    // LAB-HINT: count them
    // LAB-STUB: None
    Some(3)
    // LAB(01) END
}
// LAB(02) BEGIN
fn other() {}
// LAB(02) END
";

#[test]
fn stub_replaces_the_region_by_its_stub_and_keeps_directives() {
    let out = stub(SOLVED, "01").unwrap();
    assert_eq!(
        out,
        "\
fn f() -> usize {
    // LAB(01) BEGIN
    // LAB-HINT: count them
    // LAB-STUB: None
    None
    // LAB(01) END
}
// LAB(02) BEGIN
fn other() {}
// LAB(02) END
"
    );
}

#[test]
fn a_region_without_stub_lines_becomes_a_todo() {
    let out = stub(SOLVED, "02").unwrap();
    assert!(out.contains("// LAB(02) BEGIN\ntodo!(\"lab 02: your code here\");\n// LAB(02) END\n"));
    assert!(out.contains("    Some(3)\n"), "lab 01's solution stays");
    assert!(!out.contains("fn other"));
}

#[test]
fn crlf_and_a_missing_final_newline_are_kept() {
    let text = "a\r\n// LAB(01) BEGIN\r\n// LAB-STUB: x\r\ny\r\n// LAB(01) END\r\nz";
    assert_eq!(
        stub(text, "01").unwrap(),
        "a\r\n// LAB(01) BEGIN\r\n// LAB-STUB: x\r\nx\r\n// LAB(01) END\r\nz"
    );
}

#[test]
fn regions_are_found_with_their_lines() {
    assert_eq!(
        regions(SOLVED).unwrap(),
        vec![
            Region {
                lab: "01".into(),
                begin: 2,
                end: 6
            },
            Region {
                lab: "02".into(),
                begin: 8,
                end: 10
            },
        ]
    );
}

#[test]
fn malformed_regions_are_errors() {
    for (text, line, what) in [
        ("// LAB(01) BEGIN\nx\n", 1, "never closed"),
        ("x\n// LAB(01) END\n", 2, "without a BEGIN"),
        (
            "// LAB(01) BEGIN\n// LAB(01) BEGIN\n// LAB(01) END\n",
            2,
            "do not nest",
        ),
        (
            "// LAB(01) BEGIN\n// LAB(02) END\n",
            2,
            "closes the LAB(01)",
        ),
    ] {
        let e = regions(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}");
        assert!(e.message.contains(what), "{text:?}: {e}");
        assert!(stub(text, "01").is_err());
    }
}

#[test]
fn marker_lookalikes_are_not_markers() {
    for line in [
        "// LAB(01) BEGINS",
        "// LAB() BEGIN",
        "x // LAB(01) BEGIN",
        "// LAB(a b) END",
    ] {
        assert_eq!(marker(line), None, "{line}");
    }
    assert_eq!(
        marker("   // LAB(sheaves) END  "),
        Some(Marker::End("sheaves".into()))
    );
}

#[test]
fn handout_paths_are_found_without_punctuation() {
    let md = "Read `kernel/crates/slab/src/layout.rs`, then kernel/core/src/x.rs. \
              (see docs/slab.md) and `cargo run -- --append slub_debug`; not http://a/b or src";
    assert_eq!(
        handout_paths(md),
        vec![
            "docs/slab.md",
            "kernel/core/src/x.rs",
            "kernel/crates/slab/src/layout.rs"
        ]
    );
}

#[test]
fn results_are_parsed_with_their_messages() {
    let tests = &[
        Graded {
            name: "a::one",
            points: 2,
            judge: Judge::Kernel,
        },
        Graded {
            name: "a::two",
            points: 3,
            judge: Judge::Kernel,
        },
        Graded {
            name: "a::three",
            points: 1,
            judge: Judge::Kernel,
        },
    ];
    let output = "\
running 2 tests
test a::one   ... ok
test a::two   ... FAILED
test a::three2 ... ok

failures:

---- a::two ----
test failed: your prediction X = 3 is wrong: the kernel measured 4
more
";
    let outcomes = parse_results(output, tests);
    assert_eq!(outcomes[0], Outcome::Passed);
    assert_eq!(
        outcomes[1],
        Outcome::Failed(
            "test failed: your prediction X = 3 is wrong: the kernel measured 4".into()
        )
    );
    assert!(matches!(&outcomes[2], Outcome::Failed(m) if m.starts_with("did not run")));
    let lab = Box::leak(Box::new(Lab { tests, ..LABS[0] }));
    let report = Report { lab, outcomes };
    assert_eq!(report.score(), 2);
    assert!(report.to_string().ends_with("Score: 2/6"), "{report}");
}

#[test]
fn a_host_failure_is_named_by_its_first_failing_test_and_message() {
    let output = "\
running 3 tests
test gp::tests::one ... ok
test gp::tests::two ... FAILED

failures:

---- gp::tests::two stdout ----

thread 'gp::tests::two' panicked at kernel/crates/rcu/src/gp/tests.rs:40:5:
the grace period ended while CPU 1 still owed a quiescent state
note: run with `RUST_BACKTRACE=1`
";
    assert_eq!(
        host_failure(output, "cargo test -p sheaf-rcu"),
        "gp::tests::two: the grace period ended while CPU 1 still owed a quiescent state"
    );
    assert_eq!(
        host_failure("running 1 test\n\n(killed after 60 s)\n", "cargo test -p x"),
        "`cargo test -p x` did not finish in time (a test hangs?)"
    );
    assert_eq!(
        host_failure("error[E0308]: mismatched types", "cargo test -p x"),
        "`cargo test -p x` failed (see the output above)"
    );
}

#[test]
fn the_table_is_consistent() {
    for (i, lab) in LABS.iter().enumerate() {
        assert!(
            LABS[..i].iter().all(|l| l.name != lab.name),
            "{} twice",
            lab.name
        );
        assert!(lab.max_points() > 0 && lab.time_limit_secs > 0);
        let on_target = || lab.tests.iter().filter(|t| t.judge == Judge::Kernel);
        assert!(on_target().all(|t| t.name.contains(lab.filter)));
        assert!(!lab.student_files.is_empty() && !lab.test_files.is_empty());
        // A lab's graded tests are never among the tests it is known to break.
        assert!(on_target().all(|t| lab.breaks.iter().all(|b| !t.name.contains(b))));
        // The names the report prints are distinct.
        for (j, t) in lab.tests.iter().enumerate() {
            assert!(
                lab.tests[..j].iter().all(|u| u.name != t.name),
                "{}",
                t.name
            );
        }
        // A host item runs a cargo command; an instruction count has a positive bound.
        for t in lab.tests {
            match t.judge {
                Judge::Kernel => {}
                Judge::Host { args, .. } => assert!(args.first() == Some(&"test"), "{}", t.name),
                Judge::Instructions { at_most, .. } => assert!(at_most > 0.0, "{}", t.name),
            }
        }
        // The student's files are never overwritten by the grader.
        assert!(
            lab.student_files
                .iter()
                .all(|f| !lab.test_files.contains(f))
        );
    }
}

#[test]
fn check_passes_on_this_repository() {
    if let Err(problems) = check(&repo_root()) {
        panic!("cargo lab check:\n{}", problems.join("\n"));
    }
}

/// Text made of plain lines and well-formed regions of labs "01" and "02".
fn marked_text() -> impl Strategy<Value = String> {
    let plain = "[a-z /(){};!]{0,12}";
    let region = (
        prop_oneof![Just("01"), Just("02")],
        "[ ]{0,4}",
        proptest::collection::vec(
            prop_oneof![
                plain.prop_map(|s| s),
                "[a-z ]{0,8}".prop_map(|s| format!("// LAB-STUB: {s}")),
                "[a-z ]{0,8}".prop_map(|s| format!("// LAB-HINT: {s}")),
            ],
            0..5,
        ),
    )
        .prop_map(|(lab, indent, body)| {
            let mut s = format!("{indent}// LAB({lab}) BEGIN\n");
            for l in body {
                s.push_str(&format!("{indent}{l}\n"));
            }
            s.push_str(&format!("{indent}// LAB({lab}) END\n"));
            s
        });
    proptest::collection::vec(
        prop_oneof![plain.prop_map(|s| format!("{s}\n")), region],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// The lines outside lab `lab`'s regions.
fn outside(text: &str, lab: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        match marker(line) {
            Some(Marker::Begin(l)) if l == lab => inside = true,
            Some(Marker::End(l)) if l == lab => inside = false,
            _ if !inside => out.push(line.to_owned()),
            _ => {}
        }
    }
    out
}

proptest! {
    #[test]
    fn stubbing_is_idempotent(text in marked_text()) {
        let once = stub(&text, "01").unwrap();
        prop_assert_eq!(stub(&once, "01").unwrap(), once);
    }

    #[test]
    fn text_outside_the_regions_is_unchanged(text in marked_text()) {
        let out = stub(&text, "01").unwrap();
        prop_assert_eq!(outside(&out, "01"), outside(&text, "01"));
        // The same regions, in the same order (their line numbers may move).
        let labs = |t: &str| regions(t).unwrap().into_iter().map(|r| r.lab).collect::<Vec<_>>();
        prop_assert_eq!(labs(&out), labs(&text));
    }

    #[test]
    fn a_lone_marker_makes_any_text_malformed(text in marked_text(), at in 0usize..100, end in any::<bool>()) {
        let lines: Vec<&str> = text.lines().collect();
        let at = at % (lines.len() + 1);
        let lone = if end { "// LAB(01) END" } else { "// LAB(01) BEGIN" };
        let mut broken: Vec<&str> = lines.clone();
        broken.insert(at, lone);
        prop_assert!(regions(&broken.join("\n")).is_err());
        prop_assert!(stub(&broken.join("\n"), "01").is_err());
    }
}

#[test]
fn a_student_tree_has_the_stubs_and_everything_else_unchanged() {
    let root = repo_root();
    let dir = std::env::temp_dir().join(format!("sheaf-lab-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for lab in LABS {
        let stubbed = new_tree(&root, lab, &dir).unwrap();
        for f in lab.student_files {
            assert!(
                stubbed.iter().any(|s| s == f),
                "lab {}: {f} not stubbed",
                lab.name
            );
        }
        for file in tracked_files(&root).unwrap() {
            let (Ok(ours), Ok(theirs)) = (
                std::fs::read(root.join(&file)),
                std::fs::read(dir.join(&file)),
            ) else {
                panic!("lab {}: {file} missing from the student tree", lab.name);
            };
            let text = String::from_utf8_lossy(&ours);
            if stubbed.contains(&file) {
                let theirs = String::from_utf8(theirs).unwrap();
                assert_eq!(theirs, stub(&text, lab.name).unwrap());
                assert_eq!(stub(&theirs, lab.name).unwrap(), theirs, "idempotent");
                assert_ne!(theirs, text);
            } else {
                assert_eq!(ours, theirs, "lab {}: {file} changed", lab.name);
            }
        }
        // The student tree is a repository of its own, with the same labs and regions.
        assert_eq!(
            tracked_files(&dir).unwrap().len(),
            tracked_files(&root)
                .unwrap()
                .iter()
                .filter(|f| root.join(f).is_file())
                .count()
        );
        if let Err(problems) = check(&dir) {
            panic!("check in the student tree:\n{}", problems.join("\n"));
        }
        assert!(
            new_tree(&root, lab, &dir).is_err(),
            "refuses a non-empty directory"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
