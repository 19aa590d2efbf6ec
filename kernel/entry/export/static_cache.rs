//! Static caches for modules (the RFC's `kmem_cache_setup`, v3 02/10 and 03/10): a cache whose
//! `struct kmem_cache` is the module's own static storage (`struct kmem_cache_opaque`, in its
//! `.data`), set up in place, owned by the module: the cache pins the module's kobject from
//! setup to its final release, and the unload waits for that, so the storage outlives the
//! cache even when the module's `cleanup_module` destroys it with objects still in `kfree_rcu`
//! flight (the destroy then finishes asynchronously, after the module has left `lsmod`).

use core::ffi::{c_char, c_uint, c_void};
use core::ptr::null_mut;

use kcore::memory::kmalloc::{KMEM_CACHE_ALIGN, KMEM_CACHE_SIZE, KernelPlatform, slab};
use kcore::module::{KernelSymbol, pin_module_data};
use slab::{Ctor, KmemCacheArgs, KmemCacheStatic};

/// This file's exports.
pub(super) static SYMBOLS: [KernelSymbol; 2] = [
    export_symbol!(kmem_cache_setup),
    export_symbol!(kmem_cache_setup_usercopy),
];

/// Sets up the static cache `cache` of module `owner` (`THIS_MODULE`; C's
/// `KMEM_CACHE_SETUP(...)` passes it) and returns it as a `struct kmem_cache *`, or null with
/// a message: for storage that is not inside the module's data or not aligned, a module that
/// is not loaded or is going away, a null or non-UTF-8 name, unknown flag bits, or what
/// `kmem_cache_create` refuses. Setting up the same storage twice is refused.
///
/// # Safety
/// `name` is null or a NUL-terminated string; `ctor`, if any, a function of the module that
/// may be called on every new object until the cache is destroyed; `cache` is used by no one
/// else (the kernel checks it lies in `owner`'s data, not what the module keeps there).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_setup(
    cache: *mut c_void,
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: c_uint,
    ctor: Option<Ctor>,
    owner: *const c_void,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { setup(cache, name, size, align, flags, 0, 0, ctor, owner) }
}

/// [`kmem_cache_setup`] with a usercopy region (Linux's `kmem_cache_create_usercopy`'s
/// `useroffset` and `usersize`).
///
/// # Safety
/// As for [`kmem_cache_setup`].
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kmem_cache_setup_usercopy(
    cache: *mut c_void,
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: c_uint,
    useroffset: c_uint,
    usersize: c_uint,
    ctor: Option<Ctor>,
    owner: *const c_void,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe {
        setup(
            cache, name, size, align, flags, useroffset, usersize, ctor, owner,
        )
    }
}

/// # Safety
/// As for [`kmem_cache_setup`].
#[allow(clippy::too_many_arguments)]
unsafe fn setup(
    cache: *mut c_void,
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: c_uint,
    useroffset: c_uint,
    usersize: c_uint,
    ctor: Option<Ctor>,
    owner: *const c_void,
) -> *mut c_void {
    // SAFETY: forwarded contract (`name` null or NUL-terminated).
    let Some((name, flags)) =
        (unsafe { super::slab::name_and_flags("kmem_cache_setup", name, flags) })
    else {
        return null_mut();
    };
    // The module's kobject, pinned for the call; the storage checked to be its data.
    let pin = match pin_module_data(
        owner as usize,
        cache as usize,
        KMEM_CACHE_SIZE,
        KMEM_CACHE_ALIGN,
    ) {
        Ok(pin) => pin,
        Err(e) => {
            log::error!("kmem_cache_setup({name}) at {cache:p} for module {owner:p}: {e}");
            return null_mut();
        }
    };
    // SAFETY: `cache` lies in the owner module's data region, aligned for a `KmemCache`
    // (checked above), and nothing else uses it (caller contract). That memory stays mapped
    // until the module's kobject is released: the pin covers this call, and the cache pins
    // the kobject itself (`args.owner`) from setup to its final release, which is also when
    // the allocator stops using the storage. So the storage, and the owner below, are in
    // memory for as long as the allocator uses them, which is what `'static` stands for here.
    let storage: &'static KmemCacheStatic<KernelPlatform> = unsafe { &*cache.cast() };
    // SAFETY: as above: the kobject lives in the module's `struct module`, kept in memory
    // until its last reference (the cache's, taken during setup) is put.
    let owner_kobj: &'static kcore::kobject::KObject =
        unsafe { &*core::ptr::from_ref(pin.kobject()) };
    let args = KmemCacheArgs {
        align: align as usize,
        useroffset: useroffset as usize,
        usersize: usersize as usize,
        ctor,
        owner: Some(owner_kobj),
        ..Default::default()
    };
    let result = slab().kmem_cache_setup(storage, name, size as usize, args, flags);
    drop(pin);
    match result {
        Ok(c) => core::ptr::from_ref(c).cast_mut().cast(),
        Err(e) => {
            log::error!("kmem_cache_setup({name}): {e:?}");
            null_mut()
        }
    }
}
