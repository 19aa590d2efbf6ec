//! Primary caches on target (the maintainer's answer to the static-cache RFC's merging
//! problem): every creation order of static and dynamic caches, objects freed through the
//! alias and through the primary, counts back to baseline, and a storm on every CPU through an
//! alias and its primary.
//!
//! Each test uses object sizes no other cache of the kernel has (600 .. 680 bytes, which no
//! kmalloc class is close enough to take), so that the merges they check are their own.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use slab::{Gfp, KmemCache, KmemCacheArgs, KmemCacheHandle, SlabFlags};

use crate::kobject::{KERNEL_KSET, KObject, KobjType, sysfs};
use crate::memory::kmalloc::{KernelPlatform, slab};
use crate::memory::static_cache::KmemCacheOpaque;
use crate::rand::Rng;
use crate::sync::SpinLock;

type Cache = KmemCache<KernelPlatform>;

/// Whether caches merge in this boot (not under `slab_nomerge` or `slub_debug`); the tests
/// here check merges, so they have nothing to check otherwise.
fn merging() -> bool {
    slab().merge_enabled() && slab().debug_flags().is_empty()
}

/// Objects of `cache`'s primary in use, once every CPU's sheaves are flushed to the slabs.
fn in_use(cache: &Cache) -> usize {
    cache.shrink();
    cache.slabinfo().active_objs
}

/// Allocates from `from` and frees through `through`, `n` objects, each written whole first.
fn cross_free(from: &Cache, through: &Cache, n: usize) {
    let objs: Vec<NonNull<u8>> = (0..n)
        .map(|i| {
            let o = from.alloc(Gfp::KERNEL).expect("memory");
            // SAFETY: a fresh object of at least `object_size` bytes, ours.
            unsafe { o.as_ptr().write_bytes(i as u8, from.object_size()) };
            o
        })
        .collect();
    for o in objs {
        // SAFETY: ours; the two caches share one primary, so the object is `through`'s too.
        unsafe { through.free(o) }.expect("a free through the other name is accepted");
    }
}

static ORDER_A: KmemCacheOpaque = KmemCacheOpaque::new();
static ORDER_B: KmemCacheOpaque = KmemCacheOpaque::new();
static ORDER_C: KmemCacheOpaque = KmemCacheOpaque::new();

#[crate::ktest]
fn a_dynamic_cache_created_after_a_static_one_is_its_alias() {
    if !merging() {
        return;
    }
    let st = ORDER_A
        .setup("ktest-primary-a", 600, 8, SlabFlags::empty(), None)
        .expect("setup");
    assert!(
        core::ptr::eq(st.primary(), st),
        "a built-in static cache is a primary"
    );
    let base = in_use(st);
    let dynamic = slab()
        .kmem_cache_create(
            "ktest-alias-a",
            596,
            KmemCacheArgs::default(),
            SlabFlags::empty(),
        )
        .expect("create");
    assert_eq!(
        dynamic.name(),
        "ktest-alias-a",
        "an alias knows its own name"
    );
    assert!(
        core::ptr::eq(dynamic.primary(), st),
        "merged into the static cache"
    );
    assert_eq!(st.refcount(), 2);
    assert_eq!(
        sysfs().read_link("/kernel/slab/ktest-alias-a").as_deref(),
        Ok("/kernel/slab/ktest-primary-a"),
        "the alias's link leads to the static cache's own directory"
    );
    cross_free(&dynamic, st, 40);
    cross_free(st, &dynamic, 40);
    assert_eq!(in_use(st), base, "every object came back");
    // SAFETY: no object of the alias is live; nothing else uses the handle.
    unsafe { slab().kmem_cache_destroy(dynamic) }.expect("destroy the alias");
    assert!(
        sysfs().read_link("/kernel/slab/ktest-alias-a").is_err(),
        "its link went"
    );
    assert_eq!(st.refcount(), 1, "its reference on the primary went");
    cross_free(st, st, 8);
}

