//! The slab allocator for modules: `kmalloc` and friends, and slab caches.
//!
//! Bad arguments get Linux's answer, never a panic: a pointer that is not a cache (null
//! included) is refused with a message (`SlabAllocator::cache_at`, which compares addresses
//! and never reads them) before anything reads it: null, 0 or `-EINVAL` back, nothing done. A
//! size that overflows or that no allocation can serve gives null. Unknown `SLAB_*` bits, and
//! the allocator's own (`SLAB_KMALLOC`, `SLAB_HARDENED_FREE`, `SLAB_PREALLOCATED`), refuse
//! the creation; unknown `gfp_t` bits are ignored, as Linux ignores modifiers that do not
//! apply (it fixes up the few it knows are wrong for slab with a warning).

use core::ffi::{CStr, c_char, c_int, c_uint, c_ulong, c_void};
use core::ptr::{NonNull, null_mut};

use kcore::memory::kmalloc::{KernelPlatform, slab};
use kcore::module::KernelSymbol;
use slab::{Gfp, KmemCache, KmemCacheArgs, KmemCacheHandle, SlabFlags};

/// This file's exports.
pub(super) static SYMBOLS: [KernelSymbol; 18] = [
    export_symbol!(kmalloc),
    export_symbol!(kzalloc),
    export_symbol!(kfree),
    export_symbol!(kmem_cache_create),
    export_symbol!(kmem_cache_alloc),
    export_symbol!(kmem_cache_free),
    export_symbol!(kmem_cache_destroy),
    export_symbol!(kcalloc),
    export_symbol!(kmalloc_array),
    export_symbol!(krealloc),
    export_symbol!(ksize),
    export_symbol!(kmem_cache_create_usercopy),
    export_symbol!(kmem_cache_zalloc),
    export_symbol!(kmem_cache_shrink),
    export_symbol!(kmem_cache_alloc_bulk),
    export_symbol!(kmem_cache_free_bulk),
    export_symbol!(kmem_cache_size),
    export_symbol!(slab_errors),
];

/// Linux's `EINVAL`.
const EINVAL: c_int = 22;

/// The `SLAB_*` flags a module may give (`include/sheaf/module.h`): everything but the
/// allocator's own.
pub(super) const MODULE_SLAB_FLAGS: SlabFlags = SlabFlags::all()
    .difference(SlabFlags::SLAB_KMALLOC)
    .difference(SlabFlags::SLAB_HARDENED_FREE)
    .difference(SlabFlags::SLAB_PREALLOCATED);

/// A module's `gfp_t`: unknown bits ignored (see the file's comment).
fn gfp(flags: c_uint) -> Gfp {
    Gfp::from_bits_truncate(flags)
}

/// A cache's C name and flags, checked as `kmem_cache_create` and `kmem_cache_setup` check
/// them: a null name, one that is not UTF-8, or `SLAB_*` bits a module may not give are
/// refused with a message naming `api`.
///
/// # Safety
/// `name` is null or a NUL-terminated string that outlives the returned borrow.
pub(super) unsafe fn name_and_flags<'a>(
    api: &str,
    name: *const c_char,
    flags: c_uint,
) -> Option<(&'a str, SlabFlags)> {
    if name.is_null() {
        log::error!("{api}: no name");
        return None;
    }
    // SAFETY: NUL-terminated (caller contract).
    let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
        log::error!("{api}: the name is not UTF-8");
        return None;
    };
    let Some(flags) = SlabFlags::from_bits(flags).filter(|f| MODULE_SLAB_FLAGS.contains(*f)) else {
        log::error!(
            "{api}({name}): unknown flags {:#x}",
            flags & !MODULE_SLAB_FLAGS.bits()
        );
        return None;
    };
    Some((name, flags))
}

/// The cache at `s`, if `s` is one (null and anything else refused with a message naming
/// `api`). A walk of the cache list under its lock.
fn cache(api: &str, s: *const c_void) -> Option<&'static KmemCache<KernelPlatform>> {
    let c = slab().cache_at(s);
    if c.is_none() {
        log::error!("{api}({s:p}): not a cache");
    }
    c
}

/// The pointer C gets for an allocation.
fn to_c(p: Option<NonNull<u8>>) -> *mut c_void {
    p.map_or(null_mut(), |p| p.as_ptr().cast())
}

/// Allocates `size` bytes (Linux's `kmalloc`): null when out of memory or for a size no
/// cache or page allocation serves.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc(size: usize, flags: c_uint) -> *mut c_void {
    to_c(slab().kmalloc(size, gfp(flags)))
}

/// Allocates `size` zeroed bytes (Linux's `kzalloc`).
#[unsafe(no_mangle)]
pub extern "C" fn kzalloc(size: usize, flags: c_uint) -> *mut c_void {
    to_c(slab().kzalloc(size, gfp(flags)))
}

/// Allocates a zeroed array of `n` elements of `size` bytes (Linux's `kcalloc`): null when
/// `n * size` overflows.
#[unsafe(no_mangle)]
pub extern "C" fn kcalloc(n: usize, size: usize, flags: c_uint) -> *mut c_void {
    to_c(slab().kcalloc(n, size, gfp(flags)))
}

