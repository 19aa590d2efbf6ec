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
use crate::head::{RcuHead, container_of};
use crate::layout::{
    KMALLOC_MAX_CACHE_SIZE, MAX_PAGE_ORDER, SMALL_KMALLOC_MAX, kmalloc_index, kmalloc_index_nonzero,
};
use crate::platform::Platform;
use crate::registry::SlabAllocator;
use crate::report::{SlabErrorKind, SlabReport};
use crate::slabs::{PageOwner, Slab};

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
    report(KFREE, ptr, kind)
}

/// A report by the kmalloc function `api` (`kfree`, `ksize`, `krealloc`) about `ptr`.
fn report(api: &'static str, ptr: *mut u8, kind: SlabErrorKind) -> SlabReport {
    SlabReport {
        cache: api.into(),
        object: ptr as usize,
        kind,
        tracks: None,
    }
}

/// A kmalloc'ed object, found from its start address and checked.
enum KmallocObject<'a, P: Platform> {
    /// An object of this slab cache (at an object boundary).
    Slab(&'a KmemCache<P>),
    /// A large block of `2^order` pages (its head).
    Large { order: u32 },
}

impl<P: Platform> KmallocObject<'_, P> {
    /// Bytes the owner of the object may use (what `ksize` reports): the whole slot for plain
    /// caches, the object size for red-zoned or poisoned ones (the rest of the slot is
    /// metadata), the whole block for large allocations.
    fn usable_size(&self) -> usize {
        match self {
            KmallocObject::Large { order } => PAGE_SIZE << order,
            KmallocObject::Slab(s) => {
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

    /// The cache, if it records the size asked of kmalloc (`orig_size`) and maybe red-zones
    /// the rest.
    fn debug_cache(&self) -> Option<&KmemCache<P>> {
        match self {
            KmallocObject::Slab(c) if c.debug => Some(c),
            _ => None,
        }
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

/// A large kmalloc block waiting for its grace period (`kfree_rcu` of a block of pages). It is
/// written in the descriptor storage the platform keeps for the block's first page
/// ([`Platform::slab_meta`]), which a large block, not being a slab, does not otherwise use:
/// like Linux's `rcu_head` in `struct page`, the block is freed after the grace period without
/// any allocation, and without writing into the block, which RCU readers may still read.
#[repr(C)]
struct LargeRcu<P: Platform> {
    /// What RCU links.
    head: RcuHead,
    /// The block.
    block: NonNull<u8>,
    /// Its page order.
    order: u32,
    /// A kmalloc cache of the allocator, for its platform (the kmalloc caches outlive the
    /// callbacks: the allocator's `Drop` waits for RCU first).
    cache: NonNull<KmemCache<P>>,
}

/// The RCU callback of a [`LargeRcu`]: gives the block back.
///
/// # Safety
/// `head` was queued by [`SlabAllocator::free_large_rcu`] for a `KmemCache<P>`'s allocator,
/// and its grace period is over.
unsafe fn free_large_rcu_callback<P: Platform>(head: NonNull<RcuHead>) {
    // SAFETY: the head is the `head` field of the `LargeRcu` written in the block's descriptor
    // storage, projected from the record's pointer; the record stays valid until the block is
    // freed, so it is read first.
    let LargeRcu {
        block,
        order,
        cache,
        ..
    } = unsafe {
        container_of::<LargeRcu<P>>(head, core::mem::offset_of!(LargeRcu<P>, head))
            .as_ptr()
            .read()
    };
    // SAFETY: a kmalloc cache of the allocator, alive (see `LargeRcu::cache`); `block` heads a
    // large block of `order` given up by `kfree_rcu`'s caller.
    unsafe { free_large(&cache.as_ref().platform, block, order) };
}

impl<P: Platform> SlabAllocator<P> {
    /// The kmalloc cache serving `size`-byte requests, if the size is not "large".
    pub fn kmalloc_cache(&self, size: usize) -> Option<&KmemCache<P>> {
        let i = kmalloc_index(size)?;
        Some(self.kmalloc_caches[i].get(self))
    }

    /// Allocates `size` bytes (`kmalloc`). `None` when out of memory; `kmalloc(0)` returns
    /// [`ZERO_SIZE_PTR`].
    ///
    /// The fast path is the cache's, inlined: up to 192 bytes the cache comes straight from a
    /// table indexed by `(size - 1) / 8` (one comparison sends 0 and larger sizes away), then
    /// the pop of the CPU's main sheaf. The debug work of a debug cache (recording the
    /// requested size, red-zoning the rest) is only on the slow path, where every allocation
    /// of such a cache goes (it has no sheaves).
    #[inline]
    pub fn kmalloc(&self, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        let last = size.wrapping_sub(1);
        let c = if last < SMALL_KMALLOC_MAX {
            self.kmalloc_small[last / 8].get(self)
        } else {
            // Off the straight line of the small sizes, as in `kmalloc_index_nonzero`.
            core::hint::cold_path();
            match kmalloc_index_nonzero(size) {
                Some(i) => self.kmalloc_caches[i].get(self),
                None => return self.kmalloc_uncached(size, gfp),
            }
        };
        let pin = self.platform.pin_fast();
        // SAFETY: the allocator's caches have clones of its platform.
        let p = unsafe { c.alloc_unzeroed(pin, gfp, 0, size) }?;
        if gfp.contains(Gfp::ZERO) {
            // A debug cache red-zoned the bytes past `size` already (on the slow path): only
            // the requested bytes are zeroed there, as Linux zeroes `orig_size` bytes of a
            // cache that records it; elsewhere the whole object.
            let len = if c.debug {
                size.min(c.object_size())
            } else {
                c.object_size()
            };
            // SAFETY: the object is ours and `object_size` bytes long.
            unsafe { p.as_ptr().write_bytes(0, len) };
        }
        Some(p)
    }

    /// `kmalloc` of 0 bytes ([`ZERO_SIZE_PTR`]) or of more than the largest kmalloc cache
    /// (whole pages).
    #[cold]
    #[inline(never)]
    fn kmalloc_uncached(&self, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        if size == 0 {
            return Some(ZERO_SIZE_PTR);
        }
        self.kmalloc_large(size, gfp)
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
    /// object size for debug ones, the whole block for large allocations; 0 for
    /// [`ZERO_SIZE_PTR`]. A pointer that is not the start of a kmalloc'ed object (inside one, of
    /// another allocator, anywhere else) gets the report and nothing is written.
    ///
    /// The caller may then use all of it, so in a cache that red-zones the bytes past the
    /// requested size, the object counts as having asked for its whole size from now on
    /// (Linux's `skip_orig_size_check`).
    pub fn ksize(&self, ptr: NonNull<u8>) -> Result<usize, SlabReport> {
        if ptr == ZERO_SIZE_PTR {
            return Ok(0);
        }
        let obj = self
            .kmalloc_object(ptr)
            .map_err(|kind| report("ksize", ptr.as_ptr(), kind))?;
        let size = obj.usable_size();
        if let Some(c) = obj.debug_cache() {
            c.set_orig_size(ptr.as_ptr(), size);
        }
        Ok(size)
    }

    /// The kmalloc'ed object that starts at `ptr`: a slab object at an object boundary, or the
    /// head of a large block.
    fn kmalloc_object(&self, ptr: NonNull<u8>) -> Result<KmallocObject<'_, P>, SlabErrorKind> {
        let addr = ptr.as_ptr() as usize;
        match self.page_owner_of(addr) {
            Owner::None => Err(SlabErrorKind::NotSlabPage),
            Owner::Large { head, order } if head == addr => Ok(KmallocObject::Large { order }),
            Owner::Large { .. } => Err(SlabErrorKind::NotObjectBoundary),
            Owner::Slab(c) => c.obj_to_slab(addr).map(|_| KmallocObject::Slab(c)),
        }
    }

    /// The cache of the kmalloc'ed object that starts at `ptr`, `None` for a large block
    /// (the free queue's check, without `ksize`'s side effect).
    pub(crate) fn kmalloc_owner(
        &self,
        ptr: NonNull<u8>,
    ) -> Result<Option<&KmemCache<P>>, SlabErrorKind> {
        Ok(match self.kmalloc_object(ptr)? {
            KmallocObject::Slab(c) => Some(c),
            KmallocObject::Large { .. } => None,
        })
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

    /// Frees memory from [`Self::kmalloc`] (`kfree`); null and [`ZERO_SIZE_PTR`] are ignored.
    /// Pointers that are not slab objects or large blocks are reported and dropped: by
    /// default (`SLAB_HARDENED_FREE`, which `slab_nohardened` turns off) before the object
    /// goes anywhere, else when it reaches its slab (an object of a sheaf may have been handed
    /// out again by then).
    ///
    /// The fast path: the page owner of the address is a slab (one signed test of the word,
    /// see `PageOwner`), whose descriptor names the cache; the address is an object boundary
    /// of that slab (a multiply, a rotate and a comparison,
    /// `KmemCache::is_object_fast`); the cache's free fast path follows, inlined (naive
    /// double-free test included). Null and [`ZERO_SIZE_PTR`] need no test there: no page of
    /// the platform holds them, so their owner is 0 and they go to the `#[cold]` rest with
    /// large blocks and strays. Like Linux's `kfree`, any cache's object is accepted (the
    /// cache is the slab's).
    ///
    /// # Safety
    /// `ptr` must come from `kmalloc` (or a cache of this allocator) and not be used again.
    #[inline]
    pub unsafe fn kfree(&self, ptr: *mut u8) -> Result<(), SlabReport> {
        let owner = self.platform.page_owner(ptr as usize);
        if let Some(slab) = PageOwner::slab(owner) {
            let pin = self.platform.pin_fast();
            // A slab owner of our platform is a live descriptor whose cache is alive (caches
            // with live objects are never freed), and has a clone of our platform; the
            // address is in one of the slab's pages, so it is not null (no block of pages
            // starts at address 0).
            // SAFETY: so; the rest is the caller's contract (a pointer that fails the check
            // goes to the slow path, which reports it).
            return unsafe {
                let cache = KmemCache::<P>::of_slab(slab);
                let obj = NonNull::new_unchecked(ptr);
                let checked = !cache.flags().contains(SlabFlags::SLAB_HARDENED_FREE)
                    | cache.is_object_fast(slab.as_ref(), obj);
                cache.free_pinned(pin, obj, 0, checked)
            };
        }
        // SAFETY: forwarded contract.
        unsafe { self.kfree_not_slab(ptr) }
    }

    /// `kfree` of anything but a slab object: null and [`ZERO_SIZE_PTR`] (ignored), a large
    /// block (freed), anything else (reported).
    ///
    /// # Safety
    /// As for [`Self::kfree`].
    #[cold]
    #[inline(never)]
    unsafe fn kfree_not_slab(&self, ptr: *mut u8) -> Result<(), SlabReport> {
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
            // SAFETY: forwarded contract (the cache checks the object boundary at the slab);
            // not reached unless the owner changed since `kfree` read it.
            Owner::Slab(cache) => unsafe { cache.free(p) },
        }
    }

    /// Frees memory from [`Self::kmalloc`] after an RCU grace period (`kfree_rcu`; see
    /// [`crate::cache::rcu_free`]). Null and [`ZERO_SIZE_PTR`] are ignored; pointers that are not slab
    /// objects or large blocks (inside an object included), and the object freed last
    /// again, are reported and dropped, whatever the boot options (see
    /// [`KmemCache::free_rcu`]).
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
                // SAFETY: `p` heads a large block of `order` that the caller gives up.
                unsafe { self.free_large_rcu(p, order) };
                Ok(())
            }
            // SAFETY: forwarded contract; the pointer is checked as `kfree`'s (an object
            // boundary of the slab, and not the object freed last).
            Owner::Slab(cache) => unsafe { cache.try_free_rcu(p) },
        }
    }

    /// Gives the large block `p` of `order` back after a grace period, on a head written in
    /// the block's descriptor storage ([`LargeRcu`]): allocates nothing.
    ///
    /// # Safety
    /// `p` heads a large block of `order` allocated by kmalloc, given up by the caller (only RCU
    /// readers may still read it).
    unsafe fn free_large_rcu(&self, p: NonNull<u8>, order: u32) {
        const {
            assert!(core::mem::size_of::<LargeRcu<P>>() <= core::mem::size_of::<Slab>());
            assert!(core::mem::align_of::<LargeRcu<P>>() <= core::mem::align_of::<Slab>());
        };
        let record = self.platform.slab_meta(p).cast::<LargeRcu<P>>();
        let r = record.as_ptr();
        // SAFETY: the storage is private to the block, valid until it is freed and big and
        // aligned enough (checked above); a large block is no slab, so nothing else uses it.
        // The head is projected from the record's pointer, for the callback to step back.
        let head = unsafe {
            r.write(LargeRcu {
                head: RcuHead::new(),
                block: p,
                order,
                cache: NonNull::from(self.kmalloc_caches[0].get(self)),
            });
            NonNull::new_unchecked(&raw mut (*r).head)
        };
        // SAFETY: the record (and the block) are the callback's until it runs; the block is
        // freed only then, after the grace period.
        unsafe {
            self.platform
                .call_rcu_head(head, free_large_rcu_callback::<P>)
        };
    }

    /// The sheaf part of `kvfree_call_rcu(head, ptr)`: frees the slab object `ptr` (of any
    /// cache) after a grace period through its CPU's `rcu_free` sheaf, without allocating.
    /// `Err(ptr)`, untouched, when no sheaf can take it (a large block, a cache without
    /// sheaves, another node's object, no memory for a sheaf) or it is not an object start:
    /// the caller then queues it on the `rcu_head` embedded in it (the kernel's
    /// `kvfree_call_rcu`) and finds it again with [`Self::object_start`].
    ///
    /// # Safety
    /// As for [`Self::kfree_rcu`] when it returns `Ok`.
    pub unsafe fn kvfree_rcu_sheaf(&self, ptr: NonNull<u8>) -> Result<(), NonNull<u8>> {
        match self.kmalloc_object(ptr) {
            // SAFETY: forwarded contract.
            Ok(KmallocObject::Slab(cache)) => unsafe { cache.free_rcu_sheaf(ptr) },
            _ => Err(ptr),
        }
    }

    /// The start of the slab object or large kmalloc block that contains `addr` (`None` for
    /// memory of no cache): how a callback given only an `rcu_head` embedded in an object
    /// finds the object.
    pub fn object_start(&self, addr: usize) -> Option<NonNull<u8>> {
        match self.page_owner_of(addr) {
            Owner::None => None,
            Owner::Large { head, .. } => NonNull::new(head as *mut u8),
            Owner::Slab(c) => c.object_containing(addr),
        }
    }

    /// The cache whose slab holds `addr` (Linux's `virt_to_cache`), `None` for memory of no
    /// cache (a large kmalloc block, or not slab memory at all). An alias's objects belong to
    /// its primary, so this is always a primary.
    pub fn cache_of(&self, addr: NonNull<u8>) -> Option<&KmemCache<P>> {
        match self.page_owner_of(addr.as_ptr() as usize) {
            Owner::Slab(c) => Some(c),
            Owner::None | Owner::Large { .. } => None,
        }
    }

    /// Resizes a kmalloc'ed object (`krealloc`): returns the same pointer when the new size still
    /// fits the slot, else moves the contents to a new allocation and frees the old one. A new
    /// size of 0 frees and returns [`ZERO_SIZE_PTR`]. `None` (old object untouched) when out of
    /// memory, or when `ptr` is not the start of a kmalloc'ed object (reported to the platform).
    ///
    /// With [`Gfp::ZERO`], everything past `new_size` that the caller may later reach is zero,
    /// as Linux guarantees when every call passes `__GFP_ZERO`: growing in place zeroes from the
    /// old requested size (debug caches know it) to the new one, shrinking zeroes from the new
    /// size to the end of the slot, and a move copies only the old requested size into a
    /// zeroed object. A red zone is then re-established past the new size.
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
        let obj = match self.kmalloc_object(old) {
            Ok(obj) => obj,
            Err(kind) => {
                self.platform.slab_error(&report("krealloc", ptr, kind));
                return None;
            }
        };
        let ks = obj.usable_size();
        let debug = obj.debug_cache();
        // What the caller asked for last time, where the cache records it.
        let orig = debug.and_then(|c| c.orig_size(ptr)).filter(|&o| o <= ks);
        if new_size <= ks {
            if gfp.contains(Gfp::ZERO) {
                let (from, to) = match orig {
                    Some(o) if o < new_size => (o, new_size),
                    _ => (new_size, ks),
                };
                // SAFETY: `from..to` lies inside the object's `ks` usable bytes, which the
                // caller owns.
                unsafe { ptr.add(from).write_bytes(0, to - from) };
            }
            // In a red-zoned kmalloc cache, move the red zone to the new size.
            if let Some(c) = debug {
                c.set_orig_size(ptr, new_size);
            }
            return Some(old);
        }
        let new = self.kmalloc(new_size, gfp)?;
        let keep = orig.unwrap_or(ks);
        // SAFETY: both are live allocations; the old one has `ks >= keep` usable bytes, the new
        // one `new_size > ks`; they do not overlap. The old one is not used afterwards.
        unsafe {
            core::ptr::copy_nonoverlapping(old.as_ptr(), new.as_ptr(), keep);
            let _ = self.kfree(ptr);
        }
        Some(new)
    }
}
