//! The builder's tests: the C examples built fresh with gcc load as the checked-in fixtures
//! do (so the fixtures and `include/sheaf/module.h` cannot drift apart unnoticed), and the C
//! header and the Rust `kmod` crate declare the same exports.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        repo_root()
            .join("kernel/crates/modload/tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// What the loader sees, minus addresses and sizes (which another gcc may change).
fn summary(data: &[u8], file: &str) -> String {
    let m = modload::Module::parse(data, file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut s = format!("name {} cleanup {}\n", m.name(), m.has_cleanup());
    for (k, v) in &m.info().entries {
        s += &format!("{k}={v}\n");
    }
    for p in m.params() {
        s += &format!("param {} {} {:o}\n", p.name, p.kind.name(), p.perm);
    }
    for x in m.exports() {
        s += &format!("export {} {}\n", x.name, x.gpl_only);
    }
    for r in modload::Region::ALL {
        s += &format!("{} {}\n", r.name(), m.layout().used(r) > 0);
    }
    s
}

#[test]
fn c_examples_built_with_gcc_match_the_fixtures() {
    let dir = std::env::temp_dir().join(format!("modbuild-test-{}", std::process::id()));
    let mut built = 0;
    for (file, src) in examples() {
        if let Source::C(_) = src {
            let out = build(&file, &src, &dir).unwrap();
            let fresh = std::fs::read(&out).unwrap();
            assert_eq!(
                summary(&fresh, &file),
                summary(&fixture(&file), &file),
                "{file}: run `cargo modbuild fixtures`"
            );
            built += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        built, 8,
        "hello_c, exporter, user, nodev, slabtest, rcuwq, static_cache, slabdemo"
    );
}

#[test]
fn every_example_has_a_fixture() {
    for (file, _) in examples() {
        assert!(!fixture(&file).is_empty(), "{file}");
    }
}

#[test]
fn a_module_the_loader_refuses_fails_the_build() {
    let dir = std::env::temp_dir().join(format!("modbuild-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("tls.c");
    // Thread-local storage: gcc builds it, the loader refuses it.
    std::fs::write(
        &src,
        "#include <sheaf/module.h>\n__thread int x;\nint init_module(void) { return x; }\n",
    )
    .unwrap();
    let err = build_c(&src, &dir.join("tls.ko")).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.contains("refused") && err.contains("thread-local"),
        "{err}"
    );
}

/// Function names declared at the top level of `include/sheaf/module.h`: declarations start
/// in column 0 with a `(` (continuation lines are indented) and end with `;`.
fn header_functions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("include/sheaf/module.h")).unwrap();
    let not_functions = ["typedef", "static", "_Static_assert", "__MODULE_INFO"];
    let mut out = BTreeSet::new();
    let mut decl = String::new();
    for line in text.lines() {
        let starts_decl = line.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && line.contains('(')
            && !not_functions.iter().any(|p| line.starts_with(p));
        if decl.is_empty() && !starts_decl {
            continue;
        }
        decl += line;
        if !decl.contains(';') {
            continue;
        }
        if let Some(paren) = decl.find('(') {
            let before = &decl[..paren];
            let start = before
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            out.insert(before[start..].to_string());
        }
        decl.clear();
    }
    out
}

/// Function names declared in `modules/kmod/src/ffi.rs`.
fn kmod_functions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("modules/kmod/src/ffi.rs")).unwrap();
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub fn "))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn the_c_header_and_kmod_declare_the_same_exports() {
    let want: BTreeSet<String> = [
        "printk",
        "kmalloc",
        "kzalloc",
        "kfree",
        "kmem_cache_create",
        "kmem_cache_alloc",
        "kmem_cache_free",
        "kmem_cache_destroy",
        "kmem_cache_setup",
        "kmem_cache_setup_usercopy",
        "kcalloc",
        "kmalloc_array",
        "krealloc",
        "ksize",
        "kmem_cache_create_usercopy",
        "kmem_cache_zalloc",
        "kmem_cache_shrink",
        "kmem_cache_alloc_bulk",
        "kmem_cache_free_bulk",
        "kmem_cache_size",
        "slab_errors",
        "try_module_get",
        "module_put",
        "call_rcu",
        "synchronize_rcu",
        "rcu_barrier",
        "rcu_read_lock",
        "rcu_read_unlock",
        "kvfree_call_rcu",
        "kvfree_rcu_barrier",
        "schedule_work",
        "queue_work",
        "queue_work_on",
        "queue_delayed_work",
        "flush_work",
        "cancel_work_sync",
        "cancel_delayed_work_sync",
        "alloc_workqueue",
        "destroy_workqueue",
        "kmem_free_q_init",
        "kmem_free_q_add",
        "kmem_free_up_q",
        "msleep",
        "smp_processor_id",
        "num_online_cpus",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(header_functions(), want, "include/sheaf/module.h");
    assert_eq!(kmod_functions(), want, "modules/kmod/src/ffi.rs");
}

#[test]
fn repo_root_holds_the_modules() {
    let root: PathBuf = repo_root();
    assert!(root.join("modules/Cargo.toml").is_file());
    assert!(root.join("include/sheaf/module.h").is_file());
}

#[test]
fn kmod_s_static_cache_storage_matches_the_generated_header() {
    let h =
        std::fs::read_to_string(repo_root().join("include/generated/kmem_cache_size.h")).unwrap();
    let value = |name: &str| -> String {
        h.lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} in kmem_cache_size.h"))
            .trim()
            .to_string()
    };
    let ffi = std::fs::read_to_string(repo_root().join("modules/kmod/src/ffi.rs")).unwrap();
    assert!(
        ffi.contains(&format!(
            "pub const KMEM_CACHE_SIZE: usize = {};",
            value("KMEM_CACHE_SIZE")
        )),
        "modules/kmod/src/ffi.rs KMEM_CACHE_SIZE"
    );
    let align = value("KMEM_CACHE_ALIGN");
    assert!(
        ffi.contains(&format!("pub const KMEM_CACHE_ALIGN: usize = {align};"))
            && ffi.contains(&format!("#[repr(C, align({align}))]")),
        "modules/kmod/src/ffi.rs KMEM_CACHE_ALIGN"
    );
}
