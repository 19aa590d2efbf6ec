//! `kmalloc` and friends: general-purpose allocation from size-class caches.
//!
//! Requests up to [`KMALLOC_MAX_CACHE_SIZE`] (8 KiB) are served by the smallest kmalloc cache
//! that fits (8, 16, 32, 64, 96, 128, 192, 256, 512, 1k, 2k, 4k, 8k); larger ones get whole pages
//! from the platform, marked in the per-page owner records so that `kfree` can tell them apart.
//! Power-of-two sizes are naturally aligned because slabs are naturally aligned blocks and the
//! object stride is the size itself. The 96- and 192-byte classes exist because many objects
//! are just over 64 or 128 bytes; they fit 42 and 21 objects in a page (4032 of 4096 bytes).

use core::ptr::NonNull;

use crate::base::{Gfp, PAGE_SIZE, get_order};
use crate::cache::KmemCache;
use crate::flags::SlabFlags;
use crate::layout::{KMALLOC_MAX_CACHE_SIZE, MAX_PAGE_ORDER, kmalloc_index};
use crate::platform::Platform;
use crate::registry::SlabAllocator;
use crate::report::{SlabErrorKind, SlabReport};
use crate::slabs::PageOwner;

/// What `kmalloc(0)` returns: a non-null pointer that must not be dereferenced and that
/// `kfree` accepts (Linux's `ZERO_SIZE_PTR`).
pub const ZERO_SIZE_PTR: NonNull<u8> =
    NonNull::without_provenance(core::num::NonZeroUsize::new(16).unwrap());

/// Name used in reports about pointers given to `kfree` that no cache owns.
const KFREE: &str = "kfree";

/// Who owns the page of a kmalloc'ed address ([`PageOwner`], with a slab's cache in place of
/// its descriptor).
enum Owner<'a, P: Platform> {
    /// Nobody: not memory of this allocator.
    None,
    /// A large kmalloc block of `2^order` pages starting at `head`.
    Large { head: usize, order: u32 },
    /// A slab of this cache.
    Slab(&'a KmemCache<P>),
}

/// A report by `kfree` about `ptr`.
fn kfree_report(ptr: *mut u8, kind: SlabErrorKind) -> SlabReport {
    SlabReport {
        cache: KFREE,
        object: ptr as usize,
        kind,
    }
}

/// Gives back a large kmalloc block of `order` starting at `p`.
///
/// # Safety
/// `p` heads a large block of `order` allocated by kmalloc and not freed since.
unsafe fn free_large<P: Platform>(platform: &P, p: NonNull<u8>, order: u32) {
    // SAFETY: caller contract.
    unsafe {
        platform.set_page_owner(p, order, 0);
        platform.free_pages(p, order);
    }
}

impl<P: Platform> SlabAllocator<P> {
    /// The kmalloc cache serving `size`-byte requests, if the size is not "large".
    pub fn kmalloc_cache(&self, size: usize) -> Option<&KmemCache<P>> {
        let i = kmalloc_index(size)?;
        // SAFETY: kmalloc caches live as long as the allocator.
        Some(unsafe { self.kmalloc_caches[i].as_ref() })
    }

    /// Allocates `size` bytes (`kmalloc`). `None` when out of memory; `kmalloc(0)` returns
    /// [`ZERO_SIZE_PTR`].
    #[inline]
    pub fn kmalloc(&self, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        if size == 0 {
            return Some(ZERO_SIZE_PTR);
        }
        match self.kmalloc_cache(size) {
            Some(c) => {
                let p = c.alloc(gfp)?;
                if c.debug {
                    c.set_orig_size(p.as_ptr(), size);
                }
                Some(p)
            }
            None => self.kmalloc_large(size, gfp),
        }
    }

    /// Allocates `size` zeroed bytes (`kzalloc`).
    pub fn kzalloc(&self, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        self.kmalloc(size, gfp | Gfp::ZERO)
    }