/// Allocates an array of `n` elements of `size` bytes (Linux's `kmalloc_array`; zeroed only
/// with `__GFP_ZERO`): null when `n * size` overflows.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc_array(n: usize, size: usize, flags: c_uint) -> *mut c_void {
    match n.checked_mul(size) {
        Some(bytes) => to_c(slab().kmalloc(bytes, gfp(flags))),
        None => null_mut(),
    }
}

/// Resizes a `kmalloc`ed object (Linux's `krealloc`): the same pointer when the new size fits
/// its slot, else a new object with the contents copied and the old one freed. Null keeps the
/// old object untouched: out of memory, a size nothing serves, or `objp` not the start of a
/// `kmalloc`ed object (reported). `krealloc(NULL, n)` is `kmalloc(n)`; a new size of 0 frees
/// and returns `ZERO_SIZE_PTR`. The bytes past the old size are zeroed only with
/// `__GFP_ZERO` (as Linux, which guarantees it when every allocation of the object passed
/// it).
///
/// # Safety
/// `objp` is null, `ZERO_SIZE_PTR` or a live object from `kmalloc` and friends; when a
/// pointer other than null comes back, `objp` is not used again (unless it is the same).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn krealloc(
    objp: *const c_void,
    new_size: usize,
    flags: c_uint,
) -> *mut c_void {
    // SAFETY: caller contract; a pointer that is not an object start is reported and refused
    // by the allocator's page-owner check.
    to_c(unsafe { slab().krealloc(objp.cast_mut().cast(), new_size, gfp(flags)) })
}

/// The usable size of a `kmalloc`ed object (Linux's `ksize`): at least what was asked; 0 for
/// null and `ZERO_SIZE_PTR`, and for a pointer that is not the start of a `kmalloc`ed object
/// (reported, as Linux warns and answers 0).
#[unsafe(no_mangle)]
pub extern "C" fn ksize(objp: *const c_void) -> usize {
    let Some(p) = NonNull::new(objp.cast_mut().cast::<u8>()) else {
        return 0;
    };
    match slab().ksize(p) {
        Ok(n) => n,
        Err(report) => {
            log::error!("ksize({objp:p}) refused: {report}");
            0
        }
    }
}

/// Number of problems the slab allocator has reported since boot (corrupted red zones and
/// poison, double frees, frees of what is not an object, ...; Sheaf's own, for tests).
#[unsafe(no_mangle)]
pub extern "C" fn slab_errors() -> c_ulong {
    kcore::memory::kmalloc::slab_errors() as c_ulong
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

/// Creates a slab cache (Linux's `kmem_cache_create`): null (and a message) on error: a null
/// name or one that is not UTF-8, `SLAB_*` bits a module may not give, a size or an alignment
/// the allocator refuses. With `SLAB_RED_ZONE`, `SLAB_POISON`, `SLAB_STORE_USER` or
/// `SLAB_CONSISTENCY_CHECKS` the cache checks its objects as under `slub_debug`.
///
/// # Safety
/// `name` is null or a NUL-terminated string; `ctor`, if any, a function that may be called
/// on every new object until the cache is destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_create(
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: c_uint,
    ctor: Option<slab::Ctor>,
) -> *mut c_void {
    // SAFETY: forwarded contract (no usercopy region).
    unsafe { kmem_cache_create_usercopy(name, size, align, flags, 0, 0, ctor) }
}

/// Creates a slab cache whose objects' bytes `useroffset..useroffset + usersize` may be
/// copied to and from user space (Linux's `kmem_cache_create_usercopy`; such a cache is never
/// merged). Errors as [`kmem_cache_create`], and a region outside the object.
///
/// # Safety
/// As for [`kmem_cache_create`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_create_usercopy(
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: c_uint,
    useroffset: c_uint,
    usersize: c_uint,
    ctor: Option<slab::Ctor>,
) -> *mut c_void {
    // SAFETY: forwarded contract (`name` null or NUL-terminated).
    let Some((name, flags)) = (unsafe { name_and_flags("kmem_cache_create", name, flags) }) else {
        return null_mut();
    };
    let args = KmemCacheArgs {
        align: align as usize,
        useroffset: useroffset as usize,
        usersize: usersize as usize,
        ctor,
        ..Default::default()
    };
    match slab().kmem_cache_create(name, size as usize, args, flags) {
        Ok(handle) => core::ptr::from_ref(handle.leak()).cast_mut().cast(),
        Err(e) => {
            log::error!("kmem_cache_create({name}): {e:?}");
            null_mut()
        }
    }
}

/// Allocates an object of cache `s` (Linux's `kmem_cache_alloc`): null when out of memory, or
/// when `s` is not a cache (refused with a message; the check walks the cache list under its
/// lock).
///
/// # Safety
/// `s` was returned by `kmem_cache_create` and not destroyed (anything else is refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_alloc(s: *mut c_void, flags: c_uint) -> *mut c_void {
    cache("kmem_cache_alloc", s).map_or(null_mut(), |c| to_c(c.alloc(gfp(flags))))
}

