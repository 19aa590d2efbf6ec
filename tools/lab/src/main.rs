//! `cargo lab` (`cargo run -q -p lab --`): Sheaf's graded labs. See the crate docs of `lab`
//! (src/lib.rs), the table in src/labs.rs and docs/labs/.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo lab COMMAND
  list                                  the labs and what each covers
  new LAB DIR                           write the student tree of LAB to DIR
  grade LAB [DIR] [--target-dir T]      run LAB's graded tests in DIR (default: this tree)
  check                                 check the region markers, the lab table and the handouts";

fn lab(name: &str) -> Result<&'static lab::Lab, String> {
    lab::labs::find(name).ok_or_else(|| format!("no lab {name:?} (`cargo lab list`)"))
}

fn main_inner(args: &[String]) -> Result<bool, String> {
    let root = lab::repo_root();
    match args {
        [cmd] if cmd == "list" => {
            for l in lab::LABS {
                println!("{}  {} ({} points)", l.name, l.title, l.max_points());
                println!("    covers:   {}", l.covers);
                println!("    handout:  {}", l.handout);
                println!("    you edit: {}", l.student_files.join(", "));
            }
        }
        [cmd, name, dir] if cmd == "new" => {
            let l = lab(name)?;
            let stubbed = lab::new_tree(&root, l, Path::new(dir))?;
            for f in &stubbed {
                println!("stubbed {f}");
            }
            println!(
                "lab {} written to {dir}: read {}, then `cargo lab grade {}` there",
                l.name, l.handout, l.name
            );
        }
        [cmd, name, rest @ ..] if cmd == "grade" => {
            let l = lab(name)?;
            let (dir, target) = match rest {
                [] => (root.clone(), None),
                [d] => (PathBuf::from(d), None),
                [d, t, target] if t == "--target-dir" => {
                    (PathBuf::from(d), Some(PathBuf::from(target)))
                }
                [t, target] if t == "--target-dir" => (root.clone(), Some(PathBuf::from(target))),
                _ => return Err(USAGE.into()),
            };
            let dir = dir
                .canonicalize()
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            let report = lab::grade(&root, l, &dir, target.as_deref(), &mut |line| {
                eprintln!("{line}")
            })?;
            println!("lab {}: {}\n{report}", l.name, l.title);
            return Ok(report.score() == l.max_points());
        }
        [cmd] if cmd == "check" => match lab::check(&root) {
            Ok(()) => println!("labs: {} checked, no problem", lab::LABS.len()),
            Err(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                return Ok(false);
            }
        },
        _ => return Err(USAGE.into()),
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match main_inner(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lab: {e}");
            ExitCode::FAILURE
        }
    }
}
