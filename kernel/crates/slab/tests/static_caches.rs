//! Static caches (`kmem_cache_setup`, the RFC "static kmem_cache instances for core caches"):
//! set up in place, self-named in sysfs when primaries (a link to the primary when aliases),
//! merge targets when built in,
//! refused twice, never destroyed when built in, and pinning a module owner until their final
//! release.

mod common;

use std::ptr::NonNull;
use std::sync::atomic::Ordering::SeqCst;

use common::*;
use slab::host::HostPlatform;
use slab::{DestroyError, Gfp, KmemCacheHandle, KmemCacheStatic, SlabError, SlabFlags};

/// Static storage for a test (leaked: statics cannot be made per test).
fn storage() -> &'static KmemCacheStatic<HostPlatform> {
    Box::leak(Box::new(KmemCacheStatic::new()))
}

#[test]
fn a_static_cache_is_set_up_in_place_and_self_named() {
    let (_p, _cpu, a) = setup(1, 1);
    let st = storage();
    let c = a
        .kmem_cache_setup(st, "files_cache", 120, args(), SlabFlags::empty())
        .unwrap();
    // SAFETY: set up just above.
    let in_storage = unsafe { st.get() };
    assert!(std::ptr::eq(c, in_storage), "built in the storage");
    assert!(c.flags().contains(SlabFlags::SLAB_PREALLOCATED));
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o).unwrap() };
    // Mergeable, yet its own name, not a unique id like `:0000120`.
    assert_eq!(
        slab::sysfs::resolve(&a, "files_cache").as_deref(),
        Ok("files_cache")
    );
    assert_eq!(
        slab::sysfs::read(&a, "files_cache/object_size").as_deref(),
        Ok("120\n")
    );
}

#[test]
fn two_static_caches_of_one_geometry_get_two_directories() {
    let (_p, _cpu, a) = setup(1, 1);
    let one = a.kmem_cache_setup(storage(), "one", 200, args(), SlabFlags::empty());
    let two = a.kmem_cache_setup(storage(), "two", 200, args(), SlabFlags::empty());
    let (one, two) = (one.unwrap(), two.unwrap());
    assert!(
        !std::ptr::eq(one, two),
        "setup never returns another instance"
    );
    assert!(
        std::ptr::eq(two.primary(), one),
        "the second merged into the first"
    );
    assert_eq!(slab::sysfs::resolve(&a, "one").as_deref(), Ok("one"));
    // The second is an alias: a link to the first's directory, like a merged name, and
    // counted in its `aliases` (not a second directory repeating its slabs).
    assert_eq!(slab::sysfs::resolve(&a, "two").as_deref(), Ok("one"));
    assert!(slab::sysfs::list(&a).contains(&slab::sysfs::Entry::Link {
        name: "two".into(),
        target: "one".into()
    }));
    assert_eq!(slab::sysfs::read(&a, "two/aliases").as_deref(), Ok("1\n"));
}

/// Two static caches of one geometry with merging off: two directories.
#[test]
fn two_unmerged_static_caches_get_two_directories() {
    let p = HostPlatform::new(slab::host::HostConfig {
        cpus: 1,
        nodes: 1,
        pages_per_node: 4096,
    });
    let _cpu = p.register_cpu();
    let options = slab::SlabOptions {
        nomerge: true,
        ..Default::default()
    };
    let a = slab::SlabAllocator::with_options(p, options).unwrap();
    let one = a.kmem_cache_setup(storage(), "one", 200, args(), SlabFlags::empty());
    let two = a.kmem_cache_setup(storage(), "two", 200, args(), SlabFlags::empty());
    let (one, two) = (one.unwrap(), two.unwrap());
    assert!(std::ptr::eq(two.primary(), two), "not merged");
    assert!(std::ptr::eq(one.primary(), one));
    assert_eq!(slab::sysfs::resolve(&a, "one").as_deref(), Ok("one"));
    assert_eq!(slab::sysfs::resolve(&a, "two").as_deref(), Ok("two"));
}

