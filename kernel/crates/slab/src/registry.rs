//! The list of caches, cache creation with merging, and destruction (Linux's `slab_common.c`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use crate::cache::{KmemCache, SlabError};
use crate::flags::{KmemCacheArgs, SlabFlags};
use crate::layout::{KMALLOC_SIZES, WORD, align_up, calculate_alignment};
use crate::platform::Platform;
use crate::sync::Mutex;

/// Why [`SlabAllocator::kmem_cache_destroy`] did not release a cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestroyError {
    /// Objects are still allocated ("Objects remaining on `__kmem_cache_shutdown()`"): every
    /// one is listed; the cache is kept alive (deliberately leaked) so they stay valid and can
    /// still be freed, but it is removed from the list of caches.
    ObjectsRemaining {
        /// Name of the cache.
        name: &'static str,
        /// Addresses of the objects still allocated.
        objects: Vec<usize>,
    },
    /// The kmalloc caches live as long as the allocator.
    Permanent {
        /// Name of the cache.
        name: &'static str,
    },
}

struct CacheEntry<P: Platform> {
    cache: NonNull<KmemCache<P>>,
    /// Names merged into this cache after its creation (newest last).
    aliases: Vec<&'static str>,
    kmalloc: bool,
}

/// The slab allocator: the caches (`slab_caches` under `slab_mutex`) and the kmalloc caches.
///
/// Caches are boxed and never move, so references returned by
/// [`SlabAllocator::kmem_cache_create`] stay valid as long as the allocator (or until the cache
/// is successfully destroyed).
pub struct SlabAllocator<P: Platform> {
    pub(crate) platform: P,
    /// Debug flags added to every cache (Linux's `slub_debug` boot option).
    debug_flags: SlabFlags,
    /// Whether caches may merge (Linux's `slab_nomerge` boot option turns it off).
    merge: bool,
    slab_mutex: Mutex<Vec<CacheEntry<P>>>,
    pub(crate) kmalloc_caches: [NonNull<KmemCache<P>>; KMALLOC_SIZES.len()],
}

// SAFETY: the caches are Sync/Send; the list is behind `slab_mutex`.
unsafe impl<P: Platform> Send for SlabAllocator<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for SlabAllocator<P> {}

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
}

impl<P: Platform> SlabAllocator<P> {
    /// Creates the allocator and its kmalloc caches (`kmem_cache_init` + `create_kmalloc_caches`).
    pub fn new(platform: P) -> Result<Self, SlabError> {
        Self::with_options(platform, SlabOptions::default())
    }

    /// Like [`SlabAllocator::new`], with boot-time options (see [`SlabOptions`]).
    pub fn with_options(platform: P, options: SlabOptions) -> Result<Self, SlabError> {
        let debug = options.debug & SlabFlags::SLAB_DEBUG_FLAGS;
        let mut list = Vec::new();
        let mut kmalloc_caches = [NonNull::dangling(); KMALLOC_SIZES.len()];
        for (i, (&size, &name)) in KMALLOC_SIZES.iter().zip(KMALLOC_NAMES.iter()).enumerate() {
            let cache = KmemCache::new(
                platform.clone(),
                name,
                size,
                &KmemCacheArgs::default(),
                debug | SlabFlags::SLAB_KMALLOC,
                true,
            )?;
            let cache = NonNull::from(Box::leak(cache));
            kmalloc_caches[i] = cache;
            list.push(CacheEntry {
                cache,
                aliases: Vec::new(),
                kmalloc: true,
            });
        }
        Ok(Self {
            platform,
            debug_flags: debug,
            merge: !options.nomerge,
            slab_mutex: Mutex::new(list),
            kmalloc_caches,
        })
    }

    /// Whether new caches may become aliases of existing ones (false under `slab_nomerge`).
    pub fn merge_enabled(&self) -> bool {
        self.merge
    }

