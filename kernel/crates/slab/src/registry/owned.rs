//! The registry's unsafe core: how the allocator owns its caches.
//!
//! A cache is boxed at creation and leaked into a [`CachePtr`]; it stays at that address until
//! [`CachePtr::release`] rebuilds and drops the box. Only two places release a cache:
//! [`SlabAllocator::kmem_cache_destroy`] (an `unsafe fn`, whose caller promises that nothing
//! uses the cache any more), with the work item and RCU callback it may leave behind, and the
//! allocator's `Drop` (`&mut self`: no borrow of the allocator, and so no reference to a cache,
//! is alive). Hence the invariant the rest of the registry relies on, in safe code: **a cache
//! pointer held by an allocator is valid for as long as that allocator is borrowed.** The cache
//! handles' two escape hatches ([`KmemCacheHandle::as_ref_unchecked`],
//! [`KmemCacheHandle::from_ref`]) live here too.
//!
//! The asynchronous destroy allocates nothing: the cache goes on the pending list through its
//! own link, and its work item (`async_destroy_work`) and the RCU head that releases a
//! `SLAB_TYPESAFE_BY_RCU` cache late are embedded in it. Their functions find the cache again
//! with [`CachePtr::from_head`], the pointer arithmetic of `container_of`, from heads that
//! [`CachePtr::head`] projected from the owning pointer (so the cache can still be released
//! through it).

use alloc::boxed::Box;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::{DestroyError, HandleRef, KmemCacheHandle, SlabAllocator, linked_alias};
use crate::cache::destroy::DestroyList;
use crate::cache::{KmemCache, SlabError};
use crate::flags::SlabFlags;
use crate::head::{CallbackHead, container_of};
use crate::name::CacheName;
use crate::platform::Platform;
use crate::platform::SlabSysfs;
use kobject::KObject;

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

    /// Takes ownership of a cache built in static storage (`kmem_cache_setup`): it is written
    /// there, given its CPUs' sheaves, and never freed (see [`CachePtr::release`]).
    ///
    /// # Safety
    /// `storage` is `'static`, sized and aligned for a `KmemCache<P>`, and nothing else uses it.
    pub(crate) unsafe fn place(storage: NonNull<KmemCache<P>>, cache: KmemCache<P>) -> Self {
        // SAFETY: valid for writes and unused (caller contract); a possibly earlier cache there
        // was dropped in place by its release, so nothing is leaked by overwriting.
        unsafe { storage.as_ptr().write(cache) };
        // SAFETY: just written; nobody else can reach it yet.
        unsafe { (*storage.as_ptr()).init_sheaves() };
        Self(storage)
    }

    /// The cache's address (for comparisons only).
    pub(crate) fn addr(&self) -> NonNull<KmemCache<P>> {
        self.0
    }

    /// Whether this is `cache`.
    pub(crate) fn is(&self, cache: &KmemCache<P>) -> bool {
        core::ptr::eq(self.0.as_ptr(), cache)
    }

    /// The cache, for the destroy work item, which holds it outside any allocator borrow.
    ///
    /// # Safety
    /// The cache must not be released while the reference is used.
    unsafe fn get_unbounded<'x>(&self) -> &'x KmemCache<P> {
        // SAFETY: caller contract.
        unsafe { self.0.as_ref() }
    }

    /// The head `which` embedded in the cache, projected from the owning pointer so that
    /// [`CachePtr::from_head`] can step back to the whole cache, with the right to release it.
    fn head(&self, which: CacheHead) -> NonNull<CallbackHead> {
        // SAFETY: the offset is that of a head field of `KmemCache`, so the result points
        // inside the cache's allocation (and is not null).
        unsafe { self.0.byte_add(which.offset::<P>()).cast() }
    }

    /// The cache whose head `which` is `head`.
    ///
    /// # Safety
    /// `head` came from [`CachePtr::head`] with the same `which`, for a cache not released
    /// since.
    unsafe fn from_head(head: NonNull<CallbackHead>, which: CacheHead) -> Self {
        // SAFETY: forwarded contract: the head is that field of a live cache, and was projected
        // from the cache's owning pointer.
        Self(unsafe { container_of::<KmemCache<P>>(head, which.offset::<P>()) })
    }

    /// Frees the cache's structure.
    ///
    /// # Safety
    /// No reference to the cache may be used afterwards, and no other `CachePtr` to it may be
    /// used or released.
    unsafe fn release(self) {
        // SAFETY: not released yet (caller contract).
        let c = unsafe { self.0.as_ref() };
        // What the cache holds goes, then the owner's pin (a module's cache, static or
        // dynamic), so the owner's release comes after the cache's (RFC v3 03/10).
        let owner = c.owner;
        let platform = c.platform.clone();
        if c.flags().contains(SlabFlags::SLAB_PREALLOCATED) {
            // SAFETY: a live cache nobody uses any more (caller contract), dropped once; the
            // storage is static and is not freed.
            unsafe { core::ptr::drop_in_place(self.0.as_ptr()) };
        } else {
            // SAFETY: leaked from a box in `new`; the caller promises it is no longer used.
            drop(unsafe { Box::from_raw(self.0.as_ptr()) });
        }
        if let Some(owner) = owner {
            // SAFETY: the creation or setup took this reference (`pin_owner`); the owner is
            // alive until it is dropped here.
            unsafe { super::preallocated::put_owner(&platform, owner) };
        }
    }

    /// The cache's kobject, projected from the owning pointer, so that its release can step
    /// back to the whole cache and free it.
    fn kobj(&self) -> NonNull<KObject> {
        // SAFETY: the offset is that of the `kobj` field, inside the cache's allocation.
        unsafe {
            self.0
                .byte_add(core::mem::offset_of!(KmemCache<P>, kobj))
                .cast()
        }
    }

    /// Gives the cache its sysfs directory and links ([`crate::attrs::add_cache`]). The cache
    /// is one `slab` holds (the module invariant).
    pub(crate) fn add_to_sysfs(&self, slab: &SlabAllocator<P>, sys: SlabSysfs<'_>, names: &[&str]) {
        let cache = self.get(slab);
        // SAFETY: the pointer comes from the owning one (`kobj`), and the cache is freed only by
        // its kobject's release once it has a directory (`final_release`).
        unsafe {
            crate::attrs::add_cache(
                sys,
                cache,
                self.kobj(),
                &CacheKtype::<P>::KTYPE,
                slab.sysfs_by_id(cache),
                names,
            )
        };
    }

    /// Drops the registry's reference on a cache that is off every list: frees it now, or, if
    /// it was ever shown in sysfs, through its kobject's last `put` (which may be a sysfs
    /// reader's, later: Linux's `slab_kmem_cache_release` from `kmem_cache_release`).
    ///
    /// # Safety
    /// As for [`CachePtr::release`]; the cache is out of sysfs already (`kobject_del`).
    unsafe fn final_release(self) {
        // SAFETY: not released yet (caller contract).
        let c = unsafe { self.get_unbounded() };
        if c.kobj.is_initialized()
            && let Some(sys) = c.platform.slab_sysfs()
        {
            // SAFETY: the kobject was added with this pointer and is alive; this drops the
            // registry's reference (its first one). The release frees the cache.
            if let Err(e) = unsafe { sys.sysfs.kobject_put(self.kobj()) } {
                sys.sysfs.report(&e);
            }
            return;
        }
        // SAFETY: forwarded contract.
        unsafe { self.release() };
    }
}