#[test]
fn a_dynamic_cache_merges_into_a_built_in_static_one() {
    let (_p, _cpu, a) = setup(1, 1);
    let st = a
        .kmem_cache_setup(storage(), "static-208", 208, args(), SlabFlags::empty())
        .unwrap();
    let dynamic = a
        .kmem_cache_create("dynamic-204", 204, args(), SlabFlags::empty())
        .unwrap();
    assert!(
        std::ptr::eq(dynamic.primary(), st),
        "merged into the static cache"
    );
    assert_eq!(dynamic.name(), "dynamic-204");
    assert_eq!(st.refcount(), 2);
    assert_eq!(
        slab::sysfs::resolve(&a, "dynamic-204").as_deref(),
        Ok("static-208"),
        "the alias links to the static cache's own name"
    );
    let o = dynamic.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours, freed through the static cache it came from.
    unsafe { st.free(o).unwrap() };
    // SAFETY: nothing uses the alias afterwards.
    unsafe { a.kmem_cache_destroy(dynamic) }.unwrap();
    assert_eq!(st.refcount(), 1);
    assert_eq!(
        slab::sysfs::resolve(&a, "dynamic-204"),
        Err(slab::sysfs::SysfsError::NotFound)
    );
}

/// Dynamic, then static (primary caches): the static cache becomes an alias with its own
/// structure and name, a link to the primary's directory in sysfs, using the dynamic cache's storage; objects allocated through
/// either are freed through the other, and everything goes back to the slabs.
#[test]
fn a_static_cache_set_up_after_a_compatible_one_is_its_alias() {
    let (p, _cpu, a) = setup(1, 1);
    let pages = p.pages_in_use();
    let dynamic = a
        .kmem_cache_create("dynamic", 208, args(), SlabFlags::empty())
        .unwrap();
    let st = a
        .kmem_cache_setup(storage(), "static", 208, args(), SlabFlags::empty())
        .unwrap();
    assert!(!std::ptr::eq(&*dynamic, st), "a structure of its own");
    assert!(
        std::ptr::eq(st.primary(), &*dynamic),
        "whose primary is the dynamic cache"
    );
    assert_eq!(st.name(), "static");
    assert_eq!(dynamic.refcount(), 2);
    assert!(std::ptr::eq(a.find_cache("static").unwrap(), st));
    assert_eq!(
        slab::sysfs::resolve(&a, "static"),
        slab::sysfs::resolve(&a, "dynamic"),
        "a link to the primary's directory"
    );
    assert_eq!(
        slab::sysfs::read(&a, "static/aliases").as_deref(),
        Ok("1\n")
    );
    let through_static: Vec<_> = (0..50).map(|_| st.alloc(Gfp::KERNEL).unwrap()).collect();
    let through_dynamic: Vec<_> = (0..50)
        .map(|_| dynamic.alloc(Gfp::KERNEL).unwrap())
        .collect();
    assert_eq!(dynamic.slabinfo().active_objs, st.slabinfo().active_objs);
    assert!(dynamic.slabinfo().active_objs >= 100);
    for o in through_static {
        // SAFETY: an object of the primary's storage, freed through the primary.
        unsafe { dynamic.free(o).unwrap() };
    }
    for o in through_dynamic {
        // SAFETY: freed through the alias, which hands it to its primary.
        unsafe { st.free(o).unwrap() };
    }
    st.shrink();
    assert_eq!(dynamic.slabinfo().active_objs, 0, "everything back");
    assert_eq!(dynamic.slabinfo().num_slabs, 0, "and the slabs freed");
    assert!(p.pages_in_use() >= pages);
}

