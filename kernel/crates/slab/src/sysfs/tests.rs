//! Unit tests of the `/sys/kernel/slab` view.

use super::tool_tests::tool_number;
use super::*;
use crate::attrs::ATTRIBUTES;
use crate::base::Gfp;
use crate::flags::KmemCacheArgs;
use crate::flags::SlabFlags;
use crate::host::{CpuRegistration, HostConfig, HostPlatform};
use crate::registry::SlabOptions;
use crate::stats::Stat;

pub(super) fn setup(options: SlabOptions) -> (CpuRegistration, SlabAllocator<HostPlatform>) {
    let p = HostPlatform::new(HostConfig {
        cpus: 2,
        nodes: 1,
        pages_per_node: 4096,
    });
    let cpu = p.register_cpu();
    let slab = SlabAllocator::with_options(p, options).expect("allocator");
    (cpu, slab)
}

pub(super) fn link(name: &str, target: &str) -> Entry {
    Entry::Link {
        name: String::from(name),
        target: String::from(target),
    }
}

extern "C" fn ctor(_: *mut core::ffi::c_void) {}

#[test]
fn kmalloc_caches_are_ids_with_links() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let entries = list(&slab);
    assert!(entries.contains(&Entry::Dir(String::from(":0000064"))));
    assert!(entries.contains(&link("kmalloc-64", ":0000064")));
    assert!(entries.contains(&link("kmalloc-8k", ":0008192")));
    // Every kmalloc cache: one directory and one link, nothing else yet.
    assert_eq!(entries.len(), 2 * slab.nr_caches());
    assert!(entries.windows(2).all(|w| w[0].name() < w[1].name()));
    assert_eq!(resolve(&slab, "kmalloc-64").as_deref(), Ok(":0000064"));
    assert_eq!(resolve(&slab, ":0000064").as_deref(), Ok(":0000064"));
    assert_eq!(read(&slab, "kmalloc-64/object_size").as_deref(), Ok("64\n"));
    assert_eq!(read(&slab, ":0000064/slab_size").as_deref(), Ok("64\n"));
    assert_eq!(read(&slab, "/kmalloc-64/aliases").as_deref(), Ok("0\n"));
}

#[test]
fn flag_letters_in_ids() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let args = KmemCacheArgs::default();
    let reclaim = slab
        .kmem_cache_create("reclaim", 100, args, SlabFlags::SLAB_RECLAIM_ACCOUNT)
        .unwrap();
    assert_eq!(unique_id(&reclaim), ":a-0000104");
    let both = SlabFlags::SLAB_CACHE_DMA | SlabFlags::SLAB_ACCOUNT;
    let dma = slab.kmem_cache_create("dma", 192, args, both).unwrap();
    assert_eq!(unique_id(&dma), ":dA-0000192");
    let entries = list(&slab);
    assert!(entries.contains(&link("reclaim", ":a-0000104")));
    assert!(entries.contains(&link("dma", ":dA-0000192")));
    assert_eq!(read(&slab, "reclaim/reclaim_account").as_deref(), Ok("1\n"));
    assert_eq!(read(&slab, "dma/reclaim_account").as_deref(), Ok("0\n"));
    assert_eq!(read(&slab, "dma/cache_dma").as_deref(), Ok("1\n"));
}

