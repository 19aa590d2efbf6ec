//! The slab allocator for modules: `kmalloc` and friends, and slab caches.

use core::ffi::{CStr, c_char, c_uint, c_void};
use core::ptr::{NonNull, null_mut};

use kcore::memory::kmalloc::{KernelPlatform, slab};
use kcore::module::KernelSymbol;
use slab::{Gfp, KmemCache, KmemCacheArgs, KmemCacheHandle, SlabFlags};

/// This file's exports.
pub(super) static SYMBOLS: [KernelSymbol; 7] = [
    export_symbol!(kmalloc),
    export_symbol!(kzalloc),
    export_symbol!(kfree),
    export_symbol!(kmem_cache_create),
    export_symbol!(kmem_cache_alloc),
    export_symbol!(kmem_cache_free),
    export_symbol!(kmem_cache_destroy),
];

/// Allocates `size` bytes (Linux's `kmalloc`): null when out of memory or for a size no
/// cache or page allocation serves.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc(size: usize, flags: c_uint) -> *mut c_void {
    slab()
        .kmalloc(size, Gfp::from_bits_truncate(flags))
        .map_or(null_mut(), |p| p.as_ptr().cast())
}

/// Allocates `size` zeroed bytes (Linux's `kzalloc`).
#[unsafe(no_mangle)]
pub extern "C" fn kzalloc(size: usize, flags: c_uint) -> *mut c_void {
    slab()
        .kzalloc(size, Gfp::from_bits_truncate(flags))
        .map_or(null_mut(), |p| p.as_ptr().cast())
}

/// Frees what `kmalloc` gave (Linux's `kfree`); null does nothing. A pointer that is not an
/// allocation, or one already freed, is refused with a report (the slab allocator checks
/// the page owner and the object boundary) and nothing is freed.
///
/// # Safety
/// `objp` is null or was returned by `kmalloc`/`kzalloc` and is not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kfree(objp: *const c_void) {
    if objp.is_null() {
        return;
    }
    // SAFETY: caller contract; bad pointers are reported by the allocator's checks.
    if let Err(report) = unsafe { slab().kfree(objp.cast_mut().cast()) } {
        log::error!("kfree({objp:p}) refused: {report}");
    }
}

/// Creates a slab cache (Linux's `kmem_cache_create`): null (and a message) on error.
///
/// # Safety
/// `name` is a NUL-terminated string; `ctor`, if any, a function that may be called on every
/// new object until the cache is destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_create(
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: c_uint,
    ctor: Option<slab::Ctor>,
) -> *mut c_void {
    if name.is_null() {
        log::error!("kmem_cache_create: no name");
        return null_mut();
    }
    // SAFETY: NUL-terminated (caller contract).
    let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
        log::error!("kmem_cache_create: the name is not UTF-8");
        return null_mut();
    };
    let args = KmemCacheArgs {
        align: align as usize,
        ctor,
        ..Default::default()
    };
    match slab().kmem_cache_create(
        name,
        size as usize,
        args,
        SlabFlags::from_bits_truncate(flags),
    ) {
        Ok(handle) => core::ptr::from_ref(handle.leak()).cast_mut().cast(),
        Err(e) => {
            log::error!("kmem_cache_create({name}): {e:?}");
            null_mut()
        }
    }
}

/// Allocates an object of cache `s` (Linux's `kmem_cache_alloc`): null when out of memory.
///
/// # Safety
/// `s` was returned by `kmem_cache_create` and not destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_alloc(s: *mut c_void, flags: c_uint) -> *mut c_void {
    if s.is_null() {
        return null_mut();
    }
    // SAFETY: a live cache (caller contract).
    let cache = unsafe { &*s.cast::<KmemCache<KernelPlatform>>() };
    cache
        .alloc(Gfp::from_bits_truncate(flags))
        .map_or(null_mut(), |p| p.as_ptr().cast())
}

/// Frees an object of cache `s` (Linux's `kmem_cache_free`). An object of another cache, or
/// not an object, is refused with a report and nothing is freed.
///
/// # Safety
/// `s` was returned by `kmem_cache_create` and not destroyed; `objp` is not used after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_free(s: *mut c_void, objp: *mut c_void) {
    let Some(obj) = NonNull::new(objp.cast::<u8>()) else {
        return;
    };
    if s.is_null() {
        log::error!("kmem_cache_free({objp:p}): no cache");
        return;
    }
    // SAFETY: a live cache (caller contract).
    let cache = unsafe { &*s.cast::<KmemCache<KernelPlatform>>() };
    // SAFETY: caller contract; the cache checks that `obj` is one of its objects.
    if let Err(report) = unsafe { cache.free(obj) } {
        log::error!(
            "kmem_cache_free({}, {objp:p}) refused: {report}",
            cache.name()
        );
    }
}

/// Destroys cache `s` (Linux's `kmem_cache_destroy`); null does nothing. A pointer that is not
/// a cache is refused with a message; a cache with objects left is reported and kept.
///
/// # Safety
/// No other user of the cache remains, and no object of it is freed during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_destroy(s: *mut c_void) {
    if s.is_null() {
        return;
    }
    let Some(cache) = slab().cache_at(s) else {
        log::error!("kmem_cache_destroy({s:p}): not a cache");
        return;
    };
    // SAFETY: a cache of this allocator (checked), whose handle the module gave up with
    // `leak` in `kmem_cache_create` and now hands back (caller contract: no other user).
    let handle = unsafe { KmemCacheHandle::from_ref(cache) };
    // SAFETY: caller contract (no other use of the cache during or after the call).
    if let Err(e) = unsafe { slab().kmem_cache_destroy(handle) } {
        log::error!("kmem_cache_destroy: {e:?}");
    }
}
