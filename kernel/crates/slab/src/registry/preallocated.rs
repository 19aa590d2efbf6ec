//! Static caches (the RFC "static kmem_cache instances for core caches", v3 02/10 and 03/10):
//! a cache whose `struct kmem_cache` has static storage, set up in place by
//! [`SlabAllocator::kmem_cache_setup`].
//!
//! Code allocating from a dynamic cache loads the cache's address from a variable on every
//! allocation; code using a static cache has the address as a link-time constant. The storage
//! is [`KmemCacheStatic`] (the kernel's `KmemCacheOpaque` and C's `struct kmem_cache_opaque`
//! have its size and alignment, for code that cannot see the fields). The rules:
//!
//! - the cache gets `SLAB_PREALLOCATED`; setup returns this instance and no other, but the
//!   instance may be an alias of a compatible primary cache, whose storage it uses (the
//!   maintainer's primary caches, see [`SlabAllocator::kmem_cache_setup`]); a later
//!   `kmem_cache_create` may merge into a built-in static cache that is a primary;
//! - in sysfs a static primary goes by its own name, never a unique id (two static caches of
//!   the same geometry get distinct directories); names merged into it link to that name; a
//!   static alias is a link to its primary's directory, like a merged name;
//! - it is never freed: its final release drops the kernel objects it holds and the reference
//!   on its `owner` taken at setup, and leaves the storage alone;
//! - with an owner (a module's kobject) it is never a primary (nothing may depend on it), and
//!   destroying it is allowed (the module does it on unload; the unload waits until the
//!   owner's reference is dropped); a built-in static cache (no owner) cannot be destroyed;
//! - setting up the same storage twice is refused ([`SlabError::AlreadySetUp`]).

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use super::SlabAllocator;
use super::owned::CachePtr;
use crate::cache::{KmemCache, SlabError};
use crate::flags::{KmemCacheArgs, SlabFlags};
use crate::layout::check_args;
use crate::name::CacheName;
use crate::platform::Platform;

/// The name of the hidden primary made for a module's static cache that has nothing to merge
/// into (see [`SlabAllocator::kmem_cache_setup`]). Not the module cache's name: that string is
/// the module's memory, and the hidden primary may outlive the module (a cache created later
/// can merge into it). In listings it is followed by its aliases' names; in sysfs it goes by
/// its unique id, as every mergeable cache does.
pub const HIDDEN_PRIMARY_NAME: &str = "hidden-primary";

/// The storage of a static cache: exactly a `KmemCache<P>`'s size and alignment, uninitialised
/// until [`SlabAllocator::kmem_cache_setup`] builds the cache in it.
#[repr(transparent)]
pub struct KmemCacheStatic<P: Platform>(UnsafeCell<MaybeUninit<KmemCache<P>>>);

// SAFETY: the storage is written once, by `kmem_cache_setup` under the allocator's lock, before
// anyone can reach the cache in it; afterwards it is a `KmemCache`, which is shared between
// CPUs by design.
unsafe impl<P: Platform> Sync for KmemCacheStatic<P> {}

impl<P: Platform> KmemCacheStatic<P> {
    /// Storage not yet set up.
    pub const fn new() -> Self {
        Self(UnsafeCell::new(MaybeUninit::uninit()))
    }

    /// The cache in the storage (Linux's `to_kmem_cache`).
    ///
    /// # Safety
    /// [`SlabAllocator::kmem_cache_setup`] of this storage returned `Ok` before (it happened
    /// before this call), the cache was not destroyed since, and the allocator that set it up
    /// is alive (and stays so while the reference is used: its drop drops the cache in place).
    /// The kernel's allocator, a `static`, is never dropped.
    pub unsafe fn get(&self) -> &KmemCache<P> {
        // SAFETY: set up (caller contract): the storage holds a live cache.
        unsafe { (*self.0.get()).assume_init_ref() }
    }

    fn as_ptr(&self) -> NonNull<KmemCache<P>> {
        NonNull::new(self.0.get().cast()).expect("a static's address")
    }
}