#[test]
fn setting_up_twice_is_refused() {
    let (_p, _cpu, a) = setup(1, 1);
    let st = storage();
    let c = a
        .kmem_cache_setup(st, "once", 64, args(), SlabFlags::empty())
        .unwrap();
    let again = a.kmem_cache_setup(st, "twice", 64, args(), SlabFlags::empty());
    assert_eq!(again.err(), Some(SlabError::AlreadySetUp));
    assert_eq!(c.name(), "once", "the cache is untouched");
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o).unwrap() };
}

#[test]
fn a_built_in_static_cache_cannot_be_destroyed() {
    let (_p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_setup(storage(), "forever", 64, args(), SlabFlags::empty())
        .unwrap();
    // SAFETY: the only handle of its first name.
    let handle = unsafe { KmemCacheHandle::from_ref(c) };
    // SAFETY: destroy is refused: nothing is freed.
    let r = unsafe { a.kmem_cache_destroy(handle) };
    assert_eq!(
        r,
        Err(DestroyError::Permanent {
            name: "forever".into()
        })
    );
    assert!(a.find_cache("forever").is_some());
}

/// A released owner (a module already gone) is refused, and the refused setup leaves nothing
/// behind: no cache, no hidden primary, no reference on the owner.
#[test]
fn a_dead_owner_is_refused_and_leaves_nothing_listed() {
    let (p, _cpu, a) = setup(1, 1);
    let (owner, module_args) = module_owner(&p, "module-dead");
    let before = OWNER_RELEASES.load(SeqCst);
    // SAFETY: the owner is leaked; this is its only reference, so it is released.
    unsafe { p.sysfs().kobject_put(NonNull::from(owner)) }.unwrap();
    assert_eq!(OWNER_RELEASES.load(SeqCst), before + 1);
    let caches = a.nr_caches();
    let names = slab::sysfs::list(&a).len();
    let r = a.kmem_cache_setup(
        storage(),
        "module-dead-cache",
        248,
        module_args,
        SlabFlags::empty(),
    );
    assert!(r.is_err(), "a dead owner is refused");
    assert_eq!(a.nr_caches(), caches, "no hidden primary was left behind");
    assert_eq!(slab::sysfs::list(&a).len(), names, "nothing new in sysfs");
    assert!(a.find_cache("module-dead-cache").is_none());
    assert_eq!(OWNER_RELEASES.load(SeqCst), before + 1, "released once");
}

/// A plain kobject standing in for a module (RFC v3 03/10): its static cache pins it, and its
/// release runs only after the cache's final release, which a sysfs reader's reference
/// delays past the destroy.
#[test]
fn the_owner_is_released_only_after_the_cache() {
    let (p, _cpu, a) = setup(1, 1);
    let (owner, module_args) = module_owner(&p, "module-x");
    // Unmergeable, so a directory of its own that a reader can hold (an alias is a link).
    let c = a
        .kmem_cache_setup(
            storage(),
            "module-x-cache",
            64,
            module_args,
            SlabFlags::SLAB_NO_MERGE,
        )
        .unwrap();
    assert_eq!(owner.refcount(), 2, "the cache pins its owner");
    // A module's static cache is never merged.
    let same = a
        .kmem_cache_create("same-64", 64, args(), SlabFlags::empty())
        .unwrap();
    assert!(
        !std::ptr::eq(same.primary(), c),
        "not merged into the module's cache"
    );
    // The module unloads while a reader holds the cache's directory across the destroy.
    unload_with_a_reader(&p, owner, "module-x-cache", || {
        // SAFETY: the only handle of its first name; nothing uses the cache afterwards.
        unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(c)) }.unwrap();
    });
}

#[test]
fn static_storage_can_be_set_up_again_after_its_module_cache_is_destroyed() {
    let (p, _cpu, a) = setup(1, 1);
    let (owner, module_args) = module_owner(&p, "mod-y");
    let st = storage();
    let c = a
        .kmem_cache_setup(st, "mod-y-cache", 96, module_args, SlabFlags::empty())
        .unwrap();
    // SAFETY: nothing uses it afterwards.
    unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(c)) }.unwrap();
    assert_eq!(owner.refcount(), 1, "the pin is dropped at the release");
    let c = a
        .kmem_cache_setup(st, "mod-y-cache", 96, module_args, SlabFlags::empty())
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(o).unwrap() };
}