/// The release of a cache's kobject (the `release` of the slab kobject type; Linux's
/// `kmem_cache_release`): frees the cache.
///
/// # Safety
/// `k` is the `kobj` field of a `KmemCache<P>` owned by a registry, given to `kobject_add` by
/// [`CachePtr::add_to_sysfs`], whose last reference was just put: nothing uses the cache.
pub(crate) unsafe fn release_cache_kobj<P: Platform>(k: NonNull<KObject>) {
    // SAFETY: `k` was projected from the owning pointer (`CachePtr::kobj`), so stepping back
    // gives that pointer again.
    let cache = CachePtr::<P>(unsafe {
        k.byte_sub(core::mem::offset_of!(KmemCache<P>, kobj))
            .cast::<KmemCache<P>>()
    });
    #[cfg(test)]
    RELEASED.with(|n| n.set(n.get() + 1));
    // SAFETY: the last reference is gone and the cache is off every list (caller contract).
    unsafe { cache.release() };
}

/// The `kobj_type` of the caches of platform `P`: the attribute files (`attrs.rs`) and the
/// release that frees the cache, which is the registry's.
pub(crate) struct CacheKtype<P>(core::marker::PhantomData<P>);

impl<P: Platform> CacheKtype<P> {
    /// The caches' `kobj_type`.
    pub(crate) const KTYPE: kobject::KobjType = kobject::KobjType {
        release: Some(release_cache_kobj::<P>),
        attrs: &crate::attrs::SlabAttrs::<P>::ATTRS,
        dynamic: None,
    };
}

