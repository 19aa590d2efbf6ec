//! The registry's unsafe core: how the allocator owns its caches.
//!
//! A cache is boxed at creation and leaked into a [`CachePtr`]; it stays at that address until
//! [`CachePtr::release`] rebuilds and drops the box. Only two places release a cache:
//! [`SlabAllocator::kmem_cache_destroy`] (an `unsafe fn`, whose caller promises that nothing
//! uses the cache any more) and the allocator's `Drop` (`&mut self`: no borrow of the
//! allocator, and so no reference to a cache, is alive). Hence the invariant the rest of the
//! registry relies on, in safe code: **a cache pointer held by an allocator is valid for as
//! long as that allocator is borrowed.** The cache handles' two escape hatches
//! ([`KmemCacheHandle::as_ref_unchecked`], [`KmemCacheHandle::from_ref`]) live here too.

use alloc::boxed::Box;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::{DestroyError, FIRST_NAME, KmemCacheHandle, SlabAllocator};
use crate::cache::KmemCache;
use crate::flags::SlabFlags;
use crate::platform::Platform;

/// A cache owned by an allocator (see the module docs for the invariant).
pub(crate) struct CachePtr<P: Platform>(NonNull<KmemCache<P>>);

impl<P: Platform> Clone for CachePtr<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Platform> Copy for CachePtr<P> {}

// SAFETY: a `KmemCache` is shared between CPUs by design: its mutable state is per-CPU (reached
// only pinned), atomic, or behind locks; the pointer itself is only read.
unsafe impl<P: Platform> Send for CachePtr<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for CachePtr<P> {}

impl<P: Platform> CachePtr<P> {
    /// Takes ownership of a new cache: it stays at this address until [`CachePtr::release`].
    pub(crate) fn new(cache: Box<KmemCache<P>>) -> Self {
        Self(NonNull::from(Box::leak(cache)))
    }

    /// The cache, for as long as `owner`, the allocator that holds this pointer, is borrowed.
    #[inline(always)]
    pub(crate) fn get<'a>(&self, owner: &'a SlabAllocator<P>) -> &'a KmemCache<P> {
        let _ = owner;
        // SAFETY: the module invariant: a cache held by `owner` is released only by the
        // unsafe destroy (whose caller promised no further use) or by `owner`'s drop, which
        // cannot run while `owner` is borrowed for `'a`.
        unsafe { self.0.as_ref() }
    }

    /// Whether this is `cache`.
    pub(crate) fn is(&self, cache: &KmemCache<P>) -> bool {
        core::ptr::eq(self.0.as_ptr(), cache)
    }

    /// Whether both point at the same cache.
    fn same(&self, other: &Self) -> bool {
        self.0 == other.0
    }

    /// The cache, for the destroy work item, which holds it outside any allocator borrow.
    ///
    /// # Safety
    /// The cache must not be released while the reference is used.
    unsafe fn get_unbounded<'x>(&self) -> &'x KmemCache<P> {
        // SAFETY: caller contract.
        unsafe { self.0.as_ref() }
    }

    /// Frees the cache's structure.
    ///
    /// # Safety
    /// No reference to the cache may be used afterwards, and no other `CachePtr` to it may be
    /// used or released.
    unsafe fn release(self) {
        // SAFETY: leaked from a box in `new`; the caller promises it is no longer used.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

impl<'a, P: Platform> KmemCacheHandle<'a, P> {
    /// A reference to the cache that outlives the handle, for sharing the cache with other
    /// contexts (threads on other CPUs) that the borrow checker cannot see end before the
    /// cache is destroyed.
    ///
    /// # Safety
    /// The reference must not be used once the handle has been given to
    /// [`SlabAllocator::kmem_cache_destroy`].
    pub unsafe fn as_ref_unchecked(&self) -> &'a KmemCache<P> {
        self.cache
    }

    /// A handle for the first name of `cache`, as `kmem_cache_create` returned it (for a
    /// reference obtained by [`KmemCacheHandle::leak`], [`SlabAllocator::find_cache`] or
    /// [`SlabAllocator::kmalloc_cache`]).
    ///
    /// # Safety
    /// No other handle for that name may exist or be made, and `cache` must belong to the
    /// allocator the handle is given back to.
    pub unsafe fn from_ref(cache: &'a KmemCache<P>) -> Self {
        Self {
            cache,
            name: FIRST_NAME,
        }
    }
}

