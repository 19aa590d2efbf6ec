//! Misuse of the allocator's API (issue #18): what safe code or a careless caller could once
//! turn into a use after free, and mistakes that must be refused or reported. (That the
//! reference `kmem_cache_setup` returns cannot outlive the allocator is a `compile_fail`
//! example in its documentation.)

mod common;

use std::ptr::NonNull;

use common::{args, setup};
use kobject::{KObject, KobjType};
use slab::host::HostPlatform;
use slab::{
    DestroyError, Gfp, KmemCacheArgs, KmemCacheHandle, KmemCacheStatic, SlabAllocator,
    SlabErrorKind, SlabFlags,
};

#[test]
fn an_allocator_can_be_dropped_on_a_thread_that_is_no_cpu() {
    let (p, cpu, a) = setup(2, 1);
    let c = a
        .kmem_cache_create("dropped", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let objs: Vec<_> = (0..200).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    for o in objs {
        // SAFETY: ours, not used again: RCU callbacks (full `rcu_free` sheaves) are pending
        // when the allocator goes, and its drop runs them.
        unsafe { c.free_rcu(o) };
    }
    assert!(p.rcu_callbacks_pending() > 0);
    let _ = c.leak();
    drop(cpu);
    let dropped = std::thread::spawn(move || drop(a)).join();
    assert!(dropped.is_ok(), "the drop panicked");
    assert_eq!(p.rcu_callbacks_pending(), 0, "the callbacks ran");
}

#[test]
fn destroy_keeps_a_cache_whose_prefilled_sheaf_is_out() {
    let (p, _cpu, a) = setup(1, 1);
    for drained in [false, true] {
        let c = a
            .kmem_cache_create("prefilled", 64, args(), SlabFlags::SLAB_NO_MERGE)
            .unwrap();
        let mut sheaf = c.prefill_sheaf(Gfp::KERNEL, 4).expect("memory");
        if drained {
            while let Some(o) = c.alloc_from_sheaf(Gfp::KERNEL, &mut sheaf) {
                // SAFETY: ours, not used again.
                unsafe { c.free(o) }.unwrap();
            }
        }
        // SAFETY: no reference to the cache is used during the call; the sheaf is the bug.
        let r = unsafe { a.kmem_cache_destroy(c) };
        let Err(DestroyError::ObjectsRemaining { objects, cache, .. }) = r else {
            panic!("destroyed with a prefilled sheaf out (drained: {drained}): {r:?}");
        };
        assert!(!objects.is_empty(), "the sheaf is listed at least");
        // The cache is kept: the sheaf's memory still belongs to a live cache, and it can be
        // given back.
        for &o in &objects {
            let o = NonNull::new(o as *mut u8).unwrap();
            assert!(a.cache_of(o).is_some(), "{o:?} in a live cache");
        }
        cache.return_sheaf(sheaf).expect("its own sheaf");
    }
    let _ = p;
}

#[test]
fn a_name_destroyed_twice_is_refused_and_the_alias_keeps_the_cache() {
    let (_p, _cpu, a) = setup(1, 1);
    // 200 bytes: no kmalloc cache is close enough to merge with, so "first" is a primary.
    let first = a
        .kmem_cache_create("first", 200, args(), SlabFlags::empty())
        .unwrap();
    let alias = a
        .kmem_cache_create("second", 200, args(), SlabFlags::empty())
        .unwrap();
    let primary = alias.primary();
    assert!(std::ptr::eq(primary, &*first), "merged into the first");
    assert_eq!(primary.refcount(), 2);
    // SAFETY: nothing borrowed from the handle is used afterwards.
    unsafe { a.kmem_cache_destroy(first) }.expect("the first name goes");
    assert_eq!(primary.refcount(), 1, "the alias's reference");
    // SAFETY: a second handle for a name already destroyed: the misuse under test, which
    // must change nothing.
    let again = unsafe { KmemCacheHandle::from_ref(primary) };
    // SAFETY: as above.
    let r = unsafe { a.kmem_cache_destroy(again) };
    assert_eq!(
        r,
        Err(DestroyError::AlreadyDestroyed {
            name: "first".into()
        })
    );
    assert_eq!(primary.refcount(), 1, "the alias's reference is untouched");
    let o = alias.alloc(Gfp::KERNEL).expect("the primary is alive");
    // SAFETY: ours.
    unsafe { alias.free(o) }.unwrap();
    // SAFETY: nothing borrowed from the alias is used afterwards.
    unsafe { a.kmem_cache_destroy(alias) }.expect("the last reference goes");
}

/// Counts nothing: the owner is leaked, as a module's memory is freed by its loader.
unsafe fn owner_release(_: NonNull<KObject>) {}

static OWNER_TYPE: KobjType = KobjType {
    release: Some(owner_release),
    attrs: &[],
    dynamic: None,
};

#[test]
fn a_hidden_primary_does_not_keep_the_module_s_name() {
    static STORAGE: KmemCacheStatic<HostPlatform> = KmemCacheStatic::new();
    let (p, _cpu, a) = setup(1, 1);
    let owner: &'static KObject = Box::leak(Box::new(KObject::new()));
    // SAFETY: leaked: never moves or goes away.
    unsafe {
        p.sysfs()
            .kobject_init_and_add(NonNull::from(owner), &OWNER_TYPE, None, "module")
    }
    .unwrap();
    // The module's name lives in its memory (here: a heap string).
    let name: &'static str = String::leak(String::from("module_things"));
    let module_args = KmemCacheArgs {
        owner: Some(owner),
        ..args()
    };
    // 200 bytes: nothing to merge into, so a hidden primary is made.
    let c = a
        .kmem_cache_setup(&STORAGE, name, 200, module_args, SlabFlags::empty())
        .unwrap();
    let hidden = c.primary();
    assert!(!std::ptr::eq(hidden, c), "an alias of a hidden primary");
    // A later cache merges into the hidden primary, which then outlives the module's cache.
    let later = a
        .kmem_cache_create("later", 200, args(), SlabFlags::empty())
        .unwrap();
    assert!(std::ptr::eq(later.primary(), hidden));
    // SAFETY: the module's only handle; nothing borrowed from it is used afterwards.
    unsafe { a.kmem_cache_destroy(KmemCacheHandle::from_ref(c)) }.expect("unloaded");
    // SAFETY: the module's own reference; the cache dropped its pin above.
    unsafe { p.sysfs().kobject_put(NonNull::from(owner)) }.unwrap();
    let module_memory = name.as_ptr() as usize..name.as_ptr() as usize + name.len();
    for (cache, aliases) in a.caches() {
        for n in std::iter::once(cache.cache_name()).chain(aliases) {
            assert!(
                !module_memory.contains(&(n.as_ptr() as usize)),
                "{n:?} is the unloaded module's string"
            );
        }
    }
    assert_eq!(hidden.name(), slab::registry::HIDDEN_PRIMARY_NAME);
}

#[test]
fn a_prefilled_sheaf_outliving_its_cache_is_refused_by_a_new_cache_at_its_address() {
    static STORAGE: KmemCacheStatic<HostPlatform> = KmemCacheStatic::new();
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_setup(&STORAGE, "again", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    let mut sheaf = c.prefill_sheaf(Gfp::KERNEL, 4).expect("memory");
    let first = std::ptr::from_ref(c) as usize;
    drop(a);
    // A new allocator on the same platform sets a cache up in the same storage: same address.
    let b = SlabAllocator::new(p.clone()).unwrap();
    let c = b
        .kmem_cache_setup(&STORAGE, "again", 64, args(), SlabFlags::SLAB_NO_MERGE)
        .unwrap();
    assert_eq!(std::ptr::from_ref(c) as usize, first, "the same address");
    assert_eq!(
        c.alloc_from_sheaf(Gfp::KERNEL, &mut sheaf),
        None,
        "another cache's sheaf"
    );
    let (reports, _) = c.reports();
    assert_eq!(
        reports.last().map(|r| r.kind.clone()),
        Some(SlabErrorKind::WrongCache {
            owner: "again".into()
        })
    );
    // The old cache is gone: its sheaf cannot be given back to anyone (its memory stays with
    // the platform, as the old allocator's pages do).
    let _leaked = sheaf;
}
