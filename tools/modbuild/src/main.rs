//! `cargo modbuild` (`cargo run -p modbuild --`): builds Sheaf modules. See the crate docs of
//! `modbuild` (src/lib.rs) and docs/modules.md.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo modbuild COMMAND
  c FILE.c [-o OUT.ko]    build a C module (gcc, -I include)
  rust NAME [-o OUT.ko]   build the Rust module crate modules/NAME
  all [-o DIR]            build every example in modules/ (default: target/modules/ko)
  fixtures                rebuild the loader's test fixtures (kernel/crates/modload/tests/fixtures)
  info FILE.ko            what the loader sees in a module (or why it refuses it)";

fn out_arg(args: &[String], default: PathBuf) -> Result<PathBuf, String> {
    match args {
        [] => Ok(default),
        [o, path] if o == "-o" => Ok(PathBuf::from(path)),
        _ => Err(USAGE.into()),
    }
}

fn main_inner(args: &[String]) -> Result<(), String> {
    let root = modbuild::repo_root();
    match args {
        [cmd, src, rest @ ..] if cmd == "c" => {
            let src = PathBuf::from(src);
            let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("module");
            let out = out_arg(rest, PathBuf::from(format!("{stem}.ko")))?;
            modbuild::build_c(&src, &out)?;
            println!("{}", out.display());
        }
        [cmd, name, rest @ ..] if cmd == "rust" => {
            let out = out_arg(rest, PathBuf::from(format!("{name}.ko")))?;
            modbuild::build_rust(name, &out)?;
            println!("{}", out.display());
        }
        [cmd, rest @ ..] if cmd == "all" || (cmd == "fixtures" && rest.is_empty()) => {
            let dir = if cmd == "fixtures" {
                root.join("kernel/crates/modload/tests/fixtures")
            } else {
                out_arg(rest, root.join("target/modules/ko"))?
            };
            for (file, src) in modbuild::examples() {
                let out = modbuild::build(&file, &src, &dir)?;
                println!("{}", out.display());
            }
        }
        [cmd, file] if cmd == "info" => {
            let data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            print!("{}", modbuild::describe(&data, file)?);
        }
        _ => return Err(USAGE.into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match main_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modbuild: {e}");
            ExitCode::FAILURE
        }
    }
}