#[crate::ktest]
fn a_static_cache_set_up_after_a_dynamic_one_uses_it_as_primary() {
    if !merging() {
        return;
    }
    let dynamic = slab()
        .kmem_cache_create(
            "ktest-primary-b",
            616,
            KmemCacheArgs::default(),
            SlabFlags::empty(),
        )
        .expect("create");
    let st = ORDER_B
        .setup("ktest-alias-b", 612, 8, SlabFlags::empty(), None)
        .expect("setup");
    assert!(
        core::ptr::eq(st.primary(), &*dynamic),
        "the dynamic cache is the primary"
    );
    assert!(st.flags().contains(SlabFlags::SLAB_PREALLOCATED));
    let dir = sysfs().read_link("/kernel/slab/ktest-primary-b");
    assert!(dir.is_ok(), "a mergeable dynamic cache's name is a link");
    assert_eq!(
        sysfs().read_link("/kernel/slab/ktest-alias-b"),
        dir,
        "a static alias is a link to its primary's directory, like a merged name"
    );
    let base = in_use(&dynamic);
    cross_free(st, &dynamic, 40);
    cross_free(&dynamic, st, 40);
    assert_eq!(in_use(st), base);
    // The primary's own name goes; the static alias keeps the primary alive.
    // SAFETY: no object of the cache is live; the static alias's use is through its own
    // structure, which holds a reference.
    let primary = unsafe { dynamic.as_ref_unchecked() };
    // SAFETY: as above.
    unsafe { slab().kmem_cache_destroy(dynamic) }.expect("destroy the primary's name");
    assert!(
        slab().find_cache("ktest-primary-b").is_none(),
        "the name went"
    );
    assert_eq!(
        primary.refcount(),
        1,
        "the static alias's reference holds it"
    );
    cross_free(st, st, 40);
    assert_eq!(in_use(st), base);
}

static OWNER_RELEASES: AtomicUsize = AtomicUsize::new(0);

/// Counts the release of the stand-in module's kobject (a static: nothing to free).
///
/// # Safety
/// Called once, as the kobject's release.
unsafe fn owner_released(_: NonNull<KObject>) {
    OWNER_RELEASES.fetch_add(1, Ordering::AcqRel);
}

static OWNER_TYPE: KobjType = KobjType {
    release: Some(owner_released),
    attrs: &[],
    dynamic: None,
};
static OWNER: KObject = KObject::new();

#[crate::ktest]
fn a_module_static_cache_gets_a_hidden_primary_that_outlives_it() {
    if !merging() {
        return;
    }
    // A plain kobject stands in for a module.
    // SAFETY: a static: it never moves or goes away.
    unsafe {
        sysfs().kobject_init_and_add(
            NonNull::from(&OWNER),
            &OWNER_TYPE,
            Some(&KERNEL_KSET.kobj),
            "ktest-module-c",
        )
    }
    .expect("kobject_add");
    let args = KmemCacheArgs {
        owner: Some(&OWNER),
        ..KmemCacheArgs::default()
    };
    let st = ORDER_C
        .setup_args("ktest-module-cache-c", 632, args, SlabFlags::empty())
        .expect("setup");
    let hidden = st.primary();
    assert!(!core::ptr::eq(hidden, st), "a primary was made for it");
    assert!(!hidden.flags().contains(SlabFlags::SLAB_PREALLOCATED));
    let late = slab()
        .kmem_cache_create(
            "ktest-late-c",
            628,
            KmemCacheArgs::default(),
            SlabFlags::empty(),
        )
        .expect("create");
    assert!(
        core::ptr::eq(late.primary(), hidden),
        "a later cache merges into it"
    );
    let base = in_use(hidden);
    cross_free(st, &late, 40);
    cross_free(&late, st, 40);
    assert_eq!(in_use(hidden), base);
    // The module unloads: its cache goes, the owner's pin with it, the primary stays.
    // SAFETY: no object of the module's cache is live, nothing else uses it.
    unsafe { slab().kmem_cache_destroy(KmemCacheHandle::from_ref(st)) }.expect("unload");
    assert!(!sysfs().is_dir("/kernel/slab/ktest-module-cache-c"));
    assert_eq!(
        OWNER_RELEASES.load(Ordering::Acquire),
        0,
        "the module's own ref"
    );
    // SAFETY: the reference `kobject_init_and_add` gave, the last one now.
    unsafe { sysfs().kobject_put(NonNull::from(&OWNER)) }.expect("put");
    assert_eq!(
        OWNER_RELEASES.load(Ordering::Acquire),
        1,
        "released after the cache"
    );
    cross_free(&late, &late, 40);
    let caches = slab().nr_caches();
    // SAFETY: no object of the cache is live.
    unsafe { slab().kmem_cache_destroy(late) }.expect("the hidden primary's last user");
    assert_eq!(
        slab().nr_caches(),
        caches - 1,
        "the hidden primary went with it"
    );
}

