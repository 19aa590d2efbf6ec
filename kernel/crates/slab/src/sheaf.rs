//! Sheaves: per-CPU arrays of object pointers (the types; the slow paths that trade them are in
//! [`crate::cache::sheaves`]).
//!
//! A sheaf is a header followed by an array of `capacity` object pointers. Each CPU has, per
//! cache, a `main` sheaf that the fast paths pop from and push to (see [`crate::cache`]) and an
//! optional `spare`. When `main` runs empty (allocation) or full (free), the slow paths
//! exchange it, in order of cost: with the spare, with the node's [`Barn`](crate::barn::Barn),
//! and finally with the slabs (refill from / flush to the slab free lists).
//!
//! A cache without sheaves (capacity 0, e.g. debug caches) points `main` at one shared static
//! zero-capacity sheaf: the fast paths see it as both empty and full and fall into the slow
//! paths, which then go straight to the slabs. So the fast paths need no "has sheaves" test.
//!
//! Where sheaves come from: Linux allocates them with `kmalloc`, which needs care because the
//! kmalloc caches have sheaves themselves. Sheaf gives every cache with sheaves a private
//! *sheaf cache* (a cache without sheaves whose objects are exactly one sheaf: 32-byte header
//! plus `capacity` pointers), so allocating a sheaf never recurses into the cache being
//! served. Capacities are still rounded as Linux does, so that a sheaf would exactly fill its
//! kmalloc bucket (60 pointers: 512 bytes). Oversize prefilled sheaves get whole pages.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use crate::base::CPU_SLOT_BYTES;
use crate::layout::SHEAF_HEADER;

/// Objects moved per batch when a sheaf is flushed to slabs (`PCS_BATCH_MAX`).
pub const SHEAF_FLUSH_BATCH: usize = 32;

/// Marks a sheaf allocated from the cache's sheaf cache rather than from whole pages.
pub(crate) const NOT_OVERSIZE: u32 = u32::MAX;

/// The header of a sheaf (Linux's `struct slab_sheaf`); `capacity` object pointers follow it.
#[repr(C)]
#[derive(Debug)]
pub struct Sheaf {
    /// Number of objects in the sheaf.
    pub(crate) size: u32,
    /// Number of pointers the array has room for.
    pub(crate) capacity: u32,
    /// Node the sheaf was allocated for.
    pub(crate) node: u32,
    /// Page order of an oversize prefilled sheaf, or `u32::MAX` for a regular one.
    pub(crate) oversize_order: u32,
    /// Address of the owning cache.
    pub(crate) cache: usize,
    /// The free fast path pushes while `size < push_limit`: `capacity`, or 0 in caches of a
    /// multi-node machine, whose frees all take the slow path for its remote-node test (so
    /// that the single-node fast path does not pay for that test).
    pub(crate) push_limit: u32,
    pub(crate) _reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Sheaf>() == SHEAF_HEADER);

impl Sheaf {
    /// A header with room for `capacity` objects holding `size` of them (for tests of the barn:
    /// real sheaves are allocated with their pointer array).
    pub(crate) const fn header(capacity: u32, size: u32) -> Self {
        Self {
            size,
            capacity,
            node: 0,
            oversize_order: NOT_OVERSIZE,
            cache: 0,
            push_limit: capacity,
            _reserved: 0,
        }
    }

    /// The pointer array following the header.
    ///
    /// # Safety
    /// `this` must point to a sheaf allocated with its array (or to the static empty sheaf, in
    /// which case the array has no element).
    #[inline(always)]
    pub(crate) unsafe fn objects(this: *mut Sheaf) -> *mut *mut u8 {
        // SAFETY: the array starts right after the 32-byte header (caller contract).
        unsafe { this.add(1).cast() }
    }
}

struct StaticSheaf(Sheaf);
// SAFETY: the static sheaf is never written (capacity 0: the fast paths never store into it).
unsafe impl Sync for StaticSheaf {}

/// The one zero-capacity sheaf shared by all caches without sheaves.
static EMPTY_SHEAF: StaticSheaf = StaticSheaf(Sheaf::header(0, 0));

/// Pointer to the shared zero-capacity sheaf. Only ever read through.
pub(crate) fn empty_sheaf() -> *mut Sheaf {
    ptr::addr_of!(EMPTY_SHEAF.0).cast_mut()
}

/// One CPU's sheaves of one cache (Linux's `struct slub_percpu_sheaves`), as seen by the slow
/// paths while the CPU is pinned.
///
/// Borrowed from the CPU's [`PerCpu`] slot in `KmemCache::cpu_sheaves`.
pub(crate) struct PerCpuSheaves<'a> {
    /// Never null: a real sheaf or the static empty one.
    pub(crate) main: &'a mut *mut Sheaf,
    /// Null, or a sheaf in any state (empty, partially filled or full).
    pub(crate) spare: &'a mut *mut Sheaf,
    /// Null, or the sheaf collecting `kfree_rcu` objects (never full: a full one is handed
    /// to RCU at once).
    pub(crate) rcu_free: &'a mut *mut Sheaf,
    /// This CPU's node.
    pub(crate) node: usize,
}

/// A CPU's slot in a cache: its sheaves and node, alone on a cache line.
#[repr(C, align(64))]
pub(crate) struct PerCpu {
    /// Never null: a real sheaf or the static empty one. The fast paths read only this.
    pub(crate) main: UnsafeCell<*mut Sheaf>,
    /// Null, or a sheaf in any state.
    pub(crate) spare: UnsafeCell<*mut Sheaf>,
    /// Null, or the sheaf collecting `kfree_rcu` objects.
    pub(crate) rcu_free: UnsafeCell<*mut Sheaf>,
    /// This CPU's node.
    pub(crate) node: usize,
}

const _: () = assert!(core::mem::size_of::<PerCpu>() == CPU_SLOT_BYTES);

/// The page source could not provide the memory asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// A sheaf handed to a caller by [`KmemCache::prefill_sheaf`](crate::KmemCache::prefill_sheaf): allocations from it
/// cannot fail until it is empty, which lets a caller reserve objects before entering a section
/// that must not fail (Linux uses this for maple tree nodes).
///
/// Give it back with [`KmemCache::return_sheaf`](crate::KmemCache::return_sheaf); dropping it leaks its objects.
#[must_use = "return the sheaf with kmem_cache_return_sheaf"]
#[derive(Debug)]
pub struct PrefilledSheaf {
    pub(crate) sheaf: NonNull<Sheaf>,
}

// SAFETY: a prefilled sheaf is owned by whoever holds this handle; it is not per-CPU state.
unsafe impl Send for PrefilledSheaf {}
