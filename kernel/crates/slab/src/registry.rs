//! The list of caches, cache creation with merging, and destruction (Linux's `slab_common.c`).

use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;
use core::sync::atomic::Ordering;

use crate::cache::destroy::DestroyList;
use crate::cache::{KmemCache, SlabError};
use crate::flags::{KmemCacheArgs, SlabFlags};
use crate::layout::{
    KMALLOC_SIZES, SMALL_INDEX, SMALL_KMALLOC_MAX, WORD, align_up, calculate_alignment, check_args,
};
use crate::name::CacheName;
use crate::platform::Platform;
use crate::sync::Mutex;

#[allow(unsafe_code)]
mod owned;
#[allow(unsafe_code)]
mod preallocated;

pub use preallocated::{HIDDEN_PRIMARY_NAME, KmemCacheStatic};

use owned::CachePtr;

/// Caches freed by their kobject's release on this thread (unit tests).
#[cfg(test)]
pub(crate) fn owned_released() -> usize {
    owned::RELEASED.with(|n| n.get())
}

/// The caches waiting for their asynchronous destroy: a list linked through the caches (so that
/// destroying allocates nothing), shared with the work items that finish them (each cache on
/// it holds a reference, so the list outlives them).
pub(crate) type Destroying<P> = alloc::sync::Arc<DestroyList<P>>;

/// Why [`SlabAllocator::kmem_cache_destroy`] did not release a cache.
pub enum DestroyError<'a, P: Platform> {
    /// Objects are still allocated ("Objects remaining on `__kmem_cache_shutdown()`"): every
    /// one is listed; the cache is kept alive (deliberately leaked) so they stay valid and can
    /// still be freed, but it is removed from the list of caches.
    ObjectsRemaining {
        /// Name of the cache (a [`CacheName`]: it outlives the cache).
        name: CacheName,
        /// Addresses of the objects still allocated, then of the prefilled sheaves not
        /// returned (Linux refuses likewise: their objects remain). A drained oversize sheaf,
        /// pages of its own, is not listed, but keeps the cache all the same: the list may then
        /// be empty.
        objects: Vec<usize>,
        /// The cache, kept for as long as the allocator, so that those objects can be freed.
        cache: &'a KmemCache<P>,
    },
    /// The kmalloc caches and built-in static caches (set up without an owner) live as long
    /// as the allocator.
    Permanent {
        /// Name of the cache (a [`CacheName`]: it outlives the cache).
        name: CacheName,
    },
    /// The cache is being destroyed already (its destruction waits for `kfree_rcu` objects
    /// in flight), or its name is gone while aliases keep it: a second destroy of the same
    /// name. Nothing changes (the aliases' references stay theirs).
    AlreadyDestroyed {
        /// Name of the cache (a [`CacheName`]: it outlives the cache).
        name: CacheName,
    },
    /// The handle names no cache of this allocator (a cache destroyed and freed already, or
    /// another allocator's).
    NotACache,
}

impl<P: Platform> fmt::Debug for DestroyError<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestroyError::ObjectsRemaining { name, objects, .. } => f
                .debug_struct("ObjectsRemaining")
                .field("name", name)
                .field("objects", objects)
                .finish_non_exhaustive(),
            DestroyError::Permanent { name } => {
                f.debug_struct("Permanent").field("name", name).finish()
            }
            DestroyError::AlreadyDestroyed { name } => f
                .debug_struct("AlreadyDestroyed")
                .field("name", name)
                .finish(),
            DestroyError::NotACache => f.write_str("NotACache"),
        }
    }
}

/// Equal when they name the same cache (the same one, for `ObjectsRemaining`) and objects.
impl<P: Platform> PartialEq for DestroyError<'_, P> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                DestroyError::ObjectsRemaining {
                    name: a,
                    objects: x,
                    cache: c,
                },
                DestroyError::ObjectsRemaining {
                    name: b,
                    objects: y,
                    cache: d,
                },
            ) => a == b && x == y && core::ptr::eq(*c, *d),
            (DestroyError::Permanent { name: a }, DestroyError::Permanent { name: b }) => a == b,
            (
                DestroyError::AlreadyDestroyed { name: a },
                DestroyError::AlreadyDestroyed { name: b },
            ) => a == b,
            (DestroyError::NotACache, DestroyError::NotACache) => true,
            _ => false,
        }
    }
}