impl<P: Platform> Default for KmemCacheStatic<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> SlabAllocator<P> {
    /// Sets up a cache in static storage (the RFC's `kmem_cache_setup`): like
    /// [`Self::kmem_cache_create`], but the cache is built in `storage`; see the
    /// module docs of `registry::preallocated` (in the source) for the rules. With `args.owner` (a module's kobject) the owner is
    /// pinned until the cache's final release.
    ///
    /// Merging (the maintainer's primary caches): if a compatible cache exists (a dynamic or
    /// built-in static cache, merging on), the static cache becomes an **alias** of it: the
    /// structure in `storage` knows its own name and owns its sysfs link, and its operations
    /// use the primary's storage ([`KmemCache::primary`]). Otherwise a built-in static cache is
    /// its own primary, and a module's gets a hidden dynamic primary made for it, so that later
    /// caches can still merge with it (a module's static cache is never a primary: it could be
    /// unloaded).
    ///
    /// Errors: bad arguments, no memory, or [`SlabError::AlreadySetUp`] if `storage` holds a
    /// cache already. With `SLAB_PANIC`, an error panics.
    ///
    /// The cache is borrowed from the allocator, like a [`crate::KmemCacheHandle`]: its
    /// storage is `'static`, but dropping the allocator drops the cache in place (its sheaves,
    /// barns and statistics go), so a reference must not outlive the allocator. The kernel's
    /// allocator is a `static` and never dropped, so there the reference is `'static`; code
    /// that reaches the cache through the storage's address ([`KmemCacheStatic::get`]) has
    /// that rule in its safety contract. This reference cannot outlive the allocator:
    ///
    /// ```compile_fail,E0505
    /// use slab::host::{HostConfig, HostPlatform};
    /// use slab::{KmemCacheArgs, KmemCacheStatic, SlabAllocator, SlabFlags};
    ///
    /// static STORAGE: KmemCacheStatic<HostPlatform> = KmemCacheStatic::new();
    /// let platform = HostPlatform::new(HostConfig::default());
    /// let _cpu = platform.register_cpu();
    /// let slab = SlabAllocator::new(platform.clone()).unwrap();
    /// let cache = slab
    ///     .kmem_cache_setup(&STORAGE, "s", 64, KmemCacheArgs::default(), SlabFlags::empty())
    ///     .unwrap();
    /// drop(slab); // error[E0505]: the cache borrows the allocator
    /// let _ = cache.slabinfo();
    /// ```
    #[doc(alias = "kmem_cache_setup_usercopy")]
    pub fn kmem_cache_setup(
        &self,
        storage: &'static KmemCacheStatic<P>,
        name: &str,
        size: usize,
        args: KmemCacheArgs,
        flags: SlabFlags,
    ) -> Result<&KmemCache<P>, SlabError> {
        let flags = flags | self.debug_flags | SlabFlags::SLAB_PREALLOCATED;
        if let Err(e) = check_args(size, &args) {
            return Self::create_failed(name, flags, SlabError::Layout(e));
        }
        // The cache's own name (`kstrdup_const`): a module's is copied.
        let name = match self.kstrdup_const(name) {
            Ok(name) => name,
            Err(e) => return Self::create_failed(name, flags, e),
        };
        let ptr = storage.as_ptr();
        let mut list = self.slab_mutex.lock();
        // Only addresses are compared: the storage is not read.
        let taken = list.iter().any(|e| e.cache.addr() == ptr)
            || self.destroying.contains_addr(ptr.as_ptr() as usize);
        if taken {
            return Self::create_failed(&name, flags, SlabError::AlreadySetUp);
        }
        // The owner's pin comes first, so that a dead owner leaves nothing behind (no hidden
        // primary); a later failure drops it again.
        if let Err(e) = self.pin_owner(args.owner) {
            return Self::create_failed(&name, flags, e);
        }
        let failed = |e: SlabError| {
            self.unpin_owner(args.owner);
            Self::create_failed(&name, flags, e)
        };
        let module = args.owner.is_some();
        let mut primary = if self.merge_enabled() {
            self.find_mergeable(&list, size, &args, flags)
                .map(|i| list[i].cache)
        } else {
            None
        };
        // A module's cache with nothing to merge into gets a hidden primary (made below, once
        // the cache's own structure is built, so that a failure leaves nothing listed).
        let hidden =
            primary.is_none() && module && self.merge_enabled() && self.could_merge(&args, flags);
        // An alias is never a merge target itself, nor is a module's cache.
        let alias = primary.is_some() || hidden;
        let own_flags = if alias || module {
            flags | SlabFlags::SLAB_NO_MERGE
        } else {
            flags
        };
        let cache = match KmemCache::build(
            self.platform.clone(),
            name.clone(),
            size,
            &args,
            own_flags,
            !alias,
        ) {
            Ok(cache) => cache,
            Err(e) => return failed(e),
        };
        if hidden {
            // A hidden dynamic primary: no name on the list, so nobody destroys it but its last
            // alias; later caches may merge into it, and it may outlive the module. So it is
            // not named with the module's string (module memory), but `HIDDEN_PRIMARY_NAME`.
            let hidden_flags = flags - SlabFlags::SLAB_PREALLOCATED;
            let hidden_args = KmemCacheArgs {
                owner: None,
                ..args
            };
            match KmemCache::new(
                self.platform.clone(),
                CacheName::from_static(HIDDEN_PRIMARY_NAME),
                size,
                &hidden_args,
                hidden_flags,
                true,
            ) {
                Ok(hidden) => {
                    let hidden = CachePtr::new(hidden);
                    hidden
                        .get(self)
                        .refcount
                        .store(0, core::sync::atomic::Ordering::Relaxed);
                    self.register(&mut list, hidden, None);
                    primary = Some(hidden);
                }
                // The structure built above holds no memory of the platform's (no sheaves).
                Err(e) => return failed(e),
            }
        }
        if let Some(p) = primary {
            self.attach_alias(&cache, p);
        }
        // SAFETY: the storage is `'static` and holds no cache (checked above under
        // `slab_mutex`, which every setup takes): nobody can be using it.
        let cache = unsafe { CachePtr::place(ptr, cache) };
        self.register(&mut list, cache, Some(name));
        // SAFETY: set up just now; the result borrows the allocator, whose drop (the only other
        // way the cache goes besides the unsafe destroy) cannot happen while it is used.
        Ok(unsafe { storage.get() })
    }