    /// The debug flags every cache gets (see [`SlabOptions::debug`]).
    pub fn debug_flags(&self) -> SlabFlags {
        self.debug_flags
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
    /// With `SLAB_PANIC`, failure panics instead of returning an error.
    pub fn kmem_cache_create(
        &self,
        name: &'static str,
        size: usize,
        args: KmemCacheArgs,
        flags: SlabFlags,
    ) -> Result<&KmemCache<P>, SlabError> {
        let flags = flags | self.debug_flags;
        let mut list = self.slab_mutex.lock();
        let mergeable = if self.merge {
            Self::find_mergeable(&list, size, &args, flags)
        } else {
            None
        };
        if let Some(i) = mergeable {
            let e = &mut list[i];
            // SAFETY: caches on the list are alive.
            let s = unsafe { e.cache.as_ref() };
            s.refcount.fetch_add(1, Ordering::Relaxed);
            s.widen_object_size(size);
            e.aliases.push(name);
            // SAFETY: the cache lives as long as `self` (or until destroyed by the caller).
            return Ok(unsafe { &*e.cache.as_ptr() });
        }
        match KmemCache::new(self.platform.clone(), name, size, &args, flags, true) {
            Ok(cache) => {
                let cache = NonNull::from(Box::leak(cache));
                list.push(CacheEntry {
                    cache,
                    aliases: Vec::new(),
                    kmalloc: false,
                });
                // SAFETY: as above.
                Ok(unsafe { &*cache.as_ptr() })
            }
            Err(e) if flags.contains(SlabFlags::SLAB_PANIC) => {
                panic!("kmem_cache_create({name}) failed: {e:?}")
            }
            Err(e) => Err(e),
        }
    }

    /// Finds an existing cache that a new cache can alias (`find_mergeable`), newest first.
    ///
    /// Never merged: debug flags, `SLAB_TYPESAFE_BY_RCU`, `SLAB_NO_MERGE`, a constructor, a
    /// usercopy region, an explicit sheaf capacity (on either side). A candidate must agree on
    /// `SLAB_MERGE_SAME` flags, be at least as large, have a size that is a multiple of the
    /// requested alignment, and waste less than a word per object.
    fn find_mergeable(
        list: &[CacheEntry<P>],
        size: usize,
        args: &KmemCacheArgs,
        flags: SlabFlags,
    ) -> Option<usize> {
        if flags.intersects(SlabFlags::SLAB_NEVER_MERGE)
            || args.ctor.is_some()
            || args.usersize != 0
            || args.sheaf_capacity != 0
            || args.freeptr_offset.is_some()
        {
            return None;
        }
        let size = align_up(size, WORD);
        let align = calculate_alignment(flags, args.align, size);
        let size = align_up(size, align);
        list.iter().rposition(|e| {
            // SAFETY: caches on the list are alive.
            let s = unsafe { e.cache.as_ref() };
            s.mergeable()
                && size <= s.size()
                && (flags & SlabFlags::SLAB_MERGE_SAME) == (s.flags() & SlabFlags::SLAB_MERGE_SAME)
                && s.size() % align == 0
                && s.size() - size < WORD
        })
    }

    /// Finds a cache by name (its own name or an alias).
    pub fn find_cache(&self, name: &str) -> Option<&KmemCache<P>> {
        let list = self.slab_mutex.lock();
        list.iter().rev().find_map(|e| {
            // SAFETY: caches on the list are alive as long as `self`.
            let s = unsafe { &*e.cache.as_ptr() };
            (s.name() == name || e.aliases.contains(&name)).then_some(s)
        })
    }

    /// Every cache on the list, oldest first, with its aliases (for `slabinfo`-style listings).
    pub fn caches(&self) -> Vec<(&KmemCache<P>, Vec<&'static str>)> {
        let list = self.slab_mutex.lock();
        list.iter()
            .map(|e| {
                // SAFETY: caches on the list are alive as long as `self`.
                let s = unsafe { &*e.cache.as_ptr() };
                (s, e.aliases.clone())
            })
            .collect()
    }

    /// Every name of `cache`: its own, then its aliases.
    pub fn cache_names(&self, cache: &KmemCache<P>) -> Vec<&'static str> {
        let list = self.slab_mutex.lock();
        let mut names = Vec::new();
        if let Some(e) = list.iter().find(|e| core::ptr::eq(e.cache.as_ptr(), cache)) {
            names.push(cache.name());
            names.extend_from_slice(&e.aliases);
        }
        names
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
            // SAFETY: caches on the list are alive.
            let s = unsafe { e.cache.as_ref() };
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

    /// Number of caches on the list (aliases not counted).
    pub fn nr_caches(&self) -> usize {
        self.slab_mutex.lock().len()
    }

    /// Destroys a cache (`kmem_cache_destroy`).
    ///
    /// Drops one reference; if aliases remain, that is all. Otherwise flushes every CPU's
    /// sheaves and the barns, frees the empty slabs and, if no object is left, releases the
    /// cache. If objects remain, each is listed in the error, and the cache is removed from the
    /// list but kept alive (Linux warns "Slab cache still has objects" and leaks it likewise).
    ///
    /// # Safety
    /// `cache` must come from this allocator. No other context may use it during the call, and
    /// after `Ok(())` it must not be used again (it is freed).
    pub unsafe fn kmem_cache_destroy(&self, cache: &KmemCache<P>) -> Result<(), DestroyError> {
        let mut list = self.slab_mutex.lock();
        let Some(i) = list
            .iter()
            .position(|e| core::ptr::eq(e.cache.as_ptr(), cache))
        else {
            return Ok(());
        };
        if list[i].kmalloc && cache.refcount() == 1 {
            return Err(DestroyError::Permanent { name: cache.name() });
        }
        if cache.refcount.fetch_sub(1, Ordering::Relaxed) > 1 {
            list[i].aliases.pop();
            return Ok(());
        }
        let entry = list.remove(i);
        drop(list);
        // SAFETY: nobody else uses the cache (caller contract).
        match unsafe { cache.shutdown() } {
            Ok(()) => {
                // SAFETY: the cache was leaked from a Box at creation and is unreachable now.
                drop(unsafe { Box::from_raw(entry.cache.as_ptr()) });
                Ok(())
            }
            Err(objects) => Err(DestroyError::ObjectsRemaining {
                name: cache.name(),
                objects,
            }),
        }
    }
}

impl<P: Platform> Drop for SlabAllocator<P> {
    fn drop(&mut self) {
        // The structures of the caches go; their pages stay with the platform (a kernel never
        // drops its allocator; the host platform frees its whole arena).
        for e in self.slab_mutex.lock().drain(..) {
            // SAFETY: every listed cache was leaked from a Box, and `&mut self` proves no
            // reference to it is still alive.
            drop(unsafe { Box::from_raw(e.cache.as_ptr()) });
        }
    }
}