#[test]
fn a_merged_alias_is_a_link_to_the_same_directory() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let args = KmemCacheArgs::default();
    let dentry = slab
        .kmem_cache_create("dentry", 60, args, SlabFlags::empty())
        .unwrap();
    assert_eq!(dentry.name(), "dentry", "an alias knows its own name");
    assert_eq!(
        dentry.primary().name(),
        "kmalloc-64",
        "merged into kmalloc-64"
    );
    let entries = list(&slab);
    assert!(entries.contains(&link("dentry", ":0000064")));
    assert!(entries.contains(&link("kmalloc-64", ":0000064")));
    assert_eq!(
        entries.iter().filter(|e| e.name() == ":0000064").count(),
        1,
        "one directory for both names"
    );
    assert_eq!(read(&slab, "dentry/aliases").as_deref(), Ok("1\n"));
    assert_eq!(read(&slab, "kmalloc-64/aliases").as_deref(), Ok("1\n"));
    assert_eq!(read(&slab, "dentry/object_size").as_deref(), Ok("64\n"));
    // The alias owns its link: destroying it takes the link and the reference, nothing else.
    // SAFETY: no object of dentry is live, and nothing else uses the handle.
    unsafe { slab.kmem_cache_destroy(dentry) }.unwrap();
    let entries = list(&slab);
    assert!(
        !entries.iter().any(|e| e.name() == "dentry"),
        "the link went"
    );
    assert!(entries.contains(&link("kmalloc-64", ":0000064")));
    assert_eq!(read(&slab, "kmalloc-64/aliases").as_deref(), Ok("0\n"));
}

#[test]
fn an_unmergeable_cache_uses_its_own_name() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let args = KmemCacheArgs::default();
    let flags = SlabFlags::SLAB_NO_MERGE | SlabFlags::SLAB_HWCACHE_ALIGN;
    slab.kmem_cache_create("task_struct", 64, args, flags)
        .unwrap();
    let with_ctor = KmemCacheArgs {
        ctor: Some(ctor),
        ..args
    };
    slab.kmem_cache_create("inode_cache", 600, with_ctor, SlabFlags::empty())
        .unwrap();
    slab.kmem_cache_create("poisoned", 64, args, SlabFlags::SLAB_POISON)
        .unwrap();
    let entries = list(&slab);
    for name in ["task_struct", "inode_cache", "poisoned"] {
        let found: Vec<&Entry> = entries.iter().filter(|e| e.name() == name).collect();
        assert_eq!(found, [&Entry::Dir(String::from(name))], "{name}");
        assert_eq!(resolve(&slab, name).as_deref(), Ok(name));
    }
    assert_eq!(
        read(&slab, "task_struct/hwcache_align").as_deref(),
        Ok("1\n")
    );
    assert_eq!(read(&slab, "task_struct/ctor").as_deref(), Ok(""));
    let shown = read(&slab, "inode_cache/ctor").unwrap();
    assert_eq!(
        shown,
        format!(
            "{:#x}\n",
            ctor as extern "C" fn(*mut core::ffi::c_void) as usize
        )
    );
    assert_eq!(read(&slab, "poisoned/poison").as_deref(), Ok("1\n"));
    assert_eq!(read(&slab, "poisoned/sheaf_capacity").as_deref(), Ok("0\n"));
}

#[test]
fn geometry_agrees_with_the_cache() {
    let (_cpu, slab) = setup(SlabOptions::default());
    slab.kmem_cache_create(
        "big",
        3000,
        KmemCacheArgs::default(),
        SlabFlags::SLAB_NO_MERGE,
    )
    .unwrap();
    for (cache, _) in slab.caches() {
        let dir = resolve(&slab, cache.name()).unwrap();
        let file = |attr: &str| read(&slab, &format!("{dir}/{attr}")).unwrap();
        assert_eq!(file("object_size"), format!("{}\n", cache.object_size()));
        assert_eq!(
            file("objs_per_slab"),
            format!("{}\n", cache.objs_per_slab())
        );
        assert_eq!(file("order"), format!("{}\n", cache.order()));
        assert_eq!(file("slab_size"), format!("{}\n", cache.size()));
        assert_eq!(file("align"), format!("{}\n", cache.align()));
        assert_eq!(file("min_partial"), format!("{}\n", cache.min_partial()));
        assert_eq!(
            file("sheaf_capacity"),
            format!("{}\n", cache.sheaf_capacity())
        );
    }
    assert_eq!(read(&slab, "big/order").as_deref(), Ok("3\n"));
}

