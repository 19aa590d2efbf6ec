//! The allocators under test, behind one trait.

use std::alloc::{GlobalAlloc, Layout};

use linked_list_allocator::LockedHeap;
use slab::host::{CpuRegistration, HostConfig, HostPlatform};
use slab::{Gfp, KmemCache, SlabAllocator};

use crate::{CPUS, LL_HEAP};

/// The operations every allocator under test provides.
pub(crate) trait Bench: Sync {
    /// What a thread must hold to use the allocator (a CPU registration for Sheaf).
    type Thread;
    /// Makes the calling thread able to use the allocator.
    fn enter(&self) -> Self::Thread;
    /// Allocates `size` bytes; never null (panics when out of memory).
    fn alloc(&self, size: usize) -> *mut u8;
    /// Frees an object of `size` bytes.
    ///
    /// # Safety
    /// `p` comes from `self.alloc(size)` and is not used afterwards.
    unsafe fn free(&self, p: *mut u8, size: usize);
}

/// A Sheaf allocator on its own host platform.
pub(crate) struct Sheaf {
    pub(crate) platform: HostPlatform,
    pub(crate) slab: SlabAllocator<HostPlatform>,
}

impl Sheaf {
    /// A fresh platform of `pages` pages and its allocator; the calling thread becomes CPU 0.
    pub(crate) fn new(pages: usize) -> (Self, CpuRegistration) {
        let platform = HostPlatform::new(HostConfig {
            cpus: CPUS,
            nodes: 1,
            pages_per_node: pages,
        });
        let cpu = platform.register_cpu();
        let slab = SlabAllocator::new(platform.clone()).expect("slab allocator");
        (Self { platform, slab }, cpu)
    }
}

/// Sheaf's `kmalloc` / `kfree`.
pub(crate) struct Kmalloc<'a>(pub(crate) &'a Sheaf);

impl Bench for Kmalloc<'_> {
    type Thread = CpuRegistration;
    fn enter(&self) -> CpuRegistration {
        self.0.platform.register_cpu()
    }
    #[inline]
    fn alloc(&self, size: usize) -> *mut u8 {
        self.0
            .slab
            .kmalloc(size, Gfp::KERNEL)
            .expect("kmalloc")
            .as_ptr()
    }
    #[inline]
    unsafe fn free(&self, p: *mut u8, _size: usize) {
        // SAFETY: forwarded contract: `p` is a live kmalloc'ed object.
        unsafe { self.0.slab.kfree(p) }.expect("kfree");
    }
}

/// One Sheaf cache of [`PAIR_SIZE`]-byte objects.
pub(crate) struct Cache<'a>(pub(crate) &'a Sheaf, pub(crate) &'a KmemCache<HostPlatform>);

impl Bench for Cache<'_> {
    type Thread = CpuRegistration;
    fn enter(&self) -> CpuRegistration {
        self.0.platform.register_cpu()
    }
    #[inline]
    fn alloc(&self, size: usize) -> *mut u8 {
        debug_assert!(size <= self.1.object_size());
        self.1
            .alloc(Gfp::KERNEL)
            .expect("kmem_cache_alloc")
            .as_ptr()
    }
    #[inline]
    unsafe fn free(&self, p: *mut u8, _size: usize) {
        // SAFETY: forwarded contract: `p` is a live object of this cache.
        unsafe { self.1.free(std::ptr::NonNull::new_unchecked(p)) }.expect("kmem_cache_free");
    }
}

/// Any `GlobalAlloc`, called directly.
pub(crate) struct Global<G>(pub(crate) G);

impl<G: GlobalAlloc + Sync> Bench for Global<G> {
    type Thread = ();
    fn enter(&self) {}
    #[inline]
    fn alloc(&self, size: usize) -> *mut u8 {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { self.0.alloc(layout(size)) };
        assert!(!p.is_null(), "out of memory");
        p
    }
    #[inline]
    unsafe fn free(&self, p: *mut u8, size: usize) {
        // SAFETY: forwarded contract: `p` came from `alloc` with this layout.
        unsafe { self.0.dealloc(p, layout(size)) }
    }
}

#[inline]
pub(crate) fn layout(size: usize) -> Layout {
    // 8 is a power of two and the sizes here are far from overflowing.
    Layout::from_size_align(size, 8).expect("layout")
}

/// linked_list_allocator over a region it owns.
pub(crate) struct LinkedList {
    pub(crate) heap: Global<LockedHeap>,
    pub(crate) _region: Vec<u8>,
}

impl LinkedList {
    pub(crate) fn new() -> Self {
        let mut region = vec![0u8; LL_HEAP];
        // SAFETY: the region is ours, not used for anything else, and lives (without moving:
        // only the Vec's header moves) as long as the heap, which is dropped first.
        let heap = unsafe { LockedHeap::new(region.as_mut_ptr(), region.len()) };
        Self {
            heap: Global(heap),
            _region: region,
        }
    }
}
