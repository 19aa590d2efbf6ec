//! The module builder behind `cargo modbuild` (`tools/modbuild`).
//!
//! - C: one `.c` file, compiled by gcc with the flags of [`C_FLAGS`] and `-I include`, is the
//!   module (a relocatable object, nothing to link).
//! - Rust: a crate in `modules/NAME/` (its own workspace, `modules/Cargo.toml`) is built as a
//!   `staticlib` for `x86_64-unknown-none` with the kernel code model, the static relocation
//!   model and fat LTO, so the archive's first object holds the module and every part of
//!   `core` it uses. `ld -r -u init_module` then pulls that object, and the
//!   `compiler_builtins` objects it needs (`memset`, ...), into one relocatable object; the
//!   kernel's exports stay undefined for the loader to resolve. (`rustc --emit=obj` alone
//!   would leave `core`'s functions undefined.) `--strip-debug` keeps it small.
//!
//! Every module built is then parsed by the loader crate (`modload`), so a module that the
//! kernel would refuse fails the build with the loader's message.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// gcc flags for C modules (issue 19; `-Wall -Wextra` on top).
pub const C_FLAGS: &[&str] = &[
    "-c",
    "-O2",
    "-ffreestanding",
    "-fno-pic",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-fno-stack-protector",
    "-mgeneral-regs-only",
    "-Wall",
    "-Wextra",
];

/// The repository's root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown}: {status}"))
    }
}

/// Compiles one C file into a module at `out`.
pub fn build_c(src: &Path, out: &Path) -> Result<(), String> {
    let include = repo_root().join("include");
    let name = out.file_stem().and_then(|s| s.to_str()).unwrap_or("module");
    run(Command::new("gcc")
        .args(C_FLAGS)
        .arg(format!("-DKBUILD_MODNAME=\"{name}\""))
        .arg("-I")
        .arg(&include)
        .arg(src)
        .arg("-o")
        .arg(out))?;
    check(out)
}

/// Builds the Rust module crate `modules/NAME` into a module at `out`.
pub fn build_rust(name: &str, out: &Path) -> Result<(), String> {
    let root = repo_root();
    let modules = root.join("modules");
    let target_dir = root.join("target/modules");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&modules)
        .args(["build", "--release", "-p", name, "--target-dir"])
        .arg(&target_dir)
        // The modules' own flags come from modules/.cargo/config.toml; flags meant for the
        // caller's build would replace them.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    run(&mut cmd)?;
    let lib = target_dir.join(format!(
        "x86_64-unknown-none/release/lib{}.a",
        name.replace('-', "_")
    ));
    run(Command::new("ld")
        .args(["-r", "--strip-debug", "-u", "init_module", "-o"])
        .arg(out)
        .arg(&lib))?;
    check(out)
}

/// Runs the loader's checks on a built module.
pub fn check(path: &Path) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    modload::Module::parse(&data, file)
        .map(|_| ())
        .map_err(|e| format!("{}: refused: {e}", path.display()))
}

/// The example modules: C files in `modules/c/` and Rust crates in `modules/` (every
/// directory with a `Cargo.toml` but `kmod`), as `(module file name, source)`.
pub fn examples() -> Vec<(String, Source)> {
    let modules = repo_root().join("modules");
    let mut out = Vec::new();
    let mut c: Vec<PathBuf> = std::fs::read_dir(modules.join("c"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    c.sort();
    for p in c {
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        out.push((format!("{stem}.ko"), Source::C(p)));
    }
    let mut rust: Vec<String> = std::fs::read_dir(&modules)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "kmod")
        .collect();
    rust.sort();
    for n in rust {
        out.push((format!("{n}.ko"), Source::Rust(n)));
    }
    out
}

/// Where a module comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// One C file.
    C(PathBuf),
    /// A crate in `modules/`.
    Rust(String),
}

/// Builds one example into `dir`.
pub fn build(file: &str, src: &Source, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join(file);
    match src {
        Source::C(p) => build_c(p, &out)?,
        Source::Rust(n) => build_rust(n, &out)?,
    }
    Ok(out)
}

/// What `modbuild info` prints: what the loader sees in a module.
pub fn describe(data: &[u8], file: &str) -> Result<String, String> {
    use std::fmt::Write;
    let m = modload::Module::parse(data, file).map_err(|e| format!("refused: {e}"))?;
    let mut s = String::new();
    let _ = writeln!(s, "name:        {}", m.name());
    for (k, v) in &m.info().entries {
        let _ = writeln!(s, "{k:<12} {v}");
    }
    for p in m.params() {
        let _ = writeln!(
            s,
            "param:       {} ({}, perm {:o})",
            p.name,
            p.kind.name(),
            p.perm
        );
    }
    for x in m.exports() {
        let _ = writeln!(
            s,
            "export:      {}{}",
            x.name,
            if x.gpl_only { " (GPL-only)" } else { "" }
        );
    }
    let l = m.layout();
    for r in modload::Region::ALL {
        if l.used(r) > 0 {
            let _ = writeln!(
                s,
                "region:      {:<13} {:>6} bytes in {:>6}",
                r.name(),
                l.used(r),
                l.size(r)
            );
        }
    }
    let _ = writeln!(s, "got slots:   {}", l.got_symbols.len());
    let _ = writeln!(
        s,
        "coresize:    {}\ninitsize:    {}",
        l.core_size(),
        l.init_size()
    );
    let _ = writeln!(
        s,
        "unloadable:  {}",
        if m.has_cleanup() {
            "yes"
        } else {
            "no (no cleanup_module)"
        }
    );
    Ok(s)
}

#[cfg(test)]
mod tests;