impl<P: Platform> Eq for DestroyError<'_, P> {}

/// What a [`KmemCacheHandle`] holds on its cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandleRef {
    /// The cache's own name, as `kmem_cache_create` or `kmem_cache_setup` gave it.
    Name,
    /// An alias's reference on its primary (no name): destroying it only drops the
    /// reference, which may take the primary with it.
    AliasReference,
}

/// Where a cache of [`SlabAllocator::caches_of`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheState {
    /// On the list of caches: not destroyed yet (or its name destroyed while aliases use it).
    Listed,
    /// Destroyed, its release waiting for objects in `kfree_rcu` flight.
    DestroyPending,
}

struct CacheEntry<P: Platform> {
    cache: CachePtr<P>,
    /// The cache's own name while its handle lives (a kmalloc cache's for ever); `None` for a
    /// primary whose name was destroyed while aliases still use it, and for a hidden primary.
    name: Option<CacheName>,
    kmalloc: bool,
}

/// The owner of one name of a cache: what [`SlabAllocator::kmem_cache_create`] returns and
/// [`SlabAllocator::kmem_cache_destroy`] takes back (Linux's `struct kmem_cache *`, with the
/// ownership spelled out). It dereferences to the [`KmemCache`].
///
/// Neither `Clone` nor `Copy`: once destroyed, the handle is gone, so a destroyed cache cannot
/// be used through it. Each call of `kmem_cache_create` gives its own handle to its own
/// [`KmemCache`], also when it merges into an existing cache: the handle's cache is then an
/// alias that knows its name and uses the primary's storage ([`KmemCache::primary`]). A cache that lives
/// as long as the allocator can give up its handle for a plain reference with
/// [`KmemCacheHandle::leak`]; dropping a handle likewise keeps the cache and the name.
pub struct KmemCacheHandle<'a, P: Platform> {
    cache: &'a KmemCache<P>,
    held: HandleRef,
}

impl<'a, P: Platform> KmemCacheHandle<'a, P> {
    /// Keeps the cache (and this name) for as long as the allocator: the handle becomes a
    /// plain shared reference, for caches that are never destroyed.
    pub fn leak(self) -> &'a KmemCache<P> {
        self.cache
    }
}

impl<P: Platform> Deref for KmemCacheHandle<'_, P> {
    type Target = KmemCache<P>;
    fn deref(&self) -> &KmemCache<P> {
        self.cache
    }
}

impl<P: Platform> fmt::Debug for KmemCacheHandle<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmemCacheHandle")
            .field("cache", &self.cache.name())
            .field("held", &self.held)
            .finish()
    }
}

/// The slab allocator: the caches (`slab_caches` under `slab_mutex`) and the kmalloc caches.
///
/// Caches are boxed and never move, so references returned by
/// [`SlabAllocator::kmem_cache_create`] stay valid as long as the allocator (or until the cache
/// is successfully destroyed).
pub struct SlabAllocator<P: Platform> {
    pub(crate) platform: P,
    /// Flags added to every cache: the debug flags (Linux's `slub_debug` boot option) and
    /// `SLAB_HARDENED_FREE` (unless `slab_nohardened`).
    debug_flags: SlabFlags,
    /// Whether caches may merge (Linux's `slab_nomerge` boot option turns it off).
    merge: bool,
    slab_mutex: Mutex<Vec<CacheEntry<P>>>,
    /// Caches whose destruction waits for `kfree_rcu` objects in flight (`slabinfo -d` shows
    /// them): off `slab_mutex`'s list already, so their names are free for new caches. Made
    /// once, with the allocator.
    pub(crate) destroying: Destroying<P>,
    pub(crate) kmalloc_caches: [CachePtr<P>; KMALLOC_SIZES.len()],
    /// The kmalloc cache of each size up to [`SMALL_KMALLOC_MAX`], entry `(size - 1) / 8`:
    /// [`SMALL_INDEX`] with the cache pointers already looked up, so that `kmalloc`'s fast
    /// path goes from a small size to its cache with one load.
    pub(crate) kmalloc_small: [CachePtr<P>; SMALL_KMALLOC_MAX / 8],
    /// Whether caches are shown in sysfs yet ([`SlabAllocator::sysfs_init`]; Linux's
    /// `slab_state >= FULL`). Read and written under `slab_mutex`.
    sysfs_up: core::sync::atomic::AtomicBool,
}

