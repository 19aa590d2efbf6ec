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

/// The core's layers, bottom first: a module may import from its own layer and the ones below,
/// never from above. `docs/README.md` draws them. (A module is named by its path; a file's
/// `mod.rs` is its directory's module.)
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base: the address map, boot information, vectors, the clock",
        &[
            "memory::layout",
            "boot",
            "arch::vectors",
            "arch::trampoline",
            "time",
            "hook",
            "rand",
        ],
    ),
    // `sync` itself only declares and re-exports its children (each import is resolved to
    // the child that defines the item).
    ("CPUs and spin locks", &["cpu", "sync", "sync::spin"]),
    (
        "hardware and memory: tables, APICs, IPIs, frames and page tables",
        &[
            "arch::acpi",
            "arch::apic",
            "arch::gdt",
            "arch::ipi",
            "arch::step",
            "memory",
            "memory::page_alloc",
            "memory::numa",
            "memory::paging",
            "memory::stack",
            "memory::heap",
            "memory::vmap",
        ],
    ),
    (
        "tasks and the slab allocator: threads, sleeping locks, RCU, workqueues, kmalloc, \
         kobjects, the console (its input sleeps), backtraces (printed on the console; a \
         module's symbols through a hook the start-up sets)",
        &[
            "backtrace",
            "console",
            "sched",
            "sched::policy",
            "sched::switch",
            "sched::thread",
            "sync::waitqueue",
            "sync::mutex",
            "sync::completion",
            "sync::arc_list",
            "sync::rcu",
            "sync::rcu::barrier",
            "sync::rcu::gp",
            "sync::rcu::head",
            "workqueue",
            "memory::kmalloc",
            "memory::free_q",
            "memory::cache_alloc",
            "memory::static_cache",
            "memory::track",
            "kobject",
        ],
    ),
    (
        "modules: the loader's kernel side (memory, symbols, refcounts, /sys/module)",
        &["module"],
    ),
    (
        "top: start-up, interrupt and exception entry, SMP bring-up, panics, the test harness",
        &[
            "",
            "arch",
            "arch::interrupts",
            "arch::smp",
            "panic",
            "ktest",
            "selftest",
        ],
    ),
];

/// Upward imports that stay, each for the reason given (Linux has the same calls).
const ALLOWED_UPWARD: &[(&str, &str, &str)] = &[(
    "cpu",
    "sched",
    "`preempt_enable` reschedules when the count drops to 0 and a reschedule is pending \
     (Linux's preempt_enable -> preempt_schedule): the one call from the lock layer up into \
     the scheduler",
)];

/// The layer of module `module`: its own entry, or its closest listed ancestor's.
fn layer_of(module: &str) -> Option<usize> {
    let mut m = module;
    loop {
        if let Some(i) = LAYERS.iter().position(|(_, ms)| ms.contains(&m)) {
            return Some(i);
        }
        m = match m.rfind("::") {
            Some(at) => &m[..at],
            None if !m.is_empty() => "",
            None => return None,
        };
    }
}

/// The modules of the core and the items each `mod.rs` re-exports from its children
/// (`pub use spin::{SpinLock, ..}` in `sync/mod.rs` → `sync::SpinLock` is `sync::spin`'s).
fn core_modules() -> (BTreeSet<String>, Vec<(String, String)>) {
    let core_src = root().join("kernel/core/src");
    let mut modules = BTreeSet::new();
    let mut reexports = Vec::new();
    for file in rust_files(&core_src) {
        let module = module_path(&core_src, &file);
        let src = String::from_utf8(code_only(&fs::read_to_string(&file).expect("source")))
            .expect("utf-8");
        for (at, _) in src.match_indices("pub use ") {
            let stmt = &src[at + 8..at + src[at..].find(';').unwrap_or(0)];
            let Some((child, names)) = stmt.split_once("::") else {
                continue;
            };
            if child.starts_with("crate") || child.starts_with("super") {
                continue;
            }
            for name in names.split(|c: char| "{}, \n".contains(c)) {
                let name = name.split(" as ").next().unwrap_or("").trim();
                if !name.is_empty() && name != "self" {
                    let from = if module.is_empty() {
                        child.to_string()
                    } else {
                        format!("{module}::{child}")
                    };
                    let at = if module.is_empty() {
                        name.to_string()
                    } else {
                        format!("{module}::{name}")
                    };
                    reexports.push((at, from));
                }
            }
        }
        modules.insert(module);
    }
    (modules, reexports)
}