#[test]
fn statistics_and_counts_follow_allocations() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let args = KmemCacheArgs::default();
    let c = slab
        .kmem_cache_create("counted", 40, args, SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    for stat in ["alloc_slowpath", "sheaf_refill", "alloc_slab"] {
        assert_eq!(
            read(&slab, &format!("counted/{stat}")).as_deref(),
            Ok("0\n")
        );
    }
    assert_eq!(read(&slab, "counted/objects").as_deref(), Ok("0\n"));
    let objs: Vec<_> = (0..10).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let slow = read(&slab, "counted/alloc_slowpath").unwrap();
    let n = c.stat(Stat::AllocSlowpath);
    assert!(n > 0);
    assert_eq!(slow, format!("{n} C0={n}\n"), "total, then CPU 0's part");
    let info = c.slabinfo();
    let active = info.active_objs;
    assert_eq!(
        read(&slab, "counted/objects").unwrap(),
        format!("{active} N0={active}\n")
    );
    let total = info.num_objs;
    assert_eq!(
        read(&slab, "counted/total_objects").unwrap(),
        format!("{total} N0={total}\n")
    );
    assert_eq!(read(&slab, "counted/slabs").as_deref(), Ok("1 N0=1\n"));
    for o in objs {
        // SAFETY: allocated above, not used afterwards.
        unsafe { c.free(o).unwrap() };
    }
    c.shrink();
    assert_ne!(read(&slab, "counted/sheaf_flush").as_deref(), Ok("0\n"));
    assert_eq!(read(&slab, "counted/objects").as_deref(), Ok("0\n"));
}

#[test]
fn every_attribute_reads() {
    let (_cpu, slab) = setup(SlabOptions::default());
    assert_eq!(attributes().count(), ATTRIBUTES.len() + Stat::COUNT);
    for attr in attributes() {
        let value = read(&slab, &format!("kmalloc-96/{attr}")).unwrap();
        // `ctor` is empty without one; `shrink` and `validate` are actions, empty to read; the
        // traces are empty without `SLAB_STORE_USER`.
        let empty_ok = [
            "ctor",
            "shrink",
            "validate",
            "alloc_traces",
            "free_traces",
            "alloc_calls",
            "free_calls",
        ]
        .contains(&attr);
        assert!(
            value.ends_with('\n') || (empty_ok && value.is_empty()),
            "{attr}: {value:?}"
        );
    }
}

#[test]
fn writing_1_to_shrink_frees_empty_slabs() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let c = slab
        .kmem_cache_create(
            "shrunk",
            200,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .unwrap();
    let objs: Vec<_> = (0..100).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    for o in objs {
        // SAFETY: allocated above, not used afterwards.
        unsafe { c.free(o).unwrap() };
    }
    assert_ne!(read(&slab, "shrunk/slabs").as_deref(), Ok("0\n"));
    assert_eq!(write(&slab, "shrunk/shrink", "1\n"), Ok(2));
    assert_eq!(read(&slab, "shrunk/slabs").as_deref(), Ok("0\n"));
    assert_eq!(read(&slab, "shrunk/objects").as_deref(), Ok("0\n"));
}

#[test]
fn writing_validate_checks_and_bad_writes_are_refused() {
    let (_cpu, slab) = setup(SlabOptions::default());
    assert_eq!(write(&slab, "kmalloc-64/validate", "1"), Ok(1));
    assert_eq!(
        write(&slab, "kmalloc-64/shrink", "0"),
        Err(SysfsError::InvalidArgument)
    );
    assert_eq!(
        write(&slab, "kmalloc-64/validate", ""),
        Err(SysfsError::InvalidArgument)
    );
    assert_eq!(
        write(&slab, "kmalloc-64/order", "1"),
        Err(SysfsError::PermissionDenied)
    );
    assert_eq!(
        write(&slab, "kmalloc-64/nope", "1"),
        Err(SysfsError::NotFound)
    );
    assert_eq!(write(&slab, "nope/shrink", "1"), Err(SysfsError::NotFound));
    assert_eq!(
        write(&slab, "kmalloc-64", "1"),
        Err(SysfsError::IsADirectory)
    );
}

