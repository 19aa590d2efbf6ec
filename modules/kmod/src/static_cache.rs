//! Static caches for Rust modules: a cache whose `struct kmem_cache` is a `static` of the
//! module ([`StaticCache`], in its `.data`), set up with `kmem_cache_setup` and owned by the
//! module: the cache pins it until the cache's final release, so `rmmod` frees the module's
//! memory only after a destroy that had objects in `kfree_rcu` flight has finished.
//!
//! The safe API keeps the rules a C module must keep by hand:
//! - objects are [`StaticObj`]s, freed on drop (`kmem_cache_free`) or handed to the kernel
//!   with [`StaticObj::kfree_rcu`]; both end the object's count;
//! - [`StaticCache::destroy`] refuses (and keeps the cache) while objects are live, so no
//!   object can outlive its cache; objects given to `kfree_rcu` are the kernel's business (its
//!   destroy waits for them, asynchronously);
//! - an allocation racing a destroy either counts first (and the destroy is refused) or finds
//!   the cache gone.

use core::ffi::{CStr, c_void};
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};

use crate::Errno;
use crate::ffi;

/// A static cache: the storage and, once set up, the cache.
pub struct StaticCache {
    storage: ffi::KmemCacheOpaque,
    cache: AtomicPtr<ffi::KmemCache>,
    /// Objects allocated and not yet freed or given to `kfree_rcu`.
    live: AtomicUsize,
    /// Set by a destroy while it checks `live`: allocations back off meanwhile.
    closing: AtomicBool,
}

impl StaticCache {
    /// Storage not yet set up (for a `static`).
    pub const fn new() -> Self {
        Self {
            storage: ffi::KmemCacheOpaque::new(),
            cache: AtomicPtr::new(null_mut()),
            live: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
        }
    }

    /// Sets the cache up (`KMEM_CACHE_SETUP(&storage, name, size, 0, flags, NULL)` with this
    /// module as its owner). `EEXIST` if it is set up already, `ENOMEM` if the kernel refused.
    pub fn setup(&'static self, name: &'static CStr, size: u32, flags: u32) -> Result<(), Errno> {
        if !self.cache.load(SeqCst).is_null() {
            return Err(Errno(17));
        }
        // SAFETY: the storage is this module's static, used by nothing else; `name` is a
        // NUL-terminated static string; `__this_module` is this module's handle.
        let c = unsafe {
            ffi::kmem_cache_setup(
                core::ptr::from_ref(&self.storage).cast_mut(),
                name.as_ptr(),
                size,
                0,
                flags,
                None,
                &raw const ffi::__this_module,
            )
        };
        if c.is_null() {
            return Err(Errno::ENOMEM);
        }
        self.cache.store(c, SeqCst);
        Ok(())
    }

    /// Allocates an object (`kmem_cache_alloc`); `None` when the cache is not set up (or was
    /// destroyed) or memory is short.
    pub fn alloc(&'static self) -> Option<StaticObj> {
        // Counted before `closing` is looked at: a destroy that has not seen this count sets
        // `closing` before this reads it, and this allocation backs off.
        self.live.fetch_add(1, SeqCst);
        let c = self.cache.load(SeqCst);
        let obj = if c.is_null() || self.closing.load(SeqCst) {
            None
        } else {
            // SAFETY: the cache is set up and cannot be destroyed while `live` is above 0.
            NonNull::new(unsafe { ffi::kmem_cache_alloc(c, ffi::GFP_KERNEL) })
        };
        match obj {
            Some(obj) => Some(StaticObj { cache: self, obj }),
            None => {
                self.live.fetch_sub(1, SeqCst);
                None
            }
        }
    }

    /// The object size (`kmem_cache_size`), 0 when not set up.
    pub fn size(&'static self) -> u32 {
        // Counted for the call, as an allocation is.
        self.live.fetch_add(1, SeqCst);
        let c = self.cache.load(SeqCst);
        let n = if c.is_null() || self.closing.load(SeqCst) {
            0
        } else {
            // SAFETY: the cache is set up and cannot be destroyed while `live` is above 0.
            unsafe { ffi::kmem_cache_size(c) }
        };
        self.live.fetch_sub(1, SeqCst);
        n
    }

    /// Destroys the cache (`kmem_cache_destroy`; asynchronous in the kernel when objects are
    /// in `kfree_rcu` flight). Refused with `EBUSY` while objects are live (the cache is
    /// kept); `ENOENT` if it is not set up.
    pub fn destroy(&'static self) -> Result<(), Errno> {
        if self.cache.load(SeqCst).is_null() {
            return Err(Errno::ENOENT);
        }
        if self.closing.swap(true, SeqCst) {
            // Another destroy is checking.
            return Err(Errno::EBUSY);
        }
        if self.live.load(SeqCst) != 0 {
            self.closing.store(false, SeqCst);
            return Err(Errno::EBUSY);
        }
        let c = self.cache.swap(null_mut(), SeqCst);
        self.closing.store(false, SeqCst);
        // SAFETY: no object is live and none can be allocated (`closing` was set before
        // `live` was read as 0); the pointer was swapped out, so the cache is destroyed once.
        unsafe { ffi::kmem_cache_destroy(c) };
        Ok(())
    }
}

impl Default for StaticCache {
    fn default() -> Self {
        Self::new()
    }
}

/// An object of a [`StaticCache`], freed on drop.
pub struct StaticObj {
    cache: &'static StaticCache,
    obj: NonNull<c_void>,
}

impl StaticObj {
    /// The object's address.
    pub fn as_ptr(&self) -> *mut c_void {
        self.obj.as_ptr()
    }

    /// Frees the object after an RCU grace period (`kfree_rcu(obj, head)`), through the
    /// `struct rcu_head` at byte `head_offset` of the object; `Err` gives the object back when
    /// the head would not fit inside it or is misaligned.
    pub fn kfree_rcu(self, head_offset: usize) -> Result<(), StaticObj> {
        let size = self.cache.size() as usize;
        let fits = head_offset
            .checked_add(size_of::<ffi::RcuHead>())
            .is_some_and(|end| end <= size)
            && head_offset.is_multiple_of(align_of::<ffi::RcuHead>());
        if !fits {
            return Err(self);
        }
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: the head lies inside the object (checked); the object is given up here
        // (not dropped), and the kernel frees it after a grace period.
        unsafe {
            let head = this.obj.as_ptr().cast::<u8>().add(head_offset).cast();
            ffi::kvfree_call_rcu(head, this.obj.as_ptr());
        }
        // The kernel owns it now: no longer this module's to count.
        this.cache.live.fetch_sub(1, SeqCst);
        Ok(())
    }
}

impl Drop for StaticObj {
    fn drop(&mut self) {
        let c = self.cache.cache.load(SeqCst);
        // SAFETY: the cache is set up (this object counts in `live`, so no destroy ran) and the
        // object is its own, freed once.
        unsafe { ffi::kmem_cache_free(c, self.obj.as_ptr()) };
        self.cache.live.fetch_sub(1, SeqCst);
    }
}
