//! `/sys/kernel/slab` read the way Linux's `tools/mm/slabinfo` reads it, checked against
//! `/proc/slabinfo` (moved out of `tests.rs`, which it made too long).

use super::tests::{link, setup};
use super::*;
use crate::base::Gfp;
use crate::flags::KmemCacheArgs;
use crate::flags::SlabFlags;
use crate::host::HostPlatform;
use crate::registry::SlabOptions;

/// One file as `tools/mm/slabinfo` reads it: the leading number (`get_obj`), and the
/// breakdown after it (`N0=3` per node, `C1=5` per CPU), which must add up to it.
pub(super) fn tool_number(slab: &SlabAllocator<HostPlatform>, path: &str) -> u64 {
    let text = read(slab, path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut words = text.split_whitespace();
    let total: u64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{path}: {text:?} is not a number"));
    let parts: Vec<u64> = words
        .map(|w| {
            let (key, value) = w.split_once('=').unwrap_or_else(|| panic!("{path}: {w}"));
            assert!(key.starts_with('N') || key.starts_with('C'), "{path}: {w}");
            assert!(value != "0", "{path}: zero parts are left out: {w}");
            value.parse().unwrap_or_else(|_| panic!("{path}: {w}"))
        })
        .collect();
    if !parts.is_empty() {
        assert_eq!(parts.iter().sum::<u64>(), total, "{path}: {text:?}");
    }
    total
}

/// A row of `/proc/slabinfo` (version 2.1).
struct Row {
    name: String,
    active_objs: u64,
    num_objs: u64,
    objsize: u64,
    objperslab: u64,
    pagesperslab: u64,
    active_slabs: u64,
    num_slabs: u64,
}

fn proc_slabinfo(slab: &SlabAllocator<HostPlatform>) -> Vec<Row> {
    let mut text = String::new();
    slab.slabinfo_show(&mut text).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("slabinfo - version: 2.1"));
    assert!(lines.next().unwrap().starts_with("# name"));
    lines
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 16, "{l}");
            assert_eq!(
                (w[6], w[7], w[11], w[12]),
                (":", "tunables", ":", "slabdata")
            );
            let n = |i: usize| -> u64 { w[i].parse().unwrap() };
            Row {
                name: String::from(w[0]),
                active_objs: n(1),
                num_objs: n(2),
                objsize: n(3),
                objperslab: n(4),
                pagesperslab: n(5),
                active_slabs: n(13),
                num_slabs: n(14),
            }
        })
        .collect()
}

/// Linux's statistics files for SLUB with sheaves (`enum stat_item`'s sysfs names).
const LINUX_STATS: [&str; 26] = [
    "alloc_fastpath",
    "alloc_slowpath",
    "free_fastpath",
    "free_slowpath",
    "free_rcu_sheaf",
    "free_rcu_sheaf_fail",
    "free_add_partial",
    "free_remove_partial",
    "alloc_slab",
    "alloc_node_mismatch",
    "free_slab",
    "order_fallback",
    "cmpxchg_double_fail",
    "sheaf_flush",
    "sheaf_refill",
    "sheaf_alloc",
    "sheaf_free",
    "barn_get",
    "barn_get_fail",
    "barn_put",
    "barn_put_fail",
    "sheaf_prefill_fast",
    "sheaf_prefill_slow",
    "sheaf_prefill_oversize",
    "sheaf_return_fast",
    "sheaf_return_slow",
];