/// Allocates a zeroed object of cache `s` (Linux's `kmem_cache_zalloc`): as
/// [`kmem_cache_alloc`] with `__GFP_ZERO`.
///
/// # Safety
/// As for [`kmem_cache_alloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_zalloc(s: *mut c_void, flags: c_uint) -> *mut c_void {
    cache("kmem_cache_zalloc", s).map_or(null_mut(), |c| to_c(c.zalloc(gfp(flags))))
}

/// Frees an object of cache `s` (Linux's `kmem_cache_free`); a null object does nothing. An
/// object of another cache, or not an object, is refused with a report and nothing is freed;
/// so is a cache pointer that is not a cache. The object's page names its cache, so `s` is
/// known to be a cache without a lookup when it is that one; otherwise (an alias, or a bad
/// pointer) the cache list is walked.
///
/// # Safety
/// `objp` is null or an object of `s`, not used after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_free(s: *mut c_void, objp: *mut c_void) {
    let Some(obj) = NonNull::new(objp.cast::<u8>()) else {
        return;
    };
    let owner = slab()
        .cache_of(obj)
        .filter(|c| core::ptr::eq(core::ptr::from_ref(*c).cast(), s));
    let Some(cache) = owner.or_else(|| cache("kmem_cache_free", s)) else {
        return;
    };
    // SAFETY: caller contract; the cache checks that `obj` is one of its objects.
    if let Err(report) = unsafe { cache.free(obj) } {
        log::error!(
            "kmem_cache_free({}, {objp:p}) refused: {report}",
            cache.name()
        );
    }
}

/// Allocates `size` objects of cache `s` into `p` (Linux's `kmem_cache_alloc_bulk`): `size`,
/// or 0 (and nothing allocated) when memory is short, `s` is not a cache, `p` is null or
/// `size` is 0.
///
/// # Safety
/// `p` is null or has room for `size` pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_alloc_bulk(
    s: *mut c_void,
    flags: c_uint,
    size: usize,
    p: *mut *mut c_void,
) -> c_int {
    let Some(c) = cache("kmem_cache_alloc_bulk", s) else {
        return 0;
    };
    if size == 0 || p.is_null() || size > c_int::MAX as usize {
        return 0;
    }
    // SAFETY: `size` writable pointers at `p` (caller contract), at most `c_int::MAX` of
    // them, so the slice's length in bytes fits an `isize`.
    let out = unsafe { core::slice::from_raw_parts_mut(p.cast::<*mut u8>(), size) };
    if c.alloc_bulk(gfp(flags), out) {
        size as c_int
    } else {
        0
    }
}

/// Frees the `size` objects at `p` (Linux's `kmem_cache_free_bulk`); null entries are
/// skipped. A null `s` frees each with `kfree` (Linux's `kfree_bulk`); a pointer that is
/// not a cache is refused with a message and nothing is freed; an object that is not one of
/// the cache's is reported and left.
///
/// # Safety
/// `p` is null or holds `size` pointers, each null or an object of `s` (any `kmalloc`ed
/// object when `s` is null) not used after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_free_bulk(s: *mut c_void, size: usize, p: *mut *mut c_void) {
    if size == 0 || p.is_null() || size > isize::MAX as usize / size_of::<*mut u8>() {
        return;
    }
    // SAFETY: `size` readable pointers at `p` (caller contract; the byte length fits).
    let objs = unsafe { core::slice::from_raw_parts(p.cast::<*mut u8>(), size) };
    if s.is_null() {
        for &o in objs {
            // SAFETY: caller contract (`kmalloc`ed objects, given up).
            unsafe { kfree(o.cast()) };
        }
        return;
    }
    let Some(c) = cache("kmem_cache_free_bulk", s) else {
        return;
    };
    // SAFETY: caller contract; the cache checks every object.
    if let Err(report) = unsafe { c.free_bulk(objs) } {
        log::error!("kmem_cache_free_bulk({}) refused: {report}", c.name());
    }
}

/// Gives the free memory of cache `s` back (Linux's `kmem_cache_shrink`): 0 when no slab is
/// left, 1 when some are (objects in use), `-EINVAL` when `s` is not a cache. It may sleep.
///
/// # Safety
/// `s` is a cache (anything else is refused); process context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_shrink(s: *mut c_void) -> c_int {
    let Some(c) = cache("kmem_cache_shrink", s) else {
        return -EINVAL;
    };
    c.shrink();
    c_int::from(c.primary().slabinfo().num_slabs != 0)
}

/// The object size of cache `s` (Linux's `kmem_cache_size`): what it was created with; 0
/// when `s` is not a cache.
///
/// # Safety
/// `s` is a cache (anything else is refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_size(s: *mut c_void) -> c_uint {
    cache("kmem_cache_size", s).map_or(0, |c| c.object_size() as c_uint)
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