#[cfg(test)]
std::thread_local! {
    /// Caches freed by their kobject's release on this thread (for the unit tests).
    pub(crate) static RELEASED: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// The heads embedded in a cache.
#[derive(Clone, Copy)]
enum CacheHead {
    /// `async_destroy_work`, the work item of the asynchronous destroy.
    AsyncDestroyWork,
    /// `rcu_head`, which releases a `SLAB_TYPESAFE_BY_RCU` cache after a grace period.
    Rcu,
}

impl CacheHead {
    /// The head's byte offset in a `KmemCache<P>`.
    fn offset<P: Platform>(self) -> usize {
        match self {
            CacheHead::AsyncDestroyWork => core::mem::offset_of!(KmemCache<P>, async_destroy_work),
            CacheHead::Rcu => core::mem::offset_of!(KmemCache<P>, rcu_head),
        }
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
            held: HandleRef::Name,
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
        let KmemCacheHandle { cache, held } = cache;
        let mut list = self.slab_mutex.lock();
        let Some(i) = list.iter().position(|e| e.cache.is(cache)) else {
            drop(list);
            if self.destroying.contains(cache) {
                return Err(DestroyError::AlreadyDestroyed {
                    name: cache.cache_name(),
                });
            }
            return Err(DestroyError::NotACache);
        };
        let builtin_static =
            cache.flags().contains(SlabFlags::SLAB_PREALLOCATED) && cache.owner.is_none();
        if (list[i].kmalloc || builtin_static) && held == HandleRef::Name {
            return Err(DestroyError::Permanent {
                name: cache.cache_name(),
            });
        }
        if held == HandleRef::Name && list[i].name.is_none() {
            // The name was destroyed already (a second handle made with `from_ref`), or the
            // cache never had one (a hidden primary): only aliases hold it now, and their
            // references are theirs to drop.
            return Err(DestroyError::AlreadyDestroyed {
                name: cache.cache_name(),
            });
        }
        if let Some(primary) = cache.alias_of() {
            // An alias (a merged dynamic cache, or a static cache set up over a primary): its
            // link or directory goes, its structure is released (which unpins a static one's
            // owner; a static one's storage stays), and its reference on the primary is
            // dropped, which may destroy the primary (a hidden one with no other user, or one
            // whose own name is gone).
            let entry = list.remove(i);
            if let Some(sys) = self.sysfs() {
                match linked_alias(cache) {
                    Some(p) => crate::attrs::unlink_name(sys, p, cache.name()),
                    None => crate::attrs::remove_cache(sys, cache, []),
                }
            }
            drop(list);
            // SAFETY: off the list; the caller promised nobody uses the alias any more (it
            // has no objects of its own: they are the primary's).
            unsafe { entry.cache.final_release() };
            let handle = KmemCacheHandle {
                cache: primary,
                held: HandleRef::AliasReference,
            };
            // SAFETY: the alias's reference is dropped like a name; the caller's contract
            // covers the primary as it did the alias.
            return unsafe { self.kmem_cache_destroy(handle) };
        }
        if held == HandleRef::Name
            && let Some(gone) = list[i].name.take()
            && let Some(sys) = self.sysfs()
            && cache.refcount.load(Ordering::Relaxed) > 1
        {
            // Aliases keep the cache: only this name's link goes.
            crate::attrs::unlink_name(sys, cache, &gone);
        }
        if cache.refcount.fetch_sub(1, Ordering::Relaxed) > 1 {
            return Ok(());
        }
        // Off the list and out of sysfs: the name is free for a new cache at once, even if
        // this one lingers.
        let entry = list.remove(i);
        if let Some(sys) = self.sysfs() {
            crate::attrs::remove_cache(sys, cache, [cache.name()]);
        }
        drop(list);
        // Out of sysfs: no new reader finds it; wait for those inside a `show`/`store`.
        cache.sysfs_drain();
        // SAFETY: nobody else uses the cache (caller contract; sysfs users drained above).
        let exclusive = unsafe { cache.assume_exclusive() };
        if cache.rcu_used.load(Ordering::Relaxed) {
            // Objects may be in `kfree_rcu` flight (the RFC's asynchronous destroy): try
            // quietly, and if objects remain, let a work item wait for RCU and try again.
            let first_try = KmemCache::try_shutdown(&exclusive);
            match first_try {
                // SAFETY: the cache is off the list and unused (caller contract).
                Ok(()) => unsafe { release_after_shutdown(entry.cache) },
                // SAFETY: as above.
                Err(_) => unsafe { self.destroy_later(entry.cache) },
            }
            return Ok(());
        }
        match KmemCache::shutdown(&exclusive) {
            Ok(()) => {
                // SAFETY: the cache is off the list and out of sysfs, so no other `CachePtr`
                // reaches it, and the caller promised no reference is used after `Ok`.
                unsafe { entry.cache.final_release() };
                Ok(())
            }
            Err(objects) => Err(DestroyError::ObjectsRemaining {
                name: cache.cache_name(),
                objects,
                cache,
            }),
        }
    }

    /// The asynchronous part of destroy (the RFC's `async_destroy_work`): puts the cache on the
    /// list of pending destroys and queues the work item embedded in it
    /// ([`Platform::queue_work_head`]), whose function, [`async_destroy_workfn`], waits for
    /// every RCU callback queued so far (the cache's partly filled `rcu_free` sheaves were
    /// handed in by the first try), shuts the cache down again and releases it. Only objects
    /// that remain then are reported, by name and address, and the cache is kept so that they
    /// stay valid. Allocates nothing: the list and the work item are linked through the cache.
    ///
    /// # Safety
    /// The cache is off the list of caches and nothing uses it any more.
    unsafe fn destroy_later(&self, cache: CachePtr<P>) {
        // SAFETY: not released yet: only the work item queued below releases it, after taking
        // it off the pending list (so it stays valid while listed).
        unsafe { self.destroying.push_back(cache.get_unbounded()) };
        let work = cache.head(CacheHead::AsyncDestroyWork);
        // SAFETY: the work head is the cache's, queued once (a cache is destroyed once: the
        // list's `push_back` checked); nothing else uses the cache (caller contract), and the
        // function owns it from now on, in process context, as its contract asks.
        unsafe {
            self.platform
                .queue_work_head(work, async_destroy_workfn::<P>)
        };
    }
}

/// Releases a cache whose shutdown succeeded: at once, or for a `SLAB_TYPESAFE_BY_RCU` cache
/// after one more grace period, on the `rcu_head` embedded in it (Linux's
/// `slab_caches_to_rcu_destroy`: a reader may still look at an object of the cache, so the
/// cache must outlive the reader). Allocates nothing.
///
/// # Safety
/// The cache is off every list and nothing uses it any more.
unsafe fn release_after_shutdown<P: Platform>(cache: CachePtr<P>) {
    // SAFETY: not released yet (caller contract).
    let c = unsafe { cache.get_unbounded() };
    if !c.flags().contains(SlabFlags::SLAB_TYPESAFE_BY_RCU) {
        // SAFETY: forwarded contract.
        unsafe { cache.final_release() };
        return;
    }
    // A clone: the callback may run (and free the cache, its platform included) before
    // `call_rcu_head` returns.
    let platform = c.platform.clone();
    let head = cache.head(CacheHead::Rcu);
    // SAFETY: the head is the cache's, used for nothing else; nothing uses the cache (caller
    // contract), so the callback may release it once RCU readers are done.
    unsafe { platform.call_rcu_head(head, release_cache_rcu::<P>) };
}

/// The RCU callback of [`release_after_shutdown`]: releases the cache around `head`.
///
/// # Safety
/// `head` is the `rcu_head` of a `KmemCache<P>` queued by [`release_after_shutdown`], whose
/// grace period is over.
unsafe fn release_cache_rcu<P: Platform>(head: NonNull<CallbackHead>) {
    // SAFETY: the head is the cache's `rcu_head`, from `CachePtr::head` (caller contract).
    let cache = unsafe { CachePtr::<P>::from_head(head, CacheHead::Rcu) };
    // SAFETY: nothing uses the cache (the contract of `release_after_shutdown`) and the readers
    // that might have are done.
    unsafe { cache.final_release() };
}

/// The function of a cache's `async_destroy_work` (the RFC's
/// `kmem_cache_kfree_rcu_destroy_workfn`): waits for RCU (`rcu_barrier`, so that every
/// `kfree_rcu` object of the cache is back), shuts the cache down reporting whatever is still
/// allocated, takes it off the pending list and releases it, or keeps it (leaked on purpose, so
/// that its objects stay valid) if objects remain.
///
/// # Safety
/// `work` is the `async_destroy_work` head of a `KmemCache<P>` queued by
/// [`SlabAllocator::destroy_later`]; the function runs in process context (it sleeps).
unsafe fn async_destroy_workfn<P: Platform>(work: NonNull<CallbackHead>) {
    // SAFETY: the head is the cache's `async_destroy_work`, from `CachePtr::head` (caller
    // contract).
    let cache = unsafe { CachePtr::<P>::from_head(work, CacheHead::AsyncDestroyWork) };
    // SAFETY: the cache is off the list of caches and only this work item uses it: destroy's
    // caller promised that nothing else does any more; it is released below, last.
    let c = unsafe { cache.get_unbounded() };
    // LAB(rcu) BEGIN
    // LAB-HINT: The RFC's `kmem_cache_kfree_rcu_destroy_workfn` (Linux's mm/slab_common.c,
    // LAB-HINT: "slab: asynchronously destroy caches with outstanding objects"); docs/slab.md,
    // LAB-HINT: "Destroying a cache". In order: wait until every RCU callback queued so far has
    // LAB-HINT: run (`c.platform.rcu_barrier()`: the cache's `kfree_rcu` sheaves come back);
    // LAB-HINT: then the cache is yours alone (`assume_exclusive`): shut it down
    // LAB-HINT: (`KmemCache::shutdown`, which reports any object still allocated), take it off
    // LAB-HINT: the pending list (`DestroyList::leave`), and release it
    // LAB-HINT: (`release_after_shutdown`) only if the shutdown succeeded; else keep it, leaked.
    // LAB-STUB: // Until then the cache stays on the pending list for ever (`slabinfo -d`),
    // LAB-STUB: // leaked with its slabs: its objects stay valid, nothing is freed early.
    // LAB-STUB: let _ = (cache, c, DestroyList::<P>::leave);
    c.platform.rcu_barrier();
    // SAFETY: as above, and the RCU callbacks of the cache have all run (barrier above).
    let exclusive = unsafe { c.assume_exclusive() };
    // Reports every object still allocated (there is no caller left to tell).
    let result = KmemCache::shutdown(&exclusive);
    DestroyList::leave(c);
    if result.is_ok() {
        // SAFETY: off every list now, and unused.
        unsafe { release_after_shutdown(cache) };
    }
    // Otherwise the cache stays, leaked on purpose: its objects remain valid.
    // LAB(rcu) END
}

impl<P: Platform> Drop for SlabAllocator<P> {
    fn drop(&mut self) {
        // Pending destroys release their caches (or keep leaked ones); a `SLAB_TYPESAFE_BY_RCU`
        // one is released by an RCU callback, which the barrier below runs.
        self.platform.flush_work();
        // RCU callbacks still queued (`kfree_rcu` sheaves and objects, `SLAB_TYPESAFE_BY_RCU`
        // pages and caches) point into the caches: let them run before the caches go.
        self.platform.rcu_barrier();
        // The structures of the caches go; their pages stay with the platform (a kernel never
        // drops its allocator; the host platform frees its whole arena).
        let sys = self.sysfs();
        // Newest first: an alias goes before the primary it points at.
        for e in self.slab_mutex.lock().drain(..).rev() {
            if let Some(sys) = sys {
                let cache = e.cache.get(self);
                match linked_alias(cache) {
                    Some(p) => crate::attrs::unlink_name(sys, p, cache.name()),
                    None => crate::attrs::remove_cache(sys, cache, e.name.as_deref()),
                }
            }
            // SAFETY: `&mut self` proves no reference to a cache is still alive (a sysfs
            // reader's keeps it until its put); each listed cache is released once (the
            // kmalloc array's copies are never released).
            unsafe { e.cache.final_release() };
        }
    }
}

impl<P: Platform> SlabAllocator<P> {
    /// A new cache's own name (Linux's `kstrdup_const`): borrowed if the platform says its
    /// bytes are in the kernel image's read-only data, copied otherwise (a module's name, any
    /// name on the host); [`SlabError::NoMemory`] if the copy cannot be allocated.
    pub(crate) fn kstrdup_const(&self, name: &str) -> Result<CacheName, SlabError> {
        if self.platform().is_kernel_rodata(name.as_ptr(), name.len()) {
            // SAFETY: the `Platform` contract: such bytes stay mapped and unchanged for as
            // long as the kernel runs.
            return Ok(unsafe { CacheName::borrow_forever(name) });
        }
        CacheName::copy(name).ok_or(SlabError::NoMemory)
    }
}