    /// Allocates a zeroed array of `n` elements of `size` bytes (`kcalloc`); `None` if the
    /// total overflows.
    pub fn kcalloc(&self, n: usize, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        self.kzalloc(n.checked_mul(size)?, gfp)
    }

    fn kmalloc_large(&self, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        debug_assert!(size > KMALLOC_MAX_CACHE_SIZE);
        let order = get_order(size);
        if order > MAX_PAGE_ORDER {
            return None;
        }
        let node = {
            let (_guard, cpu) = self.platform.pin();
            self.platform.cpu_to_node(cpu)
        };
        let p = self.platform.alloc_pages(order, node, gfp)?;
        // SAFETY: the block was just allocated with this order.
        unsafe {
            let head = p.as_ptr() as usize;
            let owner = PageOwner::Large { head, order }.encode();
            self.platform.set_page_owner(p, order, owner)
        };
        if gfp.contains(Gfp::ZERO) {
            // SAFETY: the whole block is ours.
            unsafe { p.as_ptr().write_bytes(0, PAGE_SIZE << order) };
        }
        Some(p)
    }

    /// Usable size of a kmalloc'ed object (`ksize`): the whole slot for plain caches, the
    /// requested-size class for debug ones, the whole block for large allocations. 0 for
    /// pointers no cache owns.
    ///
    /// The caller may then use all of it, so in a cache that red-zones the bytes past the
    /// requested size, the object counts as having asked for its whole size from now on
    /// (Linux's `skip_orig_size_check`).
    pub fn ksize(&self, ptr: NonNull<u8>) -> usize {
        let size = self.usable_size(ptr);
        if let Some(c) = self.kmalloc_object_cache(ptr)
            && c.debug
        {
            c.set_orig_size(ptr.as_ptr(), size);
        }
        size
    }