/// Where the storm's objects go between CPUs.
type Mailboxes = Arc<Vec<SpinLock<Vec<(usize, u8)>>>>;

#[crate::ktest]
fn a_storm_through_an_alias_and_its_primary_on_every_cpu_corrupts_nothing() {
    if !merging() {
        return;
    }
    static STORM_PRIMARY: KmemCacheOpaque = KmemCacheOpaque::new();
    let primary = STORM_PRIMARY
        .setup("ktest-storm-primary", 680, 8, SlabFlags::empty(), None)
        .expect("setup");
    let alias = slab()
        .kmem_cache_create(
            "ktest-storm-alias",
            676,
            KmemCacheArgs::default(),
            SlabFlags::empty(),
        )
        .expect("create");
    assert!(core::ptr::eq(alias.primary(), primary));
    let base = in_use(primary);
    // SAFETY: the threads are joined before the handle is destroyed below.
    let alias_ref: &'static Cache = unsafe { alias.as_ref_unchecked() };
    let cpus: Vec<usize> = crate::cpu::online().map(|c| c.id).collect();
    let n = cpus.len();
    let mailboxes: Mailboxes = Arc::new(cpus.iter().map(|_| SpinLock::new(Vec::new())).collect());
    let size = primary.object_size().min(alias_ref.object_size());
    let threads: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(slot, &cpu)| {
            let mailboxes = mailboxes.clone();
            crate::sched::spawn_on(cpu, "primary-storm", move || -> Result<(), String> {
                let mut rng = Rng::new(0xa11a5 + cpu as u64);
                let caches = [primary, alias_ref];
                let mut live: Vec<(usize, u8)> = Vec::new();
                let check = |(p, tag): (usize, u8)| -> Result<(), String> {
                    // SAFETY: a live object of `size` bytes this thread owns.
                    let b = unsafe { core::slice::from_raw_parts(p as *const u8, size) };
                    match b.iter().all(|&x| x == tag) {
                        true => Ok(()),
                        false => Err(alloc::format!("object {p:#x} (tag {tag}) overwritten")),
                    }
                };
                for round in 0..200 {
                    for _ in 0..16 {
                        let c = caches[rng.range(0, 1)];
                        let o = c.alloc(Gfp::KERNEL).ok_or("alloc failed")?;
                        let tag = rng.next_u64() as u8;
                        // SAFETY: a fresh object of at least `size` bytes, ours.
                        unsafe { o.as_ptr().write_bytes(tag, size) };
                        live.push((o.as_ptr() as usize, tag));
                    }
                    while live.len() > 24 {
                        let obj = live.swap_remove(rng.range(0, live.len() - 1));
                        check(obj)?;
                        if round % 3 == 0 && n > 1 {
                            mailboxes[(slot + 1) % n].lock().push(obj);
                            continue;
                        }
                        let c = caches[rng.range(0, 1)];
                        let p = NonNull::new(obj.0 as *mut u8).expect("an object");
                        // SAFETY: ours; alias and primary share the storage.
                        unsafe { c.free(p) }.map_err(|r| alloc::format!("{r}"))?;
                    }
                    let passed = core::mem::take(&mut *mailboxes[slot].lock());
                    live.extend(passed);
                }
                for obj in live {
                    check(obj)?;
                    let p = NonNull::new(obj.0 as *mut u8).expect("an object");
                    // SAFETY: ours.
                    unsafe { caches[obj.1 as usize % 2].free(p) }
                        .map_err(|r| alloc::format!("{r}"))?;
                }
                Ok(())
            })
            .expect("spawn")
        })
        .collect();
    for t in threads {
        t.join().expect("no object handed out twice or overwritten");
    }
    for mailbox in mailboxes.iter() {
        for (p, _) in core::mem::take(&mut *mailbox.lock()) {
            let p = NonNull::new(p as *mut u8).expect("an object");
            // SAFETY: nobody else holds these objects any more.
            unsafe { alias_ref.free(p) }.expect("free");
        }
    }
    assert_eq!(in_use(primary), base, "counts back to baseline");
    // SAFETY: every object is back, every thread is done.
    unsafe { slab().kmem_cache_destroy(alias) }.expect("destroy the alias");
    assert_eq!(primary.refcount(), 1);
}
