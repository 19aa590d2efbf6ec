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
