//! Kernel objects from static caches through Rust's `Allocator` interface: the kernel's own
//! never-destroyed caches (threads, work items), in the RFC's `.data` storage.
//!
//! Linux allocates its core objects from dedicated caches (`task_struct_cachep`,
//! `kmem_cache_alloc(...)`), which the RFC makes static. Rust code holds such objects in
//! `Arc`s and `Box`es, which allocate through an [`Allocator`]: [`CacheAlloc<C>`] is one that
//! takes the memory from the static cache `C` names ([`CacheTag`]), so that
//! `Arc::new_in(thread, ThreadAlloc::default())` is `kmem_cache_alloc(thread_cache)` and its
//! last drop is `kmem_cache_free`.
//!
//! The cache is set up at its first allocation once the slab allocator is up (Linux sets its
//! core caches up in `kmem_cache_init` and the init calls), sized and aligned for the layout
//! asked for then: `Arc<T, A>` asks for one layout (its counters and `T`), which Rust does not
//! name, so taking it from the first request sizes the cache exactly. The rules that keep
//! every block going back where it came from:
//! - before the slab allocator is up, blocks come from the global allocator (the bootstrap
//!   heap), and the cache is not set up yet;
//! - once it is up, the first allocation sets the cache up, once; from then on a request of
//!   that layout comes from the cache and any other layout (none, for an `Arc`) from kmalloc;
//!   if the setup fails (no memory), every request goes to kmalloc from then on;
//! - a block is given back to the cache only if it has the cache's layout and is not from the
//!   bootstrap heap, which are exactly the blocks the cache gave out; everything else goes to
//!   the global allocator, which tells the heap and kmalloc apart by address.

use core::alloc::{AllocError, Allocator, AllocatorClone, Layout};
use core::marker::PhantomData;
use core::ptr::NonNull;

use alloc::alloc::Global;
use slab::{Gfp, KmemCache, SlabFlags};
use spin::Once;

use super::kmalloc::{KernelPlatform, try_slab};
use super::static_cache::KmemCacheOpaque;

/// A static cache for one kernel object type, set up at first use (see the module docs).
pub struct StaticCache {
    storage: KmemCacheOpaque,
    name: &'static str,
    /// The layout the cache was set up for, `None` if the setup failed; unset until the first
    /// allocation after the slab allocator is up.
    layout: Once<Option<Layout>>,
}

impl StaticCache {
    /// A cache named `name` (what `/sys/kernel/slab` and `/proc/slabinfo` show), not set up.
    pub const fn new(name: &'static str) -> Self {
        Self {
            storage: KmemCacheOpaque::new(),
            name,
            layout: Once::new(),
        }
    }

    /// The cache, if it is set up for `layout`.
    fn cache_for(&'static self, layout: Layout) -> Option<&'static KmemCache<KernelPlatform>> {
        if *self.layout.get()? != Some(layout) {
            return None;
        }
        // SAFETY: the setup returned `Ok` (the layout was recorded only then), and a built-in
        // static cache is never destroyed.
        Some(unsafe { self.storage.to_kmem_cache() })
    }

    /// The cache, if it is set up (whatever its layout): for tests and the shell.
    pub fn cache(&'static self) -> Option<&'static KmemCache<KernelPlatform>> {
        let layout = (*self.layout.get()?)?;
        self.cache_for(layout)
    }

    /// Whether `ptr` is an object of this cache's slabs (tests).
    pub fn owns(&'static self, ptr: NonNull<u8>) -> bool {
        let (Some(cache), Some(slab)) = (self.cache(), try_slab()) else {
            return false;
        };
        slab.cache_of(ptr)
            .is_some_and(|c| core::ptr::eq(c, cache.primary()))
    }

    fn allocate(&'static self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if try_slab().is_some() {
            self.layout.call_once(|| {
                // A setup that fails (no memory) leaves kmalloc to serve every request.
                let set_up = self.storage.setup(
                    self.name,
                    layout.size(),
                    layout.align(),
                    SlabFlags::SLAB_HWCACHE_ALIGN,
                    None,
                );
                set_up.ok().map(|_| layout)
            });
            if let Some(cache) = self.cache_for(layout) {
                let obj = cache.alloc(Gfp::KERNEL).ok_or(AllocError)?;
                return Ok(NonNull::slice_from_raw_parts(obj, layout.size()));
            }
        }
        Global.allocate(layout)
    }

    /// # Safety
    /// `ptr` came from [`Self::allocate`] with this `layout` and is not used again.
    unsafe fn deallocate(&'static self, ptr: NonNull<u8>, layout: Layout) {
        match self.cache_for(layout) {
            Some(cache) if !super::heap::contains(ptr.as_ptr()) => {
                // SAFETY: a block of the cache's layout that is not from the bootstrap heap was
                // given out by the cache (module docs); the caller gives it up.
                if unsafe { super::free_q::defer(ptr.as_ptr()) } {
                    return;
                }
                // SAFETY: as above.
                if let Err(report) = unsafe { cache.free(ptr) } {
                    log::error!("kmem_cache_free({}): {report}", self.name);
                }
            }
            // SAFETY: the global allocator gave it out (module docs); forwarded contract.
            _ => unsafe { Global.deallocate(ptr, layout) },
        }
    }
}

/// Names the [`StaticCache`] a [`CacheAlloc`] allocates from: a type per cache, so that the
/// allocator is a zero-sized value (an `Arc<T, CacheAlloc<C>>` is one pointer, as `Arc<T>`).
pub trait CacheTag: 'static {
    /// The cache.
    fn cache() -> &'static StaticCache;
}

/// An [`Allocator`] over the static cache that `C` names (see the module docs).
pub struct CacheAlloc<C: CacheTag>(PhantomData<fn() -> C>);

impl<C: CacheTag> CacheAlloc<C> {
    /// The allocator (a zero-sized value).
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<C: CacheTag> Default for CacheAlloc<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: CacheTag> Clone for CacheAlloc<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: CacheTag> Copy for CacheAlloc<C> {}

// SAFETY: blocks come from the static cache (at least the layout's size, at the cache's
// alignment, which is the layout's) or from the global allocator, and each goes back to where
// it came from (module docs); all values of the type share one cache, so a block may be freed
// through any of them.
unsafe impl<C: CacheTag> Allocator for CacheAlloc<C> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        C::cache().allocate(layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { C::cache().deallocate(ptr, layout) }
    }
}

// SAFETY: a clone is the same zero-sized value, allocating from the same cache: blocks from
// one may be freed through the other.
unsafe impl<C: CacheTag> AllocatorClone for CacheAlloc<C> {}