#[test]
fn unknown_paths_are_errors() {
    let (_cpu, slab) = setup(SlabOptions::default());
    assert_eq!(read(&slab, "nope"), Err(SysfsError::NotFound));
    assert_eq!(read(&slab, "nope/order"), Err(SysfsError::NotFound));
    assert_eq!(read(&slab, "kmalloc-64/nope"), Err(SysfsError::NotFound));
    assert_eq!(read(&slab, "kmalloc-64/order/x"), Err(SysfsError::NotFound));
    assert_eq!(read(&slab, "kmalloc-64"), Err(SysfsError::IsADirectory));
    assert_eq!(read(&slab, ":0000064/"), Err(SysfsError::IsADirectory));
    assert_eq!(read(&slab, ""), Err(SysfsError::IsADirectory));
    assert_eq!(resolve(&slab, "nope"), Err(SysfsError::NotFound));
}

#[test]
fn under_slab_nomerge_every_cache_goes_by_its_name() {
    let options = SlabOptions {
        nomerge: true,
        ..SlabOptions::default()
    };
    let (_cpu, slab) = setup(options);
    let args = KmemCacheArgs::default();
    slab.kmem_cache_create("dentry", 64, args, SlabFlags::empty())
        .unwrap();
    slab.kmem_cache_create("filp", 64, args, SlabFlags::empty())
        .unwrap();
    let entries = list(&slab);
    for name in ["kmalloc-64", "dentry", "filp"] {
        assert!(entries.contains(&Entry::Dir(name.into())), "{name}");
    }
    assert!(!entries.iter().any(|e| matches!(e, Entry::Link { .. })));
    assert_eq!(read(&slab, "filp/aliases").as_deref(), Ok("0\n"));
    // A name given twice: the newer cache gets `.1`, and the name leads to the older one,
    // its directory.
    slab.kmem_cache_create("filp", 64, args, SlabFlags::empty())
        .unwrap();
    assert_eq!(resolve(&slab, "filp").as_deref(), Ok("filp"));
    assert!(list(&slab).contains(&Entry::Dir("filp.1".into())));
}

/// Destroy takes a cache out of `/sys/kernel/slab` at once, even while its asynchronous
/// destroy waits for `kfree_rcu` objects, so the name can be created again at once; the new
/// cache gets the name's link (and a directory of its own).
#[test]
fn a_destroyed_cache_leaves_sysfs_at_once_and_its_name_is_free() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let args = KmemCacheArgs::default();
    let flags = SlabFlags::SLAB_NO_MERGE;
    let c = slab.kmem_cache_create("leaving", 200, args, flags).unwrap();
    let obj = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours; nobody uses it after.
    unsafe { c.free_rcu(obj) };
    assert!(resolve(&slab, "leaving").is_ok());
    // SAFETY: nothing uses the cache afterwards.
    unsafe { slab.kmem_cache_destroy(c) }.unwrap();
    assert!(
        slab.destroy_pending().iter().any(|(n, _)| n == "leaving"),
        "destroy is pending"
    );
    assert_eq!(resolve(&slab, "leaving"), Err(SysfsError::NotFound));
    assert!(!list(&slab).iter().any(|e| e.name().starts_with("leaving")));
    let again = slab.kmem_cache_create("leaving", 200, args, flags).unwrap();
    assert_eq!(resolve(&slab, "leaving").as_deref(), Ok("leaving"));
    assert_eq!(read(&slab, "leaving/object_size").as_deref(), Ok("200\n"));
    slab.platform().run_work();
    slab.platform().synchronize_rcu();
    slab.platform().run_work();
    assert!(slab.destroy_pending().is_empty());
    assert_eq!(read(&slab, "leaving/objects").as_deref(), Ok("0\n"));
    // SAFETY: nothing uses the cache afterwards.
    unsafe { slab.kmem_cache_destroy(again) }.unwrap();
}