/// The module a path inside the core names: its longest prefix that is a module, through
/// re-exports.
fn resolve(path: &str, modules: &BTreeSet<String>, reexports: &[(String, String)]) -> String {
    let parts: Vec<&str> = path.split("::").collect();
    for n in (1..=parts.len()).rev() {
        let prefix = parts[..n].join("::");
        if let Some((_, from)) = reexports.iter().find(|(at, _)| *at == prefix) {
            return from.clone();
        }
        if modules.contains(&prefix) {
            return prefix;
        }
    }
    String::new()
}

/// `src` without the items only the on-target tests build: those after `#[crate::ktest]` or
/// `#[cfg(feature = "ktest")]`.
fn without_tests(code: &[u8]) -> Vec<u8> {
    let mut out = code.to_vec();
    let text = String::from_utf8_lossy(code).into_owned();
    for marker in ["#[crate::ktest", "#[cfg(feature = \"ktest\")]"] {
        for (at, _) in text.match_indices(marker) {
            let end = match block_end(code, at + marker.len()) {
                Some((_, end)) => end,
                // An item without a body (`mod x;`, `use ..;`): up to its semicolon.
                None => (at..code.len())
                    .find(|&i| code[i] == b';')
                    .map_or(at, |i| i + 1),
            };
            out[at..end].fill(b' ');
        }
    }
    out
}

/// Every import in the core's production code that points to a higher layer:
/// (from module, to module).
fn upward_imports() -> BTreeSet<(String, String)> {
    let core_src = root().join("kernel/core/src");
    let (modules, reexports) = core_modules();
    let mut upward = BTreeSet::new();
    for file in rust_files(&core_src) {
        let module = module_path(&core_src, &file);
        let code = without_tests(&code_only(&fs::read_to_string(&file).expect("source")));
        let text = String::from_utf8_lossy(&code).into_owned();
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p).to_string();
        let mut paths = Vec::new();
        for (prefix, base) in [("crate::", String::new()), ("super::", parent.clone())] {
            for (at, _) in text.match_indices(prefix) {
                let rest = &text[at + prefix.len()..];
                let join = |p: &str| {
                    if base.is_empty() {
                        p.to_string()
                    } else {
                        format!("{base}::{p}")
                    }
                };
                if let Some(group) = rest.strip_prefix('{') {
                    // `use super::{a, b::c}`: each name in the group.
                    let group = &group[..group.find('}').unwrap_or(0)];
                    for p in group.split(',') {
                        let p = p.trim().split(" as ").next().unwrap_or("");
                        if !p.is_empty() {
                            paths.push(join(p));
                        }
                    }
                } else {
                    let p: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let p = p.trim_end_matches(':');
                    match rest[p.len()..].trim_start_matches(':').strip_prefix('{') {
                        // `use crate::a::{b, c::d}`: each name of the group under `a`.
                        Some(group) => {
                            let group = &group[..group.find('}').unwrap_or(0)];
                            for q in group.split(',') {
                                let q = q.trim().split(" as ").next().unwrap_or("");
                                match q {
                                    "" => {}
                                    "self" => paths.push(join(p)),
                                    q => paths.push(join(&format!("{p}::{q}"))),
                                }
                            }
                        }
                        None => paths.push(join(p)),
                    }
                }
            }
        }
        let Some(from_layer) = layer_of(&module) else {
            panic!("kernel/core/src module `{module}` is in no layer: add it to LAYERS");
        };
        for path in paths {
            let to = resolve(&path, &modules, &reexports);
            if to == module || (!module.is_empty() && to.is_empty()) {
                continue;
            }
            let to_layer = layer_of(&to).expect("every module has a layer");
            if to_layer > from_layer {
                upward.insert((module.clone(), to));
            }
        }
    }
    upward
}

#[test]
fn the_cores_imports_run_down_its_layers() {
    let upward = upward_imports();
    let allowed: BTreeSet<(String, String)> = ALLOWED_UPWARD
        .iter()
        .map(|(f, t, _)| (f.to_string(), t.to_string()))
        .collect();
    let new: Vec<_> = upward.difference(&allowed).collect();
    let stale: Vec<_> = allowed.difference(&upward).collect();
    assert!(
        new.is_empty(),
        "imports from a lower layer of the core to a higher one (move the code to its layer, \
         or pass what it needs down): {new:#?}"
    );
    assert!(
        stale.is_empty(),
        "allowed upward imports that no longer happen: take them off ALLOWED_UPWARD: {stale:#?}"
    );
}
