//! The bottom layer: page size, allocation flags and CPU slots, which every other file uses.
//!
//! Nothing here depends on the rest of the crate.

// The page size (4 KiB) and its log2: one owner, the `consts` crate.
pub use consts::{PAGE_SHIFT, PAGE_SIZE};

/// Bytes of a deferred free queue node, written at the start of each queued object: the usable
/// size an object must have to be queued (`sizeof(struct kmem_free_q_node)`; the queue is
/// `free_q.rs`, which the error reports name it for).
pub const FREE_Q_NODE_SIZE: usize = 2 * core::mem::size_of::<usize>();

bitflags::bitflags! {
    /// Allocation flags ("get free pages" flags), a tiny subset of Linux's `gfp_t`.
    ///
    /// They are passed down to [`Platform::alloc_pages`](crate::Platform::alloc_pages)
    /// unchanged, except [`Gfp::ZERO`], which the slab allocator handles itself by clearing the
    /// object.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Gfp: u32 {
        /// The caller may sleep (the default for process context).
        const KERNEL = 1 << 0;
        /// The caller must not sleep (interrupt context, spinlock held).
        const ATOMIC = 1 << 1;
        /// The caller must not sleep and would rather fail than use reserves (`GFP_NOWAIT`).
        /// Sheaf never sleeps to allocate and keeps no reserves, so [`Gfp::ATOMIC`] and this
        /// behave alike; both are safe in interrupt handlers.
        const NOWAIT = 1 << 4;
        /// Return zeroed memory (`__GFP_ZERO`).
        const ZERO = 1 << 2;
        /// Do not warn when the allocation fails (`__GFP_NOWARN`).
        const NOWARN = 1 << 3;
    }
}

/// Bytes of one CPU's entry in a cache's per-CPU array: one cache line, so that CPUs never
/// share a line there.
pub const CPU_SLOT_BYTES: usize = 64;

/// The slot [`Platform::pin_fast`](crate::Platform::pin_fast) returns for `cpu`: the byte offset
/// of its per-CPU entry (entry 0 is "no CPU", so CPU `cpu` is entry `cpu + 1`).
#[inline(always)]
pub const fn cpu_slot(cpu: usize) -> usize {
    (cpu + 1) * CPU_SLOT_BYTES
}

/// The CPU of a non-zero slot from [`Platform::pin_fast`](crate::Platform::pin_fast) (the
/// inverse of [`cpu_slot`]).
#[inline(always)]
pub const fn slot_cpu(slot: usize) -> usize {
    slot / CPU_SLOT_BYTES - 1
}
/// The smallest order whose block holds `size` bytes (Linux's `get_order`).
pub fn get_order(size: usize) -> u32 {
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    pages.next_power_of_two().trailing_zeros()
}
