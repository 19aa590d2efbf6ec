//! On-target tests of `/sys/kernel/slab` and `/proc/slabinfo`: what the files say against what
//! the allocator says, links of merged names, `echo 1 > shrink`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use slab::{Gfp, KmemCacheArgs, SlabFlags};

use crate::kobject::{PageBuf, sysfs};
use crate::memory::kmalloc::slab;

/// Reads `/sys/kernel/slab/PATH`.
fn read(path: &str) -> String {
    let mut page = PageBuf::new();
    sysfs()
        .read(&format!("/kernel/slab/{path}"), &mut page)
        .unwrap_or_else(|e| panic!("/sys/kernel/slab/{path}: {e}"));
    String::from(page.as_str())
}

/// The total at the start of a counter file (`"12 N0=12\n"` → 12).
fn total(path: &str) -> usize {
    read(path)
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{path}: not a number"))
}

#[crate::ktest]
fn sysfs_slab_files_agree_with_the_allocator() {
    // Geometry of every cache, through a name it goes by (a link for merged caches), or its
    // unique id if none is left (a primary whose name was destroyed while a static alias uses
    // it, or a module's hidden primary).
    for (cache, _) in slab().caches() {
        let name = match slab().cache_names(cache).first() {
            Some(name) => String::from(name.as_str()),
            None => slab::sysfs::unique_id(cache),
        };
        assert_eq!(total(&format!("{name}/object_size")), cache.object_size());
        assert_eq!(total(&format!("{name}/slab_size")), cache.size());
        assert_eq!(
            total(&format!("{name}/objs_per_slab")),
            cache.objs_per_slab()
        );
        assert_eq!(total(&format!("{name}/order")), cache.order() as usize);
        assert_eq!(total(&format!("{name}/align")), cache.align());
    }
    // Counts of a cache nobody else uses.
    let c = slab()
        .kmem_cache_create(
            "ktest-sysfs-counts",
            200,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    let objs: Vec<_> = (0..150)
        .map(|_| c.alloc(Gfp::KERNEL).expect("memory"))
        .collect();
    let info = c.slabinfo();
    assert_eq!(total("ktest-sysfs-counts/objects"), info.active_objs);
    assert_eq!(total("ktest-sysfs-counts/total_objects"), info.num_objs);
    assert_eq!(total("ktest-sysfs-counts/slabs"), info.num_slabs);
    assert_eq!(
        total("ktest-sysfs-counts/alloc_fastpath") + total("ktest-sysfs-counts/alloc_slowpath"),
        150,
        "every allocation counts once, fast or slow"
    );
    for o in objs {
        // SAFETY: allocated above, not used afterwards.
        unsafe { c.free(o) }.expect("free");
    }
    assert_eq!(
        total("ktest-sysfs-counts/free_fastpath") + total("ktest-sysfs-counts/free_slowpath"),
        150
    );
    // `echo 1 > shrink`: every CPU's sheaves flushed, the empty slabs freed.
    assert!(total("ktest-sysfs-counts/slabs") > 0);
    assert_eq!(
        sysfs().write("/kernel/slab/ktest-sysfs-counts/shrink", "1\n"),
        Ok(2)
    );
    assert_eq!(total("ktest-sysfs-counts/slabs"), 0);
    assert_eq!(total("ktest-sysfs-counts/objects"), 0);
    // SAFETY: nothing uses the cache any more.
    unsafe { slab().kmem_cache_destroy(c) }.expect("destroy");
    assert!(!sysfs().is_dir("/kernel/slab/ktest-sysfs-counts"));
}

#[crate::ktest]
fn a_merged_name_is_a_link_to_its_cache_directory() {
    if !slab().merge_enabled() || !slab().debug_flags().is_empty() {
        return; // nothing merges (slab_nomerge, slub_debug)
    }
    let alias = slab()
        .kmem_cache_create(
            "ktest-alias",
            60,
            KmemCacheArgs::default(),
            SlabFlags::empty(),
        )
        .expect("cache");
    assert_eq!(alias.name(), "ktest-alias", "an alias knows its own name");
    assert_eq!(alias.primary().name(), "kmalloc-64", "merged");
    assert_eq!(
        sysfs().read_link("/kernel/slab/ktest-alias").as_deref(),
        Ok("/kernel/slab/:0000064")
    );
    assert_eq!(
        sysfs().read_link("/kernel/slab/kmalloc-64").as_deref(),
        Ok("/kernel/slab/:0000064")
    );
    assert!(total("ktest-alias/aliases") >= 1);
    // SAFETY: nothing uses the alias any more.
    unsafe { slab().kmem_cache_destroy(alias) }.expect("destroy");
    assert!(sysfs().read_link("/kernel/slab/ktest-alias").is_err());
    assert!(sysfs().is_dir("/kernel/slab/kmalloc-64"), "the cache stays");
}

#[crate::ktest]
fn proc_slabinfo_lists_every_cache_with_its_numbers() {
    let c = slab()
        .kmem_cache_create(
            "ktest-slabinfo",
            300,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    let objs: Vec<_> = (0..20)
        .map(|_| c.alloc(Gfp::KERNEL).expect("memory"))
        .collect();
    let mut text = String::new();
    slab().slabinfo_show(&mut text).expect("slabinfo");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("slabinfo - version: 2.1"));
    assert!(lines.next().is_some_and(|l| l.starts_with("# name")));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    for (cache, _) in slab().caches() {
        let row = rows
            .iter()
            .find(|r| r[0] == cache.name())
            .unwrap_or_else(|| panic!("{} not in /proc/slabinfo", cache.name()));
        // name active num objsize objperslab pagesperslab : tunables l b s : slabdata a n s
        assert_eq!(row.len(), 16, "{row:?}");
        assert_eq!(row[3], format!("{}", cache.size()));
        assert_eq!(row[4], format!("{}", cache.objs_per_slab()));
        assert_eq!(row[5], format!("{}", 1usize << cache.order()));
        assert_eq!(
            (row[6], row[7], row[11], row[12]),
            (":", "tunables", ":", "slabdata")
        );
    }
    let row = rows
        .iter()
        .find(|r| r[0] == "ktest-slabinfo")
        .expect("listed");
    let info = c.slabinfo();
    assert_eq!(row[1], format!("{}", info.active_objs));
    assert_eq!(row[2], format!("{}", info.num_objs));
    assert_eq!(row[14], format!("{}", info.num_slabs));
    for o in objs {
        // SAFETY: allocated above, not used afterwards.
        unsafe { c.free(o) }.expect("free");
    }
    // SAFETY: nothing uses the cache any more.
    unsafe { slab().kmem_cache_destroy(c) }.expect("destroy");
}

/// As `tools/mm/slabinfo` reads the tree: every directory is one cache, one row of
/// `/proc/slabinfo` (no slab counted twice: a static alias such as `task_struct` is a link),
/// and Linux's statistics files are there.
#[crate::ktest]
fn every_directory_is_one_row_of_proc_slabinfo() {
    let count = || {
        let dirs = slab::sysfs::list(slab())
            .iter()
            .filter(|e| matches!(e, slab::sysfs::Entry::Dir(_)))
            .count();
        let mut text = String::new();
        slab().slabinfo_show(&mut text).expect("slabinfo");
        (dirs, text.lines().count() - 2)
    };
    // Another CPU may create or destroy a cache between the two readings: try again.
    let (dirs, rows) = (0..5)
        .map(|_| count())
        .find(|(d, r)| d == r)
        .unwrap_or_else(count);
    assert_eq!(dirs, rows, "one directory per cache");
    for (cache, _) in slab().caches() {
        for name in slab().cache_names(cache) {
            let c = slab().find_cache(&name).expect("listed");
            if c.flags().contains(SlabFlags::SLAB_PREALLOCATED) && !core::ptr::eq(c.primary(), c) {
                assert!(
                    sysfs().read_link(&format!("/kernel/slab/{name}")).is_ok(),
                    "{name}: a static alias is a link"
                );
            }
        }
    }
    for stat in [
        "free_add_partial",
        "free_remove_partial",
        "alloc_node_mismatch",
        "order_fallback",
        "cmpxchg_double_fail",
        "sheaf_prefill_fast",
        "sheaf_prefill_slow",
        "sheaf_prefill_oversize",
        "sheaf_return_fast",
        "sheaf_return_slow",
    ] {
        total(&format!("kmalloc-64/{stat}"));
    }
    assert_eq!(total("kmalloc-64/cmpxchg_double_fail"), 0);
    assert_eq!(total("kmalloc-64/usersize"), 64, "kmalloc: usercopy-whole");
}