/// The cache's structure is freed by its kobject's release: a reference taken through sysfs
/// (as a reader's open file holds one) keeps it until it is put, after destroy returned.
#[test]
fn a_reference_to_the_cache_kobject_defers_its_release() {
    use crate::registry::owned_released;
    let (_cpu, slab) = setup(SlabOptions::default());
    let c = slab
        .kmem_cache_create(
            "held",
            72,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .unwrap();
    let sys = slab.platform().slab_sysfs().unwrap();
    let kobj = sys
        .sysfs
        .kset_find_obj(sys.kset, "held")
        .expect("its directory");
    let before = owned_released();
    // SAFETY: nothing uses the cache but the reference held through its kobject.
    unsafe { slab.kmem_cache_destroy(c) }.unwrap();
    assert_eq!(owned_released(), before, "the reference keeps the cache");
    assert_eq!(resolve(&slab, "held"), Err(SysfsError::NotFound));
    // SAFETY: the reference `kset_find_obj` took; the cache is alive until it is put.
    let k = unsafe { kobj.as_ref() };
    assert_eq!(k.refcount(), 1);
    assert!(!k.in_sysfs());
    // SAFETY: as above: this is the last reference.
    unsafe { sys.sysfs.kobject_put(kobj) }.unwrap();
    assert_eq!(owned_released(), before + 1, "the last put freed it");
}

/// `cpu_slabs` counts the objects cached in sheaves, in slabs' worth (as `tools/mm/slabinfo`
/// subtracts it from the slab counts): the cached objects' slabs (never more than the full
/// slabs), none after a shrink.
#[test]
fn cpu_slabs_counts_the_objects_cached_in_sheaves() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let c = slab
        .kmem_cache_create(
            "cached",
            96,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .unwrap();
    let file = |f: &str| -> usize {
        let text = read(&slab, &format!("cached/{f}")).unwrap();
        text.split_whitespace().next().unwrap().parse().unwrap()
    };
    let objs: Vec<_> = (0..30).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let per_slab = c.objs_per_slab();
    let expect = |cached: usize| {
        cached
            .div_ceil(per_slab)
            .min(file("slabs") - file("partial"))
    };
    assert_eq!(file("cpu_slabs"), expect(c.slabinfo().active_objs - 30));
    for o in objs {
        // SAFETY: ours.
        unsafe { c.free(o).unwrap() };
    }
    assert!(c.slabinfo().active_objs >= 30);
    assert_eq!(file("cpu_slabs"), expect(c.slabinfo().active_objs));
    assert!(file("cpu_slabs") <= file("slabs"));
    c.shrink();
    assert_eq!(file("cpu_slabs"), 0);
    assert_eq!(read(&slab, "cached/trace").as_deref(), Ok("0\n"));
}

/// Linux's prefill and return statistics split as Linux splits them: the CPU's spare
/// (`_fast`), anything else (`_slow`), an oversize sheaf (`sheaf_prefill_oversize`; its return
/// counts neither).
#[test]
fn prefill_and_return_count_fast_slow_and_oversize() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let c = slab
        .kmem_cache_create("pf", 64, KmemCacheArgs::default(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let n = |f: &str| tool_number(&slab, &format!("pf/{f}"));
    let cap = c.sheaf_capacity();
    let big = c.prefill_sheaf(Gfp::KERNEL, cap + 1).unwrap();
    assert_eq!(n("sheaf_prefill_oversize"), 1);
    c.return_sheaf(big).unwrap();
    assert_eq!(n("sheaf_return_fast") + n("sheaf_return_slow"), 0);
    let a = c.prefill_sheaf(Gfp::KERNEL, cap / 2).unwrap(); // no spare: slow
    assert_eq!((n("sheaf_prefill_fast"), n("sheaf_prefill_slow")), (0, 1));
    c.return_sheaf(a).unwrap(); // becomes the spare: fast
    assert_eq!((n("sheaf_return_fast"), n("sheaf_return_slow")), (1, 0));
    let a = c.prefill_sheaf(Gfp::KERNEL, 1).unwrap(); // the spare: fast
    let b = c.prefill_sheaf(Gfp::KERNEL, 1).unwrap(); // no spare left: slow
    assert_eq!((n("sheaf_prefill_fast"), n("sheaf_prefill_slow")), (1, 2));
    c.return_sheaf(a).unwrap(); // the spare again: fast
    c.return_sheaf(b).unwrap(); // a spare is there: slow (into the barn, or flushed)
    assert_eq!((n("sheaf_return_fast"), n("sheaf_return_slow")), (2, 1));
    assert_eq!(
        n("barn_put") + n("barn_put_fail"),
        1,
        "the slow return tried the barn"
    );
    c.shrink();
    assert_eq!(n("cpu_slabs"), 0);
}

/// `free_add_partial` / `free_remove_partial`: frees moving a full slab onto the partial list,
/// and an emptied slab off it to be freed (beyond `min_partial`). A debug cache frees straight
/// to its slabs, so the counts are exact.
#[test]
fn frees_count_partial_list_moves() {
    let (_cpu, slab) = setup(SlabOptions::default());
    let c = slab
        .kmem_cache_create(
            "moves",
            128,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_CONSISTENCY_CHECKS,
        )
        .unwrap();
    let n = |f: &str| tool_number(&slab, &format!("moves/{f}"));
    let slabs = c.min_partial() + 4;
    let objs: Vec<_> = (0..slabs * c.objs_per_slab())
        .map(|_| c.alloc(Gfp::KERNEL).unwrap())
        .collect();
    assert_eq!(n("slabs"), slabs as u64);
    assert_eq!(n("partial"), 0, "all full");
    for o in objs {
        // SAFETY: ours, not used again.
        unsafe { c.free(o).unwrap() };
    }
    assert_eq!(
        n("free_add_partial"),
        slabs as u64,
        "every full slab became partial"
    );
    assert_eq!(
        n("free_remove_partial"),
        4,
        "the empty ones beyond min_partial"
    );
    assert_eq!(n("free_slab"), 4);
    assert_eq!(n("cpu_slabs"), 0, "no sheaves");
    assert_eq!(n("order_fallback"), 0);
}

/// With two nodes: an allocation for the other node is `alloc_node_mismatch`, and `cpu_slabs`
/// breaks down per node (`N0=`), each node's part from its own slabs and CPUs.
#[test]
fn node_mismatch_and_cpu_slabs_per_node() {
    let p = HostPlatform::new(HostConfig {
        cpus: 2,
        nodes: 2,
        pages_per_node: 4096,
    });
    let _cpu = p.register_cpu();
    let slab = SlabAllocator::new(p).unwrap();
    let c = slab
        .kmem_cache_create(
            "numa",
            256,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .unwrap();
    let n = |f: &str| tool_number(&slab, &format!("numa/{f}"));
    let local: Vec<_> = (0..40).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let remote: Vec<_> = (0..40)
        .map(|_| c.alloc_node(Gfp::KERNEL, 1).unwrap())
        .collect();
    assert_eq!(n("alloc_node_mismatch"), 40);
    // Node 1's objects are all held by the caller: none of them parked in sheaves.
    let text = read(&slab, "numa/cpu_slabs").unwrap();
    assert!(!text.contains("N1="), "{text}");
    assert!(
        n("cpu_slabs") > 0,
        "node 0's CPU sheaves hold refilled objects: {text}"
    );
    assert!(
        text.starts_with(&format!("{} N0=", n("cpu_slabs"))),
        "{text}"
    );
    for o in local.into_iter().chain(remote) {
        // SAFETY: ours, not used again.
        unsafe { c.free(o).unwrap() };
    }
    assert_eq!(n("free_remote_node"), 40);
    let text = read(&slab, "numa/cpu_slabs").unwrap();
    assert!(
        !text.contains("N1="),
        "remote frees went to their slabs: {text}"
    );
    c.shrink();
    assert_eq!(read(&slab, "numa/cpu_slabs").as_deref(), Ok("0\n"));
}
