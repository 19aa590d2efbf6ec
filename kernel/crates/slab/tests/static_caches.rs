//! Static caches (`kmem_cache_setup`, the RFC "static kmem_cache instances for core caches"):
//! set up in place, self-named in sysfs, never aliases but merge targets when built in,
//! refused twice, never destroyed when built in, and pinning a module owner until their final
//! release.

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::*;
use kobject::{KObject, KobjType};
use slab::host::HostPlatform;
use slab::platform::Platform;
use slab::{
    DestroyError, Gfp, KmemCacheArgs, KmemCacheHandle, KmemCacheStatic, SlabError, SlabFlags,
};

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
    assert!(!std::ptr::eq(one, two), "setup never returns an alias");
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
    assert!(std::ptr::eq(&*dynamic, st), "merged into the static cache");
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

#[test]
fn setup_does_not_alias_an_existing_cache() {
    let (_p, _cpu, a) = setup(1, 1);
    let dynamic = a
        .kmem_cache_create("dynamic", 208, args(), SlabFlags::empty())
        .unwrap();
    let st = a
        .kmem_cache_setup(storage(), "static", 208, args(), SlabFlags::empty())
        .unwrap();
    assert!(!std::ptr::eq(&*dynamic, st));
    assert_eq!(st.name(), "static");
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
    assert_eq!(r, Err(DestroyError::Permanent { name: "forever" }));
    assert!(a.find_cache("forever").is_some());
}

static OWNER_RELEASES: AtomicUsize = AtomicUsize::new(0);

/// The owner's release: counts (the owner is leaked, as a module's memory would be freed by
/// its loader after this).
unsafe fn owner_release(_: NonNull<KObject>) {
    OWNER_RELEASES.fetch_add(1, SeqCst);
}

static OWNER_TYPE: KobjType = KobjType {
    release: Some(owner_release),
    attrs: &[],
};

/// A plain kobject standing in for a module (RFC v3 03/10): its static cache pins it, and its
/// release runs only after the cache's final release, which a sysfs reader's reference
/// delays past the destroy.
#[test]
fn the_owner_is_released_only_after_the_cache() {
    let (p, _cpu, a) = setup(1, 1);
    let owner: &'static KObject = Box::leak(Box::new(KObject::new()));
    // SAFETY: leaked: never moves or goes away.
    unsafe {
        p.sysfs()
            .kobject_init_and_add(NonNull::from(owner), &OWNER_TYPE, None, "module-x")
    }
    .unwrap();
    let module_args = KmemCacheArgs {
        owner: Some(owner),
        ..args()
    };
    let c = a
        .kmem_cache_setup(
            storage(),
            "module-x-cache",
            64,
            module_args,
            SlabFlags::empty(),
        )
        .unwrap();
    assert_eq!(owner.refcount(), 2, "the cache pins its owner");
    // A module's static cache is never merged.
    let same = a
        .kmem_cache_create("same-64", 64, args(), SlabFlags::empty())
        .unwrap();
    assert!(
        !std::ptr::eq(&*same, c),
        "not merged into the module's cache"
    );
    // The module drops its own reference (unload begins): the cache still pins it.
    let before = OWNER_RELEASES.load(SeqCst);
    // SAFETY: the owner is leaked; this is the module's reference.
    unsafe { p.sysfs().kobject_put(NonNull::from(owner)) }.unwrap();
    assert_eq!(OWNER_RELEASES.load(SeqCst), before);
    // A reader holds the cache's kobject while the module destroys the cache.
    let sys = p.sysfs();
    let kset = p.slab_sysfs().expect("the host has sysfs").kset;
    let held = sys
        .kset_find_obj(kset, "module-x-cache")
        .expect("the cache's directory");
    // SAFETY: the only handle of its first name; nothing uses the cache afterwards.
    unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(c)) }.unwrap();
    assert_eq!(
        OWNER_RELEASES.load(SeqCst),
        before,
        "the cache is not released yet"
    );
    // SAFETY: the reference taken above, the last one on the cache.
    unsafe { sys.kobject_put(held) }.unwrap();
    assert_eq!(
        OWNER_RELEASES.load(SeqCst),
        before + 1,
        "then the owner goes"
    );
}

#[test]
fn static_storage_can_be_set_up_again_after_its_module_cache_is_destroyed() {
    let (p, _cpu, a) = setup(1, 1);
    let owner: &'static KObject = Box::leak(Box::new(KObject::new()));
    // SAFETY: leaked.
    unsafe {
        p.sysfs()
            .kobject_init_and_add(NonNull::from(owner), &OWNER_TYPE, None, "mod-y")
    }
    .unwrap();
    let st = storage();
    let module_args = KmemCacheArgs {
        owner: Some(owner),
        ..args()
    };
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
