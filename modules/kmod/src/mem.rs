//! Owning wrappers over `kmalloc` and slab caches: freed when dropped.

use core::ffi::{CStr, c_void};
use core::ptr::NonNull;

use crate::ffi;

/// A `kmalloc`ed buffer, `kfree`d on drop.
pub struct KBuf {
    ptr: NonNull<u8>,
    len: usize,
}

impl KBuf {
    /// `kzalloc(len, GFP_KERNEL)`: `len` zeroed bytes, or `None` when memory is short.
    pub fn zeroed(len: usize) -> Option<Self> {
        // SAFETY: kzalloc has no preconditions; it returns NULL or `len` zeroed bytes.
        let p = unsafe { ffi::kzalloc(len, ffi::GFP_KERNEL) };
        NonNull::new(p.cast()).map(|ptr| KBuf { ptr, len })
    }

    /// `kcalloc(n, size, GFP_KERNEL)`: a zeroed array of `n` elements of `size` bytes, or
    /// `None` when memory is short or `n * size` overflows.
    pub fn zeroed_array(n: usize, size: usize) -> Option<Self> {
        let len = n.checked_mul(size)?;
        // SAFETY: kcalloc has no preconditions; it returns NULL or `n * size` zeroed bytes.
        let p = unsafe { ffi::kcalloc(n, size, ffi::GFP_KERNEL) };
        NonNull::new(p.cast()).map(|ptr| KBuf { ptr, len })
    }

    /// Resizes the buffer to `len` bytes with `krealloc(.., __GFP_ZERO)`: the contents up to
    /// the smaller length are kept and any new bytes are zero. On failure (memory short) the
    /// buffer is left as it was and `false` returned.
    pub fn resize(&mut self, len: usize) -> bool {
        if len == 0 {
            // krealloc(p, 0) frees and returns ZERO_SIZE_PTR; keep the object instead, its
            // bytes zeroed as krealloc would have.
            self.as_mut_slice().fill(0);
            self.len = 0;
            return true;
        }
        // SAFETY: `ptr` is a live kzalloc'ed object this buffer owns; every allocation of it
        // passed __GFP_ZERO, so the bytes past `len` are zero too. On success the old pointer
        // is not used again (it is replaced here); on failure it is untouched.
        let p = unsafe {
            ffi::krealloc(
                self.ptr.as_ptr().cast::<c_void>(),
                len,
                ffi::GFP_KERNEL | ffi::__GFP_ZERO,
            )
        };
        match NonNull::new(p.cast()) {
            Some(ptr) => {
                self.ptr = ptr;
                self.len = len;
                true
            }
            None => false,
        }
    }

    /// Bytes the allocation really has (`ksize`), at least [`Self::len`].
    pub fn capacity(&self) -> usize {
        // SAFETY: `ptr` is a live kmalloc'ed object.
        unsafe { ffi::ksize(self.ptr.as_ptr().cast::<c_void>()) }
    }

    /// The buffer's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `len` initialised (zeroed) bytes this buffer owns alone.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for KBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from kzalloc and is freed once, here.
        unsafe { ffi::kfree(self.ptr.as_ptr().cast::<c_void>()) }
    }
}

/// A slab cache created by the module, destroyed on drop.
pub struct KmemCache {
    cache: NonNull<ffi::KmemCache>,
}

// SAFETY: the kernel's slab caches are safe to use from any CPU.
unsafe impl Sync for KmemCache {}
// SAFETY: as above; the handle is just a pointer to a kernel object.
unsafe impl Send for KmemCache {}

impl KmemCache {
    /// `kmem_cache_create(name, size, 0, SLAB_HWCACHE_ALIGN, NULL)`.
    pub fn new(name: &'static CStr, size: u32) -> Option<Self> {
        // SAFETY: `name` is NUL-terminated and static (the cache keeps a pointer to it).
        let c = unsafe {
            ffi::kmem_cache_create(name.as_ptr(), size, 0, ffi::SLAB_HWCACHE_ALIGN, None)
        };
        NonNull::new(c).map(|cache| KmemCache { cache })
    }

    /// Allocates an object, freed when the returned [`CacheObj`] drops.
    pub fn alloc(&self) -> Option<CacheObj<'_>> {
        // SAFETY: `cache` is a live cache this handle owns.
        let p = unsafe { ffi::kmem_cache_alloc(self.cache.as_ptr(), ffi::GFP_KERNEL) };
        NonNull::new(p).map(|obj| CacheObj { cache: self, obj })
    }

    /// Allocates a zeroed object (`kmem_cache_zalloc`), freed when the [`CacheObj`] drops.
    pub fn zalloc(&self) -> Option<CacheObj<'_>> {
        // SAFETY: `cache` is a live cache this handle owns.
        let p = unsafe { ffi::kmem_cache_zalloc(self.cache.as_ptr(), ffi::GFP_KERNEL) };
        NonNull::new(p).map(|obj| CacheObj { cache: self, obj })
    }

    /// The object size (`kmem_cache_size`).
    pub fn size(&self) -> u32 {
        // SAFETY: `cache` is a live cache this handle owns.
        unsafe { ffi::kmem_cache_size(self.cache.as_ptr()) }
    }

    /// Gives the cache's free memory back (`kmem_cache_shrink`): `true` when no slab is left.
    /// It may sleep.
    pub fn shrink(&self) -> bool {
        // SAFETY: `cache` is a live cache this handle owns.
        unsafe { ffi::kmem_cache_shrink(self.cache.as_ptr()) == 0 }
    }
}

impl Drop for KmemCache {
    fn drop(&mut self) {
        // SAFETY: every CacheObj borrows the cache, so none is left; destroyed once, here.
        unsafe { ffi::kmem_cache_destroy(self.cache.as_ptr()) }
    }
}

/// An object of a [`KmemCache`], freed on drop.
pub struct CacheObj<'c> {
    cache: &'c KmemCache,
    obj: NonNull<c_void>,
}

impl CacheObj<'_> {
    /// The object's address.
    pub fn as_ptr(&self) -> *mut c_void {
        self.obj.as_ptr()
    }
}

impl Drop for CacheObj<'_> {
    fn drop(&mut self) {
        // SAFETY: the object came from this cache and is freed once, here.
        unsafe { ffi::kmem_cache_free(self.cache.cache.as_ptr(), self.obj.as_ptr()) }
    }
}

/// A reference on this module (`try_module_get(THIS_MODULE)`), dropped with `module_put`.
pub struct ModuleRef(());

impl ModuleRef {
    /// Takes a reference on this module; `None` once it is going away.
    pub fn this_module() -> Option<Self> {
        // SAFETY: `__this_module` is this module's handle, resolved by the loader.
        let ok = unsafe { ffi::try_module_get(&raw const ffi::__this_module) };
        ok.then_some(ModuleRef(()))
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: this value holds one reference taken by try_module_get.
        unsafe { ffi::module_put(&raw const ffi::__this_module) }
    }
}
