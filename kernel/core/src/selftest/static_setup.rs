//! Static slab caches on target: placed in `.data`, set up in place and self-named, refused
//! twice, not destroyable when built in.

use core::sync::atomic::AtomicU64;

use slab::{Gfp, KmemCacheHandle, SlabError, SlabFlags};

use crate::kobject::sysfs;
use crate::memory::kmalloc::slab;
use crate::memory::static_cache::{KmemCacheOpaque, in_data_section};

/// A kernel object of a static cache in the tests.
#[allow(dead_code)]
struct KtestThing {
    id: u64,
    name: [u8; 48],
    user: [u8; 32],
}

static THINGS: KmemCacheOpaque = KmemCacheOpaque::new();
static OTHER_THINGS: KmemCacheOpaque = KmemCacheOpaque::new();

#[crate::ktest]
fn a_static_cache_lies_in_data_by_the_linker_symbols() {
    static ZERO: AtomicU64 = AtomicU64::new(0);
    assert!(THINGS.in_data(), "a static cache's storage is in .data");
    assert!(OTHER_THINGS.in_data());
    // The check tells sections apart: an all-zero static is in .bss, code is in .text.
    assert!(
        !in_data_section(&ZERO as *const AtomicU64 as usize),
        "zeros go to .bss"
    );
    let code: fn() = a_static_cache_lies_in_data_by_the_linker_symbols;
    assert!(
        !in_data_section(code as *const () as usize),
        "code is in .text"
    );
}

#[crate::ktest]
fn static_caches_are_set_up_in_place_self_named_and_refused_twice() {
    let c = crate::kmem_cache_setup_usercopy!(THINGS, KtestThing, SlabFlags::empty(), user)
        .expect("setup");
    assert!(core::ptr::eq(
        c,
        // SAFETY: set up just above.
        unsafe { THINGS.to_kmem_cache() }
    ));
    assert!(c.flags().contains(SlabFlags::SLAB_PREALLOCATED));
    assert_eq!(c.name(), "KtestThing");
    assert_eq!(
        c.usercopy_region(),
        (core::mem::offset_of!(KtestThing, user), 32)
    );
    let o = c.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: ours.
    unsafe { c.free(o) }.expect("free");
    // Self-named: a directory, not a link to a unique id.
    assert!(sysfs().is_dir("/kernel/slab/KtestThing"));
    assert!(sysfs().read_link("/kernel/slab/KtestThing").is_err());
    // A second static cache of the same geometry: its own directory.
    let other = OTHER_THINGS
        .setup("ktest-other-things", 88, 8, SlabFlags::empty(), None)
        .expect("setup");
    assert!(!core::ptr::eq(c, other));
    assert!(sysfs().is_dir("/kernel/slab/ktest-other-things"));
    // Twice: refused, the cache untouched.
    assert_eq!(
        THINGS.setup("again", 64, 8, SlabFlags::empty(), None).err(),
        Some(SlabError::AlreadySetUp)
    );
    assert_eq!(c.name(), "KtestThing");
    // A built-in static cache cannot be destroyed.
    // SAFETY: the only handle of its first name; destroy is refused, nothing is freed.
    let r = unsafe { slab().kmem_cache_destroy(KmemCacheHandle::from_ref(c)) };
    assert!(matches!(
        r,
        Err(slab::DestroyError::Permanent { name }) if name == "KtestThing"
    ));
    let o = c.alloc(Gfp::KERNEL).expect("still works");
    // SAFETY: ours.
    unsafe { c.free(o) }.expect("free");
}

#[crate::ktest]
fn threads_come_from_the_static_task_struct_cache() {
    use crate::memory::cache_alloc::CacheTag;
    let t = crate::sched::spawn("ktest-cached-thread", || 7).expect("spawn");
    let cache = crate::sched::ThreadCache::cache();
    let ptr = core::ptr::NonNull::from(&**t.thread()).cast::<u8>();
    assert!(cache.owns(ptr), "the thread is an object of task_struct");
    let c = cache.cache().expect("set up by the first thread");
    assert_eq!(c.name(), "task_struct");
    assert!(c.flags().contains(SlabFlags::SLAB_PREALLOCATED));
    assert!(in_data_section(core::ptr::from_ref(c) as usize), "in .data");
    if core::ptr::eq(c.primary(), c) {
        assert!(
            sysfs().read_link("/kernel/slab/task_struct").is_err(),
            "self-named"
        );
    } else {
        // An alias (of kmalloc-256 with merging on): a link to its primary's directory, which
        // counts it in its `aliases`, like a merged name.
        let link = sysfs()
            .read_link("/kernel/slab/task_struct")
            .expect("a link");
        let name = alloc::format!("/kernel/slab/{}", c.primary().name());
        let primary = sysfs().read_link(&name).unwrap_or(name);
        assert_eq!(link, primary, "to the primary's directory");
    }
    assert!(sysfs().is_dir("/kernel/slab/task_struct"));
    assert_eq!(t.join(), 7);
}