    /// Who owns the page of `addr` (`virt_to_slab`, or a large block's head and order).
    fn page_owner_of(&self, addr: usize) -> Owner<'_, P> {
        match PageOwner::decode(self.platform.page_owner(addr)) {
            PageOwner::None => Owner::None,
            PageOwner::Large { head, order } => Owner::Large { head, order },
            // SAFETY: a slab owner of our platform is a live descriptor whose cache is alive
            // (caches with live objects are never freed).
            PageOwner::Slab(slab) => Owner::Slab(unsafe { KmemCache::of_slab(slab) }),
        }
    }

    /// The cache of a slab object (`None` for large blocks and pointers no cache owns).
    fn kmalloc_object_cache(&self, ptr: NonNull<u8>) -> Option<&KmemCache<P>> {
        match self.page_owner_of(ptr.as_ptr() as usize) {
            Owner::Slab(c) => Some(c),
            _ => None,
        }
    }

    /// [`Self::ksize`] without its effect on the red zone.
    fn usable_size(&self, ptr: NonNull<u8>) -> usize {
        if ptr == ZERO_SIZE_PTR {
            return 0;
        }
        match self.page_owner_of(ptr.as_ptr() as usize) {
            Owner::None => 0,
            Owner::Large { order, .. } => PAGE_SIZE << order,
            Owner::Slab(s) => {
                if s.flags()
                    .intersects(SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON)
                {
                    s.object_size()
                } else if s
                    .flags()
                    .intersects(SlabFlags::SLAB_TYPESAFE_BY_RCU | SlabFlags::SLAB_STORE_USER)
                {
                    s.layout().inuse
                } else {
                    s.size()
                }
            }
        }
    }

    /// Frees memory from [`Self::kmalloc`] (`kfree`); null and [`ZERO_SIZE_PTR`] are ignored.
    /// Pointers that are not slab objects or large blocks are reported and ignored.
    ///
    /// # Safety
    /// `ptr` must come from `kmalloc` (or a cache of this allocator) and not be used again.
    pub unsafe fn kfree(&self, ptr: *mut u8) -> Result<(), SlabReport> {
        let Some(p) = NonNull::new(ptr) else {
            return Ok(());
        };
        if p == ZERO_SIZE_PTR {
            return Ok(());
        }
        match self.page_owner_of(ptr as usize) {
            Owner::None => Err(kfree_report(ptr, SlabErrorKind::NotSlabPage)),
            Owner::Large { head, .. } if head != ptr as usize => {
                Err(kfree_report(ptr, SlabErrorKind::NotObjectBoundary))
            }
            Owner::Large { order, .. } => {
                // SAFETY: `p` heads a large block of `order` that we allocated.
                unsafe { free_large(&self.platform, p, order) };
                Ok(())
            }
            // SAFETY: forwarded contract (the cache checks the object boundary at the slab).
            Owner::Slab(cache) => unsafe { cache.free(p) },
        }
    }

    /// Frees memory from [`Self::kmalloc`] after an RCU grace period (`kfree_rcu`; see
    /// [`crate::cache::rcu_free`]). Null and [`ZERO_SIZE_PTR`] are ignored; pointers that are not slab
    /// objects or large blocks are reported and ignored.
    ///
    /// # Safety
    /// As for [`Self::kfree`], except that RCU readers may use the memory until they leave
    /// their read-side sections.
    pub unsafe fn kfree_rcu(&self, ptr: *mut u8) -> Result<(), SlabReport> {
        let Some(p) = NonNull::new(ptr).filter(|&p| p != ZERO_SIZE_PTR) else {
            return Ok(());
        };
        match self.page_owner_of(ptr as usize) {
            Owner::None => Err(kfree_report(ptr, SlabErrorKind::NotSlabPage)),
            Owner::Large { head, .. } if head != ptr as usize => {
                Err(kfree_report(ptr, SlabErrorKind::NotObjectBoundary))
            }
            Owner::Large { order, .. } => {
                // A whole block of pages: give it back after the grace period.
                let platform = self.platform.clone();
                let addr = ptr as usize;
                self.platform.call_rcu(alloc::boxed::Box::new(move || {
                    // SAFETY: `addr` heads a large block of `order` that the caller gave up.
                    unsafe {
                        free_large(&platform, NonNull::new_unchecked(addr as *mut u8), order)
                    };
                }));
                Ok(())
            }
            Owner::Slab(cache) => {
                // SAFETY: forwarded contract.
                unsafe { cache.free_rcu(p) };
                Ok(())
            }
        }
    }

    /// Resizes a kmalloc'ed object (`krealloc`): returns the same pointer when the new size still
    /// fits the slot, else moves the contents to a new allocation and frees the old one. A new
    /// size of 0 frees and returns [`ZERO_SIZE_PTR`]. `None` (old object untouched) when out of
    /// memory.
    ///
    /// # Safety
    /// `ptr` must be null, [`ZERO_SIZE_PTR`] or a live kmalloc'ed object.
    pub unsafe fn krealloc(&self, ptr: *mut u8, new_size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        let old = NonNull::new(ptr).filter(|&p| p != ZERO_SIZE_PTR);
        let Some(old) = old else {
            return self.kmalloc(new_size, gfp);
        };
        if new_size == 0 {
            // SAFETY: forwarded contract.
            let _ = unsafe { self.kfree(ptr) };
            return Some(ZERO_SIZE_PTR);
        }
        let ks = self.usable_size(old);
        if new_size <= ks {
            // Still fits: in a red-zoned kmalloc cache, move the red zone to the new size.
            if let Some(c) = self.kmalloc_object_cache(old)
                && c.debug
            {
                c.set_orig_size(old.as_ptr(), new_size);
            }
            return Some(old);
        }
        let new = self.kmalloc(new_size, gfp)?;
        // SAFETY: both are live allocations of at least `ks` bytes... the old one has `ks`, the
        // new one `new_size > ks`; they do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(old.as_ptr(), new.as_ptr(), ks);
            let _ = self.kfree(ptr);
        }
        Some(new)
    }
}