impl<P: Platform> SlabAllocator<P> {
    /// Destroys a cache (`kmem_cache_destroy`), taking back the handle
    /// [`Self::kmem_cache_create`] returned.
    ///
    /// Drops one reference and the handle's name (the alias's own name, or the first name);
    /// if other names remain, that is all. Otherwise flushes every CPU's sheaves and the barns,
    /// frees the empty slabs and, if no object is left, releases the cache. The first name of a kmalloc cache is refused as permanent, whatever
    /// its aliases. If objects remain,
    /// each is listed in the error, and the cache is removed from the list but kept alive
    /// (Linux warns "Slab cache still has objects" and leaks it likewise); the error gives it
    /// back so that they can still be freed.
    ///
    /// # Safety
    /// `cache` must come from this allocator. The handle guarantees that nothing borrowed from
    /// it is still in use; references to the cache obtained otherwise
    /// ([`Self::find_cache`], [`Self::caches`], [`KmemCacheHandle::as_ref_unchecked`]) must not
    /// be used during the call, nor after `Ok(())` (the cache is freed then), and no object of
    /// the cache may be freed during the call; [`SlabAllocator::kvfree_rcu_barrier`] (which
    /// visits every cache) may not run during the call either.
    pub unsafe fn kmem_cache_destroy<'a>(
        &'a self,
        cache: KmemCacheHandle<'a, P>,
    ) -> Result<(), DestroyError<'a, P>> {
        let KmemCacheHandle { cache, name } = cache;
        let mut list = self.slab_mutex.lock();
        let Some(i) = list.iter().position(|e| e.cache.is(cache)) else {
            drop(list);
            if self.destroying.lock().iter().any(|(c, _)| c.is(cache)) {
                return Err(DestroyError::AlreadyDestroyed { name: cache.name() });
            }
            return Err(DestroyError::NotACache);
        };
        if list[i].kmalloc && name == FIRST_NAME {
            return Err(DestroyError::Permanent { name: cache.name() });
        }
        let names = &mut list[i].names;
        if let Some(j) = names.iter().position(|&(id, _)| id == name) {
            names.remove(j);
        }
        if cache.refcount.fetch_sub(1, Ordering::Relaxed) > 1 {
            return Ok(());
        }
        // Off the list: the name is free for a new cache at once, even if this one lingers.
        let entry = list.remove(i);
        drop(list);
        // SAFETY: nobody else uses the cache (caller contract).
        let exclusive = unsafe { cache.assume_exclusive() };
        if cache.rcu_used.load(Ordering::Relaxed) {
            // Objects may be in `kfree_rcu` flight (the RFC's asynchronous destroy): try
            // quietly, and if objects remain, let a work item wait for RCU and try again.
            let first_try = KmemCache::try_shutdown(&exclusive);
            match first_try {
                // SAFETY: the cache is off the list and unused (caller contract).
                Ok(()) => unsafe { Self::release_after_shutdown(&self.platform, entry.cache) },
                Err(_) => self.destroy_later(entry.cache, cache.name()),
            }
            return Ok(());
        }
        match KmemCache::shutdown(&exclusive) {
            Ok(()) => {
                // SAFETY: the cache is off the list, so no other `CachePtr` reaches it, and the
                // caller promised no reference is used after `Ok`.
                unsafe { entry.cache.release() };
                Ok(())
            }
            Err(objects) => Err(DestroyError::ObjectsRemaining {
                name: cache.name(),
                objects,
                cache,
            }),
        }
    }

    /// Releases a cache whose shutdown succeeded: at once, or for a `SLAB_TYPESAFE_BY_RCU`
    /// cache after one more grace period (Linux's `slab_caches_to_rcu_destroy`: a reader may
    /// still look at an object of the cache, so the cache must outlive the reader).
    ///
    /// # Safety
    /// The cache is off every list and nothing uses it any more.
    unsafe fn release_after_shutdown(platform: &P, cache: CachePtr<P>) {
        // SAFETY: not released yet (caller contract).
        let typesafe = unsafe { cache.get_unbounded() }
            .flags()
            .contains(SlabFlags::SLAB_TYPESAFE_BY_RCU);
        if typesafe {
            // SAFETY: forwarded: nothing uses the cache, and RCU readers are done after the
            // grace period.
            platform.call_rcu(Box::new(move || unsafe { cache.release() }));
        } else {
            // SAFETY: forwarded contract.
            unsafe { cache.release() };
        }
    }

    /// The asynchronous part of destroy (the RFC's `kmem_cache_kfree_rcu_destroy_workfn`): a
    /// work item waits for every RCU callback queued so far (the cache's partly filled
    /// `rcu_free` sheaves were handed in by the first try), shuts the cache down again and
    /// releases it. Only objects that remain then are reported, by name and address, and the
    /// cache is kept so that they stay valid.
    fn destroy_later(&self, cache: CachePtr<P>, name: &'static str) {
        self.destroying.lock().push((cache, name));
        let destroying = self.destroying.clone();
        let platform = self.platform.clone();
        self.platform.queue_work(Box::new(move || {
            platform.rcu_barrier();
            // SAFETY: the cache is off the list and only this work item uses it: destroy's
            // caller promised that nothing else does any more, and the RCU callbacks of the
            // cache have all run (barrier above).
            let c = unsafe { cache.get_unbounded() };
            // SAFETY: as above.
            let exclusive = unsafe { c.assume_exclusive() };
            // Reports every object still allocated (there is no caller left to tell).
            let result = KmemCache::shutdown(&exclusive);
            destroying.lock().retain(|(other, _)| !other.same(&cache));
            if result.is_ok() {
                // SAFETY: off every list now, and unused.
                unsafe { Self::release_after_shutdown(&platform, cache) };
            }
            // Otherwise the cache stays, leaked on purpose: its objects remain valid.
            let _ = name;
        }));
    }
}

impl<P: Platform> Drop for SlabAllocator<P> {
    fn drop(&mut self) {
        // RCU callbacks still queued (`kfree_rcu` sheaves and objects, `SLAB_TYPESAFE_BY_RCU`
        // pages) point into the caches: let them run before the caches go.
        self.platform.rcu_barrier();
        // So do pending destroys (they release their caches, or keep leaked ones).
        self.platform.flush_work();
        // The structures of the caches go; their pages stay with the platform (a kernel never
        // drops its allocator; the host platform frees its whole arena).
        for e in self.slab_mutex.lock().drain(..) {
            // SAFETY: `&mut self` proves no reference to a cache is still alive; each listed
            // cache is released once (the kmalloc array's copies are never released).
            unsafe { e.cache.release() };
        }
    }
}