/// The primary of an alias, which sysfs shows as a link to the primary's directory (Linux's
/// `sysfs_slab_alias`): a merged dynamic cache and a static cache set up over a primary
/// alike, so that every directory is one cache (`tools/mm/slabinfo` counts each directory's
/// slabs) and the alias is counted in its primary's `aliases`.
fn linked_alias<P: Platform>(cache: &KmemCache<P>) -> Option<&KmemCache<P>> {
    cache.alias_of()
}

const KMALLOC_NAMES: [&str; KMALLOC_SIZES.len()] = [
    "kmalloc-8",
    "kmalloc-16",
    "kmalloc-32",
    "kmalloc-64",
    "kmalloc-96",
    "kmalloc-128",
    "kmalloc-192",
    "kmalloc-256",
    "kmalloc-512",
    "kmalloc-1k",
    "kmalloc-2k",
    "kmalloc-4k",
    "kmalloc-8k",
];

/// Boot-time options of the slab allocator, as Linux takes them from the kernel command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabOptions {
    /// Debug flags (a subset of [`SlabFlags::SLAB_DEBUG_FLAGS`]) turned on for every cache, the
    /// kmalloc caches included (`slub_debug`). Such caches have no sheaves and are never
    /// merged, so every operation is checked (and slow).
    pub debug: SlabFlags,
    /// Never merge caches (`slab_nomerge`).
    pub nomerge: bool,
    /// Turn off the free checks that are on by default (Sheaf's boot option
    /// `slab_nohardened`, for measuring what they cost). By default every free checks, from
    /// the page owner, that the pointer is an object of the cache (`kmem_cache_free`) or of a
    /// slab at all (`kfree`) and at an object boundary, on the fast path, and drops a bad free
    /// with a report, as Linux's `cache_from_obj` does under `CONFIG_SLAB_FREELIST_HARDENED`
    /// (which checks the cache only). Off, a bad pointer is only caught when it reaches its
    /// slab: it may be handed out again before. The cost: `docs/slab.md`.
    pub nohardened: bool,
}

impl<P: Platform> SlabAllocator<P> {
    /// Creates the allocator and its kmalloc caches (`kmem_cache_init` + `create_kmalloc_caches`).
    pub fn new(platform: P) -> Result<Self, SlabError> {
        Self::with_options(platform, SlabOptions::default())
    }

    /// Like [`SlabAllocator::new`], with boot-time options (see [`SlabOptions`]).
    pub fn with_options(platform: P, options: SlabOptions) -> Result<Self, SlabError> {
        let debug = options.debug & SlabFlags::SLAB_DEBUG_FLAGS;
        let hardened = if options.nohardened {
            SlabFlags::empty()
        } else {
            SlabFlags::SLAB_HARDENED_FREE
        };
        let mut list = Vec::new();
        for (&size, &name) in KMALLOC_SIZES.iter().zip(KMALLOC_NAMES.iter()) {
            // kmalloc objects are naturally aligned (Linux's `create_boot_cache` for
            // `SLAB_KMALLOC`): to the largest power of two dividing the size, so 32 for
            // kmalloc-96 and 64 for kmalloc-192. The slot stride gives it anyway; saying it
            // makes `align` in sysfs true and keeps it true with debug padding.
            let args = KmemCacheArgs {
                align: 1 << size.trailing_zeros(),
                ..KmemCacheArgs::default()
            };
            let cache = KmemCache::new(
                platform.clone(),
                CacheName::from_static(name),
                size,
                &args,
                debug | hardened | SlabFlags::SLAB_KMALLOC,
                true,
            )?;
            list.push(CacheEntry {
                cache: CachePtr::new(cache),
                name: Some(CacheName::from_static(name)),
                kmalloc: true,
            });
        }
        let kmalloc_caches: [CachePtr<P>; KMALLOC_SIZES.len()] =
            core::array::from_fn(|i| list[i].cache);
        let kmalloc_small = SMALL_INDEX.map(|class| kmalloc_caches[class as usize]);
        let slab = Self {
            platform,
            debug_flags: debug | hardened,
            merge: !options.nomerge,
            slab_mutex: Mutex::new(list),
            destroying: alloc::sync::Arc::new(DestroyList::new()),
            kmalloc_caches,
            kmalloc_small,
            sysfs_up: core::sync::atomic::AtomicBool::new(false),
        };
        // A platform whose sysfs is ready shows the caches at once; the kernel's becomes ready
        // later (it needs kmalloc) and calls `sysfs_init` then.
        slab.sysfs_init();
        Ok(slab)
    }