/// `/sys/kernel/slab` read the way `tools/mm/slabinfo` reads it, with built-in static caches
/// that are aliases (`task_struct` over kmalloc-256, `work_struct` over kmalloc-192), a static
/// primary, a merged dynamic cache and an unmergeable one: every directory is a distinct cache
/// and one row of `/proc/slabinfo` (no slab counted twice), static aliases are links counted
/// in their primary's `aliases`, every file parses and its breakdown adds up, and the totals
/// agree with `/proc/slabinfo`.
#[test]
fn slabinfo_tool_reads_the_tree_as_proc_slabinfo_counts_it() {
    use crate::registry::KmemCacheStatic;
    let (_cpu, slab) = setup(SlabOptions::default());
    let storage = || -> &'static KmemCacheStatic<HostPlatform> {
        alloc::boxed::Box::leak(alloc::boxed::Box::new(KmemCacheStatic::new()))
    };
    let args = KmemCacheArgs::default();
    let task = slab
        .kmem_cache_setup(storage(), "task_struct", 256, args, SlabFlags::empty())
        .unwrap();
    let work = slab
        .kmem_cache_setup(storage(), "work_struct", 192, args, SlabFlags::empty())
        .unwrap();
    let files = slab
        .kmem_cache_setup(storage(), "files_cache", 120, args, SlabFlags::empty())
        .unwrap();
    let dentry = slab
        .kmem_cache_create("dentry", 192, args, SlabFlags::empty())
        .unwrap();
    let inode = slab
        .kmem_cache_create("inode", 600, args, SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    assert_eq!(task.primary().name(), "kmalloc-256", "a static alias");
    assert_eq!(work.primary().name(), "kmalloc-192", "a static alias");
    assert!(core::ptr::eq(files.primary(), files), "a static primary");
    assert_eq!(dentry.primary().name(), "kmalloc-192");
    // Objects in use and cached, through every name.
    let mut live = Vec::new();
    for c in [task, work, files, &*dentry, &*inode] {
        for i in 0..200 {
            let o = c.alloc(Gfp::KERNEL).unwrap();
            if i % 3 == 0 {
                // SAFETY: ours, not used again.
                unsafe { c.free(o).unwrap() };
            } else {
                live.push((c, o));
            }
        }
    }
    let k = slab.kmalloc(100, Gfp::KERNEL).unwrap();

    let rows = proc_slabinfo(&slab);
    let entries = list(&slab);
    let dirs: Vec<&str> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Dir(d) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    // Static aliases are links to their primary's directory, like merged names.
    for (alias, primary) in [
        ("task_struct", "kmalloc-256"),
        ("work_struct", "kmalloc-192"),
    ] {
        let target = resolve(&slab, primary).unwrap();
        assert!(entries.contains(&link(alias, &target)), "{alias}");
        assert!(!dirs.contains(&alias), "{alias}");
    }
    // Every directory is one cache, one row of /proc/slabinfo, and the other way round.
    assert_eq!(dirs.len(), rows.len(), "{dirs:?}");
    let mut of_rows: Vec<String> = rows
        .iter()
        .map(|r| resolve(&slab, &r.name).unwrap())
        .collect();
    of_rows.sort();
    of_rows.dedup();
    assert_eq!(of_rows.len(), rows.len(), "distinct directories");
    let mut sorted_dirs: Vec<String> = dirs.iter().map(|d| String::from(*d)).collect();
    sorted_dirs.sort();
    assert_eq!(of_rows, sorted_dirs);
    let (mut sum_objects, mut sum_slabs) = (0, 0);
    for row in &rows {
        let dir = resolve(&slab, &row.name).unwrap();
        let get = |f: &str| tool_number(&slab, &format!("{dir}/{f}"));
        // Every file reads; the numeric ones parse, with breakdowns that add up.
        for f in attributes() {
            let text = read(&slab, &format!("{dir}/{f}")).unwrap_or_else(|e| panic!("{f}: {e}"));
            if !matches!(
                f,
                "alloc_calls"
                    | "free_calls"
                    | "alloc_traces"
                    | "free_traces"
                    | "ctor"
                    | "shrink"
                    | "validate"
            ) {
                assert!(text.ends_with('\n'), "{dir}/{f}: {text:?}");
                get(f);
            }
        }
        let (objects, slabs, partial) = (get("objects"), get("slabs"), get("partial"));
        // Counters with a breakdown have one when not 0 (`12 N0=12`).
        for f in [
            "objects",
            "slabs",
            "total_objects",
            "cpu_slabs",
            "alloc_fastpath",
        ] {
            let text = read(&slab, &format!("{dir}/{f}")).unwrap();
            assert!(text == "0\n" || text.contains('='), "{dir}/{f}: {text:?}");
        }
        assert_eq!(objects, row.active_objs, "{dir}");
        assert_eq!(get("total_objects"), row.num_objs, "{dir}");
        assert_eq!(slabs, row.num_slabs, "{dir}");
        assert_eq!(row.active_slabs, row.num_slabs, "{dir}");
        assert_eq!(get("slab_size"), row.objsize, "{dir}");
        assert_eq!(get("objs_per_slab"), row.objperslab, "{dir}");
        assert_eq!(1 << get("order"), row.pagesperslab, "{dir}");
        assert!(get("objects_partial") <= objects);
        // The tool's "slabs - cpu_slabs / partial / cpu_slabs" stays meaningful.
        assert!(get("cpu_slabs") + partial <= slabs, "{dir}");
        // Allocations and frees: what callers hold, at most what the slabs count.
        let held = get("alloc_fastpath") + get("alloc_slowpath")
            - get("free_fastpath")
            - get("free_slowpath");
        assert!(held <= objects, "{dir}");
        for stat in LINUX_STATS {
            get(stat);
        }
        assert_eq!(get("cmpxchg_double_fail"), 0);
        // The names linked to this directory: every name of a cache by id, every name but
        // its own for a self-named one (`aliases` is `refcount - 1`).
        let links = entries
            .iter()
            .filter(|e| matches!(e, Entry::Link { target, .. } if *target == dir))
            .count() as u64;
        let own = u64::from(dir.starts_with(':'));
        assert_eq!(links, get("aliases") + own, "{dir}");
        if row.name.starts_with("kmalloc-") {
            assert_eq!(
                get("usersize"),
                get("object_size"),
                "kmalloc: usercopy-whole"
            );
        }
        sum_objects += objects;
        sum_slabs += slabs;
    }
    assert_eq!(get_total(&rows, |r| r.active_objs), sum_objects);
    assert_eq!(get_total(&rows, |r| r.num_slabs), sum_slabs);
    assert_eq!(read(&slab, "task_struct/aliases").as_deref(), Ok("1\n"));
    assert_eq!(read(&slab, "kmalloc-192/aliases").as_deref(), Ok("2\n"));
    assert_eq!(read(&slab, "files_cache/usersize").as_deref(), Ok("0\n"));

    for (c, o) in live {
        // SAFETY: ours, not used again.
        unsafe { c.free(o).unwrap() };
    }
    // SAFETY: from kmalloc, not used again.
    unsafe { slab.kfree(k.as_ptr()).unwrap() };
}

fn get_total(rows: &[Row], f: impl Fn(&Row) -> u64) -> u64 {
    rows.iter().map(f).sum()
}
