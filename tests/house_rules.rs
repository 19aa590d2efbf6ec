//! House rules that the compiler does not check, checked on the source tree (host tests):
//!
//! - `docs/safety.md` names every public safe function of the kernel's core (`kernel/core/src`)
//!   that wraps `unsafe` code, and names nothing else: the soundness record cannot drift from
//!   the code (Asterinas keeps the same record for OSTD).
//! - The core's modules import one way, down the layers drawn in `docs/README.md`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("readable source tree") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The module path of a file of the core: `memory/vmap.rs` → `memory::vmap`,
/// `sync/rcu/mod.rs` → `sync::rcu`, `lib.rs` → ``.
fn module_path(core_src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(core_src).expect("inside the core");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// `src` with comments and the contents of string and char literals blanked (same length, so
/// offsets stay), enough to match braces and find the `unsafe` keyword in code.
fn code_only(src: &str) -> Vec<u8> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out[i] = b' ';
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                out[i] = b' ';
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out[i] = b' ';
                    i += 1;
                }
                out[i] = b' ';
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x' or '\n'); lifetimes ('a) have no closing quote soon after.
            let end = (i + 1..b.len()).find(|&j| b[j] == b'\'').unwrap_or(i);
            out[i + 1..end].fill(b' ');
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// The end of the block that opens at the first `{` at or after `from` (index past its `}`).
fn block_end(code: &[u8], from: usize) -> Option<(usize, usize)> {
    let open = (from..code.len()).find(|&i| code[i] == b'{' || code[i] == b';')?;
    if code[open] == b';' {
        return None; // a declaration without a body
    }
    let mut depth = 0;
    for (i, &c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((open, i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// The type an `impl` block is for, from the text after `impl` up to its `{`:
/// `<T: Linked<M>, M> ArcList<T, M>` → `ArcList`, `Drop for KernelMapping` → `KernelMapping`.
fn impl_type(header: &str) -> String {
    let mut rest = header.trim_start();
    if rest.starts_with('<') {
        // Skip the generic parameters, which may nest.
        let mut depth = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                rest = &rest[i + 1..];
                break;
            }
        }
    }
    let ty = rest.rsplit(" for ").next().unwrap_or(rest).trim_start();
    ty.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The public safe functions of the core whose bodies contain `unsafe`, as
/// `module::function` or `module::Type::method`.
fn safe_wrappers_of_unsafe() -> BTreeSet<String> {
    let core_src = root().join("kernel/core/src");
    let mut found = BTreeSet::new();
    for file in rust_files(&core_src) {
        let src = fs::read_to_string(&file).expect("readable source");
        let code = code_only(&src);
        let text = String::from_utf8_lossy(&code).into_owned();
        let module = module_path(&core_src, &file);
        // The `impl` blocks at the top level: (start, end, type name).
        let mut impls = Vec::new();
        for (at, _) in text.match_indices("\nimpl") {
            let header_end = text[at..].find('{').map_or(text.len(), |e| at + e);
            let ty = impl_type(&text[at + 5..header_end]);
            if let Some((_, end)) = block_end(&code, at + 1) {
                impls.push((at, end, ty));
            }
        }
        for (at, _) in text.match_indices("pub fn ") {
            let name: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let Some((open, end)) = block_end(&code, at) else {
                continue;
            };
            if !text[open..end].contains("unsafe") {
                continue;
            }
            let owner = impls
                .iter()
                .find(|(s, e, _)| *s < at && at < *e)
                .map(|(_, _, ty)| ty.clone());
            let mut path = module.clone();
            for part in owner.iter().chain(std::iter::once(&name)) {
                if !path.is_empty() {
                    path.push_str("::");
                }
                path.push_str(part);
            }
            found.insert(path);
        }
    }
    found
}

/// The functions `docs/safety.md` records: the first column of its "Functions" table, in
/// backticks.
fn recorded_in_safety_md() -> BTreeSet<String> {
    let doc = fs::read_to_string(root().join("docs/safety.md")).expect("docs/safety.md");
    doc.lines()
        .skip_while(|line| *line != "## Functions")
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn safety_md_records_every_safe_function_of_the_core_that_wraps_unsafe() {
    let found = safe_wrappers_of_unsafe();
    let recorded = recorded_in_safety_md();
    let missing: Vec<_> = found.difference(&recorded).collect();
    let stale: Vec<_> = recorded.difference(&found).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/safety.md is out of step with kernel/core/src.\n\
         Public safe functions that wrap `unsafe` and have no row (argue each sound there, or \
         make it `unsafe fn` or private): {missing:#?}\n\
         Rows naming no such function (gone, renamed, now unsafe or private): {stale:#?}"
    );
}