    /// Takes the reference a module's cache holds on its `owner` until the cache's final
    /// release ([`KmemCacheArgs::owner`]); a released or misused owner (a module already
    /// gone) is refused (reported to sysfs) rather than pinned.
    pub(super) fn pin_owner(
        &self,
        owner: Option<&'static kobject::KObject>,
    ) -> Result<(), SlabError> {
        if let Some(owner) = owner
            && let Err(e) = owner.get()
        {
            if let Some(sys) = self.platform.slab_sysfs() {
                sys.sysfs.report(&e);
            }
            return Err(SlabError::NoMemory);
        }
        Ok(())
    }

    /// Drops the reference a failed creation or setup took on its owner.
    pub(super) fn unpin_owner(&self, owner: Option<&'static kobject::KObject>) {
        if let Some(owner) = owner {
            // SAFETY: the creation took this reference a moment ago ([`Self::pin_owner`]) and
            // has given the owner to nothing else; the caller's own reference keeps it alive.
            unsafe { put_owner(&self.platform, owner) };
        }
    }
}

/// Drops the reference a module cache's creation took on its `owner` (reported, not fatal, if
/// the owner's count is already wrong).
///
/// # Safety
/// The caller holds that reference and gives it up; the owner is alive until it is dropped.
pub(crate) unsafe fn put_owner<P: Platform>(platform: &P, owner: &'static kobject::KObject) {
    if let Some(sys) = platform.slab_sysfs() {
        let this = owner.this_ptr().unwrap_or(NonNull::from(owner));
        // SAFETY: forwarded contract.
        if let Err(e) = unsafe { sys.sysfs.kobject_put(this) } {
            sys.sysfs.report(&e);
        }
    }
}