    /// Shows every cache in the platform's sysfs, and every cache created from now on (Linux's
    /// `slab_sysfs_init`, a late initcall: sysfs itself needs kmalloc). Does nothing if the
    /// platform has no sysfs ([`Platform::slab_sysfs`]) or it ran already.
    pub fn sysfs_init(&self) {
        let list = self.slab_mutex.lock();
        let Some(sys) = self.platform.slab_sysfs() else {
            return;
        };
        if self.sysfs_up.swap(true, Ordering::Relaxed) {
            return;
        }
        for e in list.iter() {
            self.show_in_sysfs(sys, e.cache, e.name.as_deref());
        }
    }

    /// The platform's sysfs, if caches are shown in it (`slab_mutex` held by the caller).
    pub(crate) fn sysfs(&self) -> Option<crate::platform::SlabSysfs<'_>> {
        if self.sysfs_up.load(Ordering::Relaxed) {
            self.platform.slab_sysfs()
        } else {
            None
        }
    }

    /// Whether `cache` goes by its unique id in sysfs (mergeable, merging on), with a link per
    /// name, rather than by its name.
    pub(crate) fn sysfs_by_id(&self, cache: &KmemCache<P>) -> bool {
        // A static cache is self-named (the RFC): two of the same geometry would share an id.
        self.merge && cache.mergeable() && !cache.flags().contains(SlabFlags::SLAB_PREALLOCATED)
    }

    /// Whether new caches may become aliases of existing ones (false under `slab_nomerge`).
    pub fn merge_enabled(&self) -> bool {
        self.merge
    }

    /// The debug flags every cache gets (see [`SlabOptions::debug`]).
    pub fn debug_flags(&self) -> SlabFlags {
        self.debug_flags & SlabFlags::SLAB_DEBUG_FLAGS
    }

    /// Whether every free is checked against the object's page owner (the default; see
    /// [`SlabOptions::nohardened`]).
    pub fn hardened(&self) -> bool {
        self.debug_flags.contains(SlabFlags::SLAB_HARDENED_FREE)
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// Creates a cache of `size`-byte objects (`kmem_cache_create`), or returns a compatible
    /// existing cache as a refcounted alias (cache merging).
    ///
    /// Merging: a cache without debug flags, `SLAB_TYPESAFE_BY_RCU`, `SLAB_NO_MERGE`,
    /// constructor, usercopy region, explicit free pointer offset or explicit sheaf capacity is
    /// served by the newest existing mergeable cache with the same `SLAB_MERGE_SAME` flags whose
    /// object slot is at least the (aligned) size, is a multiple of the alignment and wastes
    /// less than a word. The alias bumps the cache's refcount and widens its `object_size`.
    ///
    /// With `args.owner` (a module's kobject) the cache pins its owner from creation until its
    /// final release (after an asynchronous destroy too), is never merged, and is listed by
    /// [`Self::caches_of`]; a released owner is refused.
    ///
    /// With `SLAB_PANIC`, failure panics instead of returning an error.
    pub fn kmem_cache_create(
        &self,
        name: &str,
        size: usize,
        args: KmemCacheArgs,
        flags: SlabFlags,
    ) -> Result<KmemCacheHandle<'_, P>, SlabError> {
        let flags = flags | self.debug_flags;
        // Bad arguments are refused before anything else, merging included.
        if let Err(e) = check_args(size, &args) {
            return Self::create_failed(name, flags, SlabError::Layout(e));
        }
        // The cache's own name (`kstrdup_const`), made before the lock is taken.
        let name = match self.kstrdup_const(name) {
            Ok(name) => name,
            Err(e) => return Self::create_failed(name, flags, e),
        };
        let mut list = self.slab_mutex.lock();
        // A module's cache pins its owner until its final release, and is never merged (see
        // `KmemCacheArgs::owner`).
        if let Err(e) = self.pin_owner(args.owner) {
            return Self::create_failed(&name, flags, e);
        }
        let flags = if args.owner.is_some() {
            flags | SlabFlags::SLAB_NO_MERGE
        } else {
            flags
        };
        let mergeable = if self.merge {
            self.find_mergeable(&list, size, &args, flags)
        } else {
            None
        };
        if let Some(i) = mergeable {
            // An alias: a structure of its own (its name, its sysfs link), no sheaves, its
            // operations going to the primary's storage.
            let primary = list[i].cache;
            let flags = flags | SlabFlags::SLAB_NO_MERGE;
            return match KmemCache::new(
                self.platform.clone(),
                name.clone(),
                size,
                &args,
                flags,
                false,
            ) {
                Ok(alias) => {
                    self.attach_alias(&alias, primary);
                    let alias = CachePtr::new(alias);
                    self.register(&mut list, alias, Some(name));
                    Ok(KmemCacheHandle {
                        cache: alias.get(self),
                        held: HandleRef::Name,
                    })
                }
                Err(e) => Self::create_failed(&name, flags, e),
            };
        }
        match KmemCache::new(
            self.platform.clone(),
            name.clone(),
            size,
            &args,
            flags,
            true,
        ) {
            Ok(cache) => {
                let cache = CachePtr::new(cache);
                self.register(&mut list, cache, Some(name));
                Ok(KmemCacheHandle {
                    cache: cache.get(self),
                    held: HandleRef::Name,
                })
            }
            Err(e) => {
                self.unpin_owner(args.owner);
                Self::create_failed(&name, flags, e)
            }
        }
    }

    /// Lists a new cache under its name (or, for a hidden primary made for a module's static
    /// cache, no name: nothing but its aliases' references keeps it) and shows it in sysfs
    /// (`slab_mutex` held: `list` is its list).
    fn register(&self, list: &mut Vec<CacheEntry<P>>, cache: CachePtr<P>, name: Option<CacheName>) {
        if let Some(sys) = self.sysfs() {
            self.show_in_sysfs(sys, cache, name.as_deref());
        }
        list.push(CacheEntry {
            cache,
            name,
            kmalloc: false,
        });
    }

    /// Shows a listed cache in sysfs: an alias (merged dynamic or static) as a link to its
    /// primary's directory (Linux's `sysfs_slab_alias`), any other as a directory of its own.
    fn show_in_sysfs(
        &self,
        sys: crate::platform::SlabSysfs<'_>,
        cache: CachePtr<P>,
        name: Option<&str>,
    ) {
        let c = cache.get(self);
        match (linked_alias(c), name) {
            (Some(primary), Some(name)) => crate::attrs::link_name(sys, primary, name),
            (Some(_), None) => {}
            (None, _) => cache.add_to_sysfs(self, sys, name.as_slice()),
        }
    }

    /// Makes `alias` use `primary`'s storage (`slab_mutex` held): it holds a reference on the
    /// primary, which widens its objects to fit.
    fn attach_alias(&self, alias: &KmemCache<P>, primary: CachePtr<P>) {
        let p = primary.get(self);
        alias
            .primary
            .store(core::ptr::from_ref(p).cast_mut(), Ordering::Relaxed);
        p.refcount.fetch_add(1, Ordering::Relaxed);
        p.widen_object_size(alias.object_size());
    }

    /// Whether a cache with these arguments and flags could merge at all (Linux's
    /// `slab_unmergeable` on the new cache's side).
    fn could_merge(&self, args: &KmemCacheArgs, flags: SlabFlags) -> bool {
        !(flags.intersects(SlabFlags::SLAB_NEVER_MERGE)
            || args.ctor.is_some()
            || args.usersize != 0
            || args.sheaf_capacity != 0
            || args.freeptr_offset.is_some())
    }

    /// A failed creation: the error, or a panic with `SLAB_PANIC` (as Linux).
    pub(crate) fn create_failed<T>(
        name: &str,
        flags: SlabFlags,
        e: SlabError,
    ) -> Result<T, SlabError> {
        if flags.contains(SlabFlags::SLAB_PANIC) {
            panic!("kmem_cache_create({name}) failed: {e:?}");
        }
        Err(e)
    }

    /// Finds an existing cache that a new cache can alias (`find_mergeable`), newest first.
    ///
    /// Never merged: debug flags, `SLAB_TYPESAFE_BY_RCU`, `SLAB_NO_MERGE`, a constructor, a
    /// usercopy region, an explicit sheaf capacity (on either side). A candidate must agree on
    /// `SLAB_MERGE_SAME` flags, be at least as large, have a size that is a multiple of the
    /// requested alignment, and waste less than a word per object.
    fn find_mergeable(
        &self,
        list: &[CacheEntry<P>],
        size: usize,
        args: &KmemCacheArgs,
        flags: SlabFlags,
    ) -> Option<usize> {
        if !self.could_merge(args, flags) {
            return None;
        }
        let size = align_up(size, WORD);
        let align = calculate_alignment(flags, args.align, size);
        let size = align_up(size, align);
        list.iter().rposition(|e| {
            let s = e.cache.get(self);
            s.mergeable()
                && size <= s.size()
                && (flags & SlabFlags::SLAB_MERGE_SAME) == (s.flags() & SlabFlags::SLAB_MERGE_SAME)
                && s.size() % align == 0
                && s.size() - size < WORD
        })
    }

    /// Finds a cache by name: the newest cache of that name, which for a merged cache is the
    /// alias (see [`KmemCache::primary`] for the cache whose storage it uses).
    pub fn find_cache(&self, name: &str) -> Option<&KmemCache<P>> {
        let list = self.slab_mutex.lock();
        list.iter()
            .rev()
            .find(|e| e.name.as_deref() == Some(name))
            .map(|e| e.cache.get(self))
    }

    /// The cache (primary or alias) whose structure is at `addr`, if one is on the list: how a
    /// C caller's `struct kmem_cache *` is checked before it is used. Only addresses are
    /// compared; `addr` is never read.
    pub fn cache_at(&self, addr: *const core::ffi::c_void) -> Option<&KmemCache<P>> {
        let list = self.slab_mutex.lock();
        list.iter()
            .map(|e| e.cache.get(self))
            .find(|c| core::ptr::eq(core::ptr::from_ref(*c).cast(), addr))
    }

    /// Every primary cache on the list, oldest first, with the names of its aliases (for
    /// `slabinfo`-style listings: an alias has no storage of its own).
    pub fn caches(&self) -> Vec<(&KmemCache<P>, Vec<CacheName>)> {
        let list = self.slab_mutex.lock();
        list.iter()
            .map(|e| e.cache.get(self))
            .filter(|s| s.alias_of().is_none())
            .map(|s| (s, self.alias_names(&list, s).collect()))
            .collect()
    }

    /// The names of the aliases of `primary` on `list`, oldest first.
    fn alias_names<'l>(
        &'l self,
        list: &'l [CacheEntry<P>],
        primary: &'l KmemCache<P>,
    ) -> impl Iterator<Item = CacheName> + 'l {
        list.iter().filter_map(move |e| {
            let of = e.cache.get(self).alias_of();
            of.is_some_and(|p| core::ptr::eq(p, primary))
                .then(|| e.name.clone())
                .flatten()
        })
    }

    /// Every name `cache` goes by: its own (until its handle is destroyed), then its aliases'.
    pub fn cache_names(&self, cache: &KmemCache<P>) -> Vec<CacheName> {
        let list = self.slab_mutex.lock();
        let own = list
            .iter()
            .find(|e| e.cache.is(cache))
            .and_then(|e| e.name.clone());
        own.into_iter()
            .chain(self.alias_names(&list, cache))
            .collect()
    }

    /// Writes `/proc/slabinfo` (version 2.1) for every cache: active and total objects, slot
    /// size, objects and pages per slab, then the (unused, always 0) SLAB-era tunables, then
    /// active and total slabs. Objects cached in sheaves count as active, as in Linux.
    pub fn slabinfo_show(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        writeln!(w, "slabinfo - version: 2.1")?;
        writeln!(
            w,
            "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : \
             tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
        )?;
        let list = self.slab_mutex.lock();
        for e in list.iter() {
            let s = e.cache.get(self);
            if s.alias_of().is_some() {
                continue; // an alias's objects are its primary's
            }
            let i = s.slabinfo();
            writeln!(
                w,
                "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
                s.name(),
                i.active_objs,
                i.num_objs,
                s.size(),
                s.objs_per_slab(),
                1usize << s.order(),
                0,
                0,
                0,
                i.active_slabs,
                i.num_slabs,
                0
            )?;
        }
        Ok(())
    }

    /// Waits until every object freed with `kfree_rcu` before the call is back in its cache
    /// (`kvfree_rcu_barrier`): every cache hands in every CPU's partly filled `rcu_free` sheaf
    /// ([`KmemCache::flush_rcu_sheaves`]), then [`Platform::rcu_barrier`] waits for all the
    /// callbacks queued so far, those sheaves' included. Sleeps: process context only.
    ///
    /// Unlike [`Platform::rcu_barrier`] alone, this also covers objects still collecting in a
    /// sheaf that is not full yet, which no callback would otherwise ever be queued for.
    pub fn kvfree_rcu_barrier(&self) {
        for (cache, _) in self.caches() {
            cache.flush_rcu_sheaves();
        }
        self.platform.rcu_barrier();
    }

    /// The caches whose destruction is pending (waiting for `kfree_rcu` objects in flight),
    /// with the objects each still holds, oldest first (`slabinfo -d`).
    pub fn destroy_pending(&self) -> Vec<(CacheName, usize)> {
        let mut pending = Vec::new();
        self.destroying
            .for_each(|c| pending.push((c.cache_name(), c.slabinfo().active_objs)));
        pending
    }

    /// The caches `owner` (a module's kobject, [`KmemCacheArgs::owner`]) still holds, each
    /// pinning it until its final release, for the module loader's unload accounting: those
    /// on the list of caches (created or set up with that owner), oldest first, then those
    /// whose asynchronous destroy is pending (waiting for `kfree_rcu` objects). Not listed:
    /// a cache whose destroy found objects still allocated (kept for ever, with its pin), and
    /// one released by its destroy but still held by a sysfs reader; the owner's reference
    /// count counts those.
    pub fn caches_of(&self, owner: &kobject::KObject) -> Vec<(CacheName, CacheState)> {
        let of = |c: &KmemCache<P>| c.owner.is_some_and(|o| core::ptr::eq(o, owner));
        let list = self.slab_mutex.lock();
        let mut held: Vec<_> = list
            .iter()
            .map(|e| e.cache.get(self))
            .filter(|c| of(c))
            .map(|c| (c.cache_name(), CacheState::Listed))
            .collect();
        self.destroying.for_each(|c| {
            if of(c) {
                held.push((c.cache_name(), CacheState::DestroyPending));
            }
        });
        held
    }

    /// Number of caches whose destruction is pending. Allocates nothing (usable when memory is
    /// exhausted, unlike [`Self::destroy_pending`]).
    pub fn nr_destroy_pending(&self) -> usize {
        self.destroying.len()
    }

    /// The memory-pressure path's part of the slab allocator: [`KmemCache::reclaim`] on every
    /// cache, from any context (never sleeps, never allocates, never waits for a lock this
    /// CPU may hold). The kmalloc caches, which live as long as the allocator, are reached
    /// without `slab_mutex`; the others only if `slab_mutex` is free at once (it may be held
    /// by the very caller whose allocation failed, `kmem_cache_create` for one): otherwise
    /// they are skipped this time. Returns the number of slabs freed.
    pub fn reclaim(&self) -> usize {
        let mut freed = 0;
        for c in &self.kmalloc_caches {
            freed += c.get(self).reclaim().unwrap_or(0);
        }
        if let Some(list) = self.slab_mutex.try_lock() {
            for e in list.iter() {
                let c = e.cache.get(self);
                if !self
                    .kmalloc_caches
                    .iter()
                    .any(|k| core::ptr::eq(k.get(self), c))
                {
                    freed += c.reclaim().unwrap_or(0);
                }
            }
        }
        freed
    }

    /// Number of caches on the list (aliases not counted).
    pub fn nr_caches(&self) -> usize {
        let list = self.slab_mutex.lock();
        list.iter()
            .filter(|e| e.cache.get(self).alias_of().is_none())
            .count()
    }
}