/// A module's static cache that finds no compatible primary gets a hidden dynamic one, which
/// later caches merge into; it goes when its last user does.
#[test]
fn a_module_static_cache_gets_a_hidden_primary_that_later_caches_merge_into() {
    let (p, _cpu, a) = setup(1, 1);
    let pages = p.pages_in_use();
    let (_, module_args) = module_owner(&p, "mod-z");
    let st = a
        .kmem_cache_setup(
            storage(),
            "mod-z-cache",
            232,
            module_args,
            SlabFlags::empty(),
        )
        .unwrap();
    let hidden = st.primary();
    assert!(!std::ptr::eq(hidden, st), "a primary was made for it");
    assert!(
        !hidden.flags().contains(SlabFlags::SLAB_PREALLOCATED),
        "a dynamic one"
    );
    let late = a
        .kmem_cache_create("late-232", 232, args(), SlabFlags::empty())
        .unwrap();
    assert!(
        std::ptr::eq(late.primary(), hidden),
        "a later cache merges into the hidden primary"
    );
    let o = st.alloc(Gfp::KERNEL).unwrap();
    let q = late.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours, each freed through the other cache.
    unsafe {
        late.free(o).unwrap();
        st.free(q).unwrap();
    }
    // The module goes first: the hidden primary stays for `late-232`.
    // SAFETY: nothing uses the module's cache afterwards.
    unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(st)) }.unwrap();
    assert!(a.find_cache("mod-z-cache").is_none());
    let o = late.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { late.free(o).unwrap() };
    // Its last user goes: so does the hidden primary, and its pages.
    // SAFETY: nothing uses the cache afterwards.
    unsafe { a.kmem_cache_destroy(late) }.unwrap();
    assert_eq!(p.pages_in_use(), pages);
}

/// Destroying the primary's own name while a static alias uses it keeps the primary; the
/// alias's destroy then frees it.
#[test]
fn the_primary_lives_while_a_static_alias_uses_it() {
    let (p, _cpu, a) = setup(1, 1);
    let pages = p.pages_in_use();
    let (_, module_args) = module_owner(&p, "mod-w");
    let dynamic = a
        .kmem_cache_create("first-232", 232, args(), SlabFlags::empty())
        .unwrap();
    let st = a
        .kmem_cache_setup(
            storage(),
            "mod-w-cache",
            232,
            module_args,
            SlabFlags::empty(),
        )
        .unwrap();
    assert!(std::ptr::eq(st.primary(), &*dynamic));
    // SAFETY: nothing uses `first-232` through its handle afterwards.
    unsafe { a.kmem_cache_destroy(dynamic) }.unwrap();
    let o = st.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { st.free(o).unwrap() };
    // SAFETY: nothing uses the module's cache afterwards.
    unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(st)) }.unwrap();
    assert_eq!(
        p.pages_in_use(),
        pages,
        "the primary went with its last user"
    );
}

