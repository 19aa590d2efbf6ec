//! Ready for code that can be unloaded (issue #17 §4): a cache's name is copied unless it
//! lives for ever in the kernel image (`kstrdup_const`), so a module's string can go with the
//! module; the copy's allocation failing is an error; every cache a module creates, dynamic
//! ones included, pins the module's kobject until its final release and is listed by
//! `caches_of`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr::NonNull;

use common::*;
use slab::host::HostPlatform;
use slab::{
    CacheState, DestroyError, Gfp, KmemCache, KmemCacheArgs, KmemCacheHandle, KmemCacheStatic,
    SlabError, SlabFlags,
};

/// The system allocator, failing the current thread's next allocation when asked to.
struct FailNext;

std::thread_local! {
    /// Whether this thread's next allocation fails.
    static FAIL_NEXT: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator, or returns null (an allocation failure); the flag
// is a const-initialised thread-local without destructor, so reaching it allocates nothing.
unsafe impl GlobalAlloc for FailNext {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if FAIL_NEXT.with(|f| f.replace(false)) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: FailNext = FailNext;

/// A module's string: a heap buffer, and a pointer to write over it once the module is "gone".
fn module_string(s: &str) -> (&'static str, *mut u8) {
    let buf: &'static mut str = String::leak(String::from(s));
    let ptr = buf.as_mut_ptr();
    (buf, ptr)
}

/// Overwrites the `len` bytes at `ptr` (the module's memory reused after unload).
///
/// # Safety
/// `ptr` is a [`module_string`] of `len` bytes, no reference to which is used afterwards.
unsafe fn overwrite(ptr: *mut u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { ptr.write_bytes(b'X', len) };
}

/// A name in a heap buffer, overwritten just after `kmem_cache_create`, still reads right
/// through `name()`, `/sys/kernel/slab`, slabinfo, the listings and a `DestroyError`.
#[test]
fn a_name_overwritten_after_create_still_reads_right() {
    let (_p, _cpu, a) = setup(1, 1);
    let (name, ptr) = module_string("mod_buffers");
    let c = a.kmem_cache_create(name, 136, args(), no_merge()).unwrap();
    // SAFETY: `name` is not used again.
    unsafe { overwrite(ptr, "mod_buffers".len()) };
    assert_eq!(c.name(), "mod_buffers");
    assert!(c.cache_name().is_copy(), "the host copies every name");
    assert!(a.find_cache("mod_buffers").is_some());
    assert_eq!(a.cache_names(&c), ["mod_buffers"]);
    assert_eq!(
        slab::sysfs::resolve(&a, "mod_buffers").as_deref(),
        Ok("mod_buffers")
    );
    assert_eq!(
        slab::sysfs::read(&a, "mod_buffers/object_size").as_deref(),
        Ok("136\n")
    );
    let mut info = String::new();
    a.slabinfo_show(&mut info).unwrap();
    assert!(
        info.lines().any(|l| l.starts_with("mod_buffers ")),
        "{info}"
    );
    assert!(!info.contains("XXXX"), "{info}");
    // An object left behind: the error names the cache.
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: the only handle; the cache stays (objects remain).
    let err = unsafe { a.kmem_cache_destroy(c) }.unwrap_err();
    let DestroyError::ObjectsRemaining { name, cache, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(name, "mod_buffers");
    // SAFETY: allocated above from this cache, which was kept for it.
    unsafe { cache.free(o).unwrap() };
}

/// A merged alias and a static cache keep copies of their names too, and the name a
/// `DestroyError` carries outlives the cache that had it.
#[test]
fn aliases_static_caches_and_errors_keep_their_own_copies() {
    static STORAGE: KmemCacheStatic<HostPlatform> = KmemCacheStatic::new();
    let (_p, _cpu, a) = setup(1, 1);
    let primary = a
        .kmem_cache_create("prim-72", 72, args(), SlabFlags::empty())
        .unwrap();
    let (alias_name, alias_ptr) = module_string("mod_alias");
    let alias = a
        .kmem_cache_create(alias_name, 72, args(), SlabFlags::empty())
        .unwrap();
    let (static_name, static_ptr) = module_string("mod_static");
    let st = a
        .kmem_cache_setup(&STORAGE, static_name, 300, args(), no_merge())
        .unwrap();
    // SAFETY: neither name is used again.
    unsafe {
        overwrite(alias_ptr, "mod_alias".len());
        overwrite(static_ptr, "mod_static".len());
    }
    assert!(std::ptr::eq(alias.primary(), &*primary), "merged");
    assert_eq!(alias.name(), "mod_alias");
    assert_eq!(a.cache_names(&primary), ["prim-72", "mod_alias"]);
    assert_eq!(
        slab::sysfs::resolve(&a, "mod_alias"),
        slab::sysfs::resolve(&a, "prim-72")
    );
    assert_eq!(st.name(), "mod_static");
    assert_eq!(
        slab::sysfs::resolve(&a, "mod_static").as_deref(),
        Ok("mod_static")
    );
    // A built-in static cache is permanent: the error says its name.
    // SAFETY: refused: the cache stays and is not touched.
    let err = unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(st)) }.unwrap_err();
    assert_eq!(
        err,
        DestroyError::Permanent {
            name: "mod_static".into()
        }
    );
    // The alias's name, kept by a listing, outlives the alias.
    let names = a.cache_names(&primary);
    // SAFETY: the alias's only handle; nothing uses it afterwards.
    unsafe { a.kmem_cache_destroy(alias) }.unwrap();
    assert_eq!(names[1], "mod_alias");
    assert_eq!(a.cache_names(&primary), ["prim-72"]);
}

/// The copy of a name is an allocation: its failure is a clean error, nothing listed.
#[test]
fn a_failed_copy_of_the_name_is_an_error_not_a_panic() {
    let (_p, _cpu, a) = setup(1, 1);
    let caches = a.nr_caches();
    let entries = slab::sysfs::list(&a).len();
    FAIL_NEXT.with(|f| f.set(true));
    let r = a.kmem_cache_create("no_room_for_me", 64, args(), no_merge());
    FAIL_NEXT.with(|f| f.set(false));
    assert_eq!(r.err(), Some(SlabError::NoMemory));
    assert_eq!(a.nr_caches(), caches);
    assert_eq!(slab::sysfs::list(&a).len(), entries);
    assert!(a.find_cache("no_room_for_me").is_none());
    // Once memory is back, the same name works.
    let c = a
        .kmem_cache_create("no_room_for_me", 64, args(), no_merge())
        .unwrap();
    // SAFETY: nothing uses it afterwards.
    unsafe { a.kmem_cache_destroy(c) }.unwrap();
}

/// A module's dynamic cache pins the module's kobject from `kmem_cache_create` to its final
/// release, which a sysfs reader delays past the destroy; it is never merged, either way;
/// `caches_of` lists it meanwhile.
#[test]
fn a_dynamic_cache_pins_its_owner_until_its_final_release() {
    let (p, _cpu, a) = setup(1, 1);
    let (owner, module_args) = module_owner(&p, "mod-dyn");
    let _before_any = a
        .kmem_cache_create("before-88", 88, args(), SlabFlags::empty())
        .unwrap();
    let c = a
        .kmem_cache_create("mod-dyn-88", 88, module_args, SlabFlags::empty())
        .unwrap();
    assert_eq!(owner.refcount(), 2, "the cache pins its owner");
    assert!(
        std::ptr::eq(c.primary(), &*c),
        "not merged into an existing cache"
    );
    let after = a
        .kmem_cache_create("after-88", 88, args(), SlabFlags::empty())
        .unwrap();
    assert!(
        !std::ptr::eq(after.primary(), &*c),
        "nothing merges into a module's cache"
    );
    assert_eq!(
        a.caches_of(owner),
        [("mod-dyn-88".into(), CacheState::Listed)]
    );
    // The module unloads while a reader holds the cache's directory across the destroy.
    unload_with_a_reader(&p, owner, "mod-dyn-88", || {
        // SAFETY: the only handle; nothing uses the cache afterwards.
        unsafe { a.kmem_cache_destroy(c) }.unwrap();
        assert!(a.caches_of(owner).is_empty(), "off the list");
    });
}

/// The asynchronous destroy of a module's cache (objects in `kfree_rcu` flight) keeps the
/// pin until the work item releases the cache; `caches_of` says it is pending meanwhile.
#[test]
fn an_asynchronous_destroy_keeps_the_owner_pinned_until_it_finishes() {
    let (p, _cpu, a) = setup(1, 1);
    let (owner, module_args) = module_owner(&p, "mod-rcu");
    let c = a
        .kmem_cache_create("mod-rcu-64", 64, module_args, no_merge())
        .unwrap();
    let cache: &KmemCache<HostPlatform> = &c;
    for _ in 0..3 {
        let o = cache.alloc(Gfp::KERNEL).unwrap();
        // SAFETY: ours; not used after.
        unsafe { cache.free_rcu(o) };
    }
    // SAFETY: the only handle; nothing uses the cache afterwards.
    unsafe { a.kmem_cache_destroy(c) }.unwrap();
    assert_eq!(a.nr_destroy_pending(), 1, "waits for the objects in flight");
    assert_eq!(
        a.caches_of(owner),
        [("mod-rcu-64".into(), CacheState::DestroyPending)]
    );
    assert_eq!(owner.refcount(), 2, "still pinned");
    // The work item waits for the grace period, releases the cache, then its pin.
    assert_eq!(p.run_work(), 1);
    assert_eq!(a.nr_destroy_pending(), 0);
    assert!(a.caches_of(owner).is_empty());
    assert_eq!(owner.refcount(), 1, "the pin is dropped at the release");
}

/// A dead owner is refused by `kmem_cache_create` as by setup, leaving nothing behind, and a
/// failed creation gives the pin back.
#[test]
fn a_dead_owner_is_refused_and_a_failed_creation_unpins() {
    let (p, _cpu, a) = setup(1, 1);
    let (owner, module_args) = module_owner(&p, "mod-fail");
    // Bad arguments: refused before the pin.
    let bad = KmemCacheArgs {
        align: 3,
        ..module_args
    };
    assert!(a.kmem_cache_create("mod-bad", 64, bad, no_merge()).is_err());
    assert_eq!(owner.refcount(), 1, "no pin left by a refused creation");
    // SAFETY: the owner is leaked; this is its only reference, so it is released.
    unsafe { p.sysfs().kobject_put(NonNull::from(owner)) }.unwrap();
    let caches = a.nr_caches();
    let r = a.kmem_cache_create("mod-dead", 64, module_args, no_merge());
    assert!(r.is_err(), "a dead owner is refused");
    assert_eq!(a.nr_caches(), caches);
    assert!(a.find_cache("mod-dead").is_none());
}
