//! `static_cache_rs`: the `static_cache` example in Rust. A [`kmod::static_cache::StaticCache`]
//! in the module's `.data`, set up on load and filled with `objects` objects; on unload each is
//! given to `kfree_rcu` and the cache destroyed at once, so the kernel finishes the destroy
//! after a grace period and only then frees this module's memory.

#![no_std]

use core::sync::atomic::Ordering::Relaxed;
use kmod::static_cache::{StaticCache, StaticObj};
use kmod::{AtomicI32, Errno, pr_info};

/// An object: the `struct rcu_head` first (offset 0), then the payload.
const OBJECT_SIZE: u32 = 64;

static CACHE: StaticCache = StaticCache::new();
/// The objects, kept between init and exit in a kmalloc'ed array of pointers.
static OBJECTS: core::sync::atomic::AtomicPtr<Option<StaticObj>> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

kmod::module! {
    name: "static_cache_rs",
    license: "GPL",
    description: "A static cache in a Rust module's .data, destroyed with objects in kfree_rcu flight",
    author: "Sheaf",
    init: init,
    exit: exit,
    params: {
        COUNT: AtomicI32 = AtomicI32::new(1000), "objects", 0o444, "objects freed with kfree_rcu on unload";
    },
}

fn init() -> Result<(), Errno> {
    let n = COUNT.load(Relaxed);
    if !(0..=100_000).contains(&n) {
        return Err(Errno::EINVAL);
    }
    CACHE.setup(
        c"static_cache_rs_items",
        OBJECT_SIZE,
        kmod::ffi::SLAB_NO_MERGE,
    )?;
    // A second setup of the same storage is refused.
    if CACHE
        .setup(c"static_cache_rs_twice", OBJECT_SIZE, 0)
        .is_ok()
    {
        return Err(Errno::EINVAL);
    }
    let slots = n as usize;
    let bytes = (slots.max(1)) * size_of::<Option<StaticObj>>();
    // SAFETY: kzalloc has no preconditions; zeroed bytes are `None`s (a null niche).
    let array =
        unsafe { kmod::ffi::kzalloc(bytes, kmod::ffi::GFP_KERNEL) }.cast::<Option<StaticObj>>();
    if array.is_null() {
        let _ = CACHE.destroy();
        return Err(Errno::ENOMEM);
    }
    for i in 0..slots {
        let Some(obj) = CACHE.alloc() else {
            drop_all(array, i);
            // SAFETY: from kzalloc above, freed once.
            unsafe { kmod::ffi::kfree(array.cast()) };
            let _ = CACHE.destroy();
            return Err(Errno::ENOMEM);
        };
        // SAFETY: `i` < `slots`, inside the array, which holds `None` there.
        unsafe { array.add(i).write(Some(obj)) };
    }
    // While objects are live the cache cannot be destroyed.
    if slots > 0 && CACHE.destroy() != Err(Errno::EBUSY) {
        return Err(Errno::EINVAL);
    }
    OBJECTS.store(array, Relaxed);
    pr_info!(
        "static_cache_rs: {} objects of {} bytes in a static cache\n",
        n,
        CACHE.size()
    );
    Ok(())
}

/// Drops the first `n` objects of `array` (freeing them).
fn drop_all(array: *mut Option<StaticObj>, n: usize) {
    for i in 0..n {
        // SAFETY: the first `n` slots hold objects written by `init`, each taken once.
        drop(unsafe { array.add(i).read() });
    }
}

fn exit() {
    let array = OBJECTS.swap(core::ptr::null_mut(), Relaxed);
    let n = COUNT.load(Relaxed).max(0) as usize;
    for i in 0..n {
        // SAFETY: `init` filled every slot; each is taken once, here.
        if let Some(obj) = unsafe { array.add(i).read() } {
            // The head is at offset 0 of a 64-byte object: it fits.
            let _ = obj.kfree_rcu(0);
        }
    }
    // SAFETY: from kzalloc in `init`, freed once.
    unsafe { kmod::ffi::kfree(array.cast()) };
    match CACHE.destroy() {
        Ok(()) => pr_info!(
            "static_cache_rs: destroyed with {} objects in kfree_rcu flight\n",
            n
        ),
        Err(e) => pr_info!("static_cache_rs: destroy refused ({})\n", e.0),
    }
}