/// Four CPUs allocate through a static alias and its primary, tag each object, check the tag
/// and free it through the other cache: no object is handed out twice or damaged, and the
/// counts come back.
#[test]
fn a_storm_through_alias_and_primary_corrupts_nothing() {
    // Four storming CPUs, besides the main thread's.
    let (p, _cpu, a) = setup(5, 1);
    let pages = p.pages_in_use();
    let dynamic = a
        .kmem_cache_create("storm-primary", 240, args(), SlabFlags::empty())
        .unwrap()
        .leak();
    let st = a
        .kmem_cache_setup(storage(), "storm-static", 240, args(), SlabFlags::empty())
        .unwrap();
    assert!(std::ptr::eq(st.primary(), dynamic));
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let p = p.clone();
            s.spawn(move || {
                let _cpu = p.register_cpu();
                let mut live = Vec::new();
                for i in 0..4000u64 {
                    let (from, tag) = if i % 2 == 0 {
                        (st, t)
                    } else {
                        (dynamic, t + 100)
                    };
                    let o = from.alloc(Gfp::KERNEL).unwrap();
                    // SAFETY: ours, 240 bytes.
                    unsafe { o.as_ptr().cast::<u64>().write(tag << 32 | i) };
                    live.push((o, tag << 32 | i));
                    if live.len() > 64 {
                        let (o, want) = live.remove(i as usize % live.len());
                        // SAFETY: ours.
                        assert_eq!(unsafe { o.as_ptr().cast::<u64>().read() }, want);
                        let to = if want & 1 == 0 { dynamic } else { st };
                        // SAFETY: ours, not used afterwards.
                        unsafe { to.free(o).unwrap() };
                    }
                }
                for (o, want) in live {
                    // SAFETY: ours.
                    assert_eq!(unsafe { o.as_ptr().cast::<u64>().read() }, want);
                    // SAFETY: ours.
                    unsafe { st.free(o).unwrap() };
                }
                // A host CPU's sheaves are flushed by that CPU (through the alias: the
                // primary's).
                st.shrink();
            });
        }
    });
    dynamic.shrink();
    assert_eq!(dynamic.slabinfo().active_objs, 0);
    assert_eq!(dynamic.slabinfo().num_slabs, 0);
    assert!(p.pages_in_use() >= pages);
}

/// The memory merging saves (the measure): 32 caches of 8 geometries, half of them
/// static, 100 objects each; slab pages with merging, under `slab_nomerge`, and with the RFC's
/// rule (static caches never merge, on either side). Prints the three figures.
#[test]
fn merging_saves_slab_pages_printed() {
    const SIZES: [usize; 8] = [24, 40, 88, 112, 152, 184, 232, 272];
    let run = |nomerge: bool, rfc_rule: bool| -> usize {
        let p = HostPlatform::new(slab::host::HostConfig {
            cpus: 1,
            nodes: 1,
            pages_per_node: 8192,
        });
        let _cpu = p.register_cpu();
        let options = slab::SlabOptions {
            nomerge,
            ..Default::default()
        };
        let a = slab::SlabAllocator::with_options(p.clone(), options).unwrap();
        let before = p.pages_in_use();
        let mut objs = Vec::new();
        for (g, &size) in SIZES.iter().enumerate() {
            for k in 0..4 {
                let name: &'static str = Box::leak(format!("g{g}-{k}").into_boxed_str());
                let c = if k % 2 == 0 {
                    let flags = if rfc_rule {
                        SlabFlags::SLAB_NO_MERGE
                    } else {
                        SlabFlags::empty()
                    };
                    a.kmem_cache_setup(storage(), name, size, args(), flags)
                        .unwrap()
                } else {
                    a.kmem_cache_create(name, size, args(), SlabFlags::empty())
                        .unwrap()
                        .leak()
                };
                for _ in 0..100 {
                    objs.push((c, c.alloc(Gfp::KERNEL).unwrap()));
                }
            }
        }
        let pages = p.pages_in_use() - before;
        for (c, o) in objs {
            // SAFETY: ours.
            unsafe { c.free(o).unwrap() };
        }
        pages
    };
    let merged = run(false, false);
    let rfc = run(false, true);
    let nomerge = run(true, false);
    eprintln!(
        "32 caches (8 geometries, half static) x 100 objects, slab pages: merging {merged}, \
         RFC rule (static caches unmergeable) {rfc}, slab_nomerge {nomerge}"
    );
    assert!(merged < rfc && rfc < nomerge, "{merged} {rfc} {nomerge}");
}
