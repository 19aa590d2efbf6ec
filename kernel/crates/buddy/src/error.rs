//! The error types: every way a request can fail, reported as a value instead of a panic.

use core::fmt;

/// Why [`BuddyAllocator::alloc_pages`](crate::BuddyAllocator::alloc_pages) returned no block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocError {
    /// No node has a free block of the requested order or larger. Memory may still be free in
    /// smaller blocks: that is *fragmentation*, and the buddy system cannot glue non-buddies.
    OutOfMemory,
    /// The order is above [`MAX_ORDER`](crate::MAX_ORDER).
    InvalidOrder {
        /// The order asked for.
        order: usize,
    },
    /// The preferred node is not below [`MAX_NODES`](crate::MAX_NODES).
    InvalidNode {
        /// The node asked for.
        node: usize,
    },
}

/// Why [`BuddyAllocator::free_pages`](crate::BuddyAllocator::free_pages) (or
/// [`set_owner`](crate::BuddyAllocator::set_owner), which checks its block the same way)
/// refused a block.
///
/// A free is checked against the metadata *before* anything changes, so a rejected free leaves
/// the allocator exactly as it was. Catching these early matters: a double free that went
/// through would put a block on a free list twice, and the same memory would later be handed to
/// two users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// The frame is not in any range added with `add_range` (outside the metadata array, or a
    /// reserved hole inside it).
    NotManaged {
        /// The frame given.
        pfn: usize,
    },
    /// The frame is inside a block but is not its first frame. (This is also what freeing an
    /// already freed block reports once that block has merged into a larger free block of
    /// which it is now the upper part.)
    NotHead {
        /// The frame given.
        pfn: usize,
    },
    /// The frame heads an allocated block, but of another order than the one given.
    WrongOrder {
        /// The frame given.
        pfn: usize,
        /// The order given.
        given: usize,
        /// The block's real order.
        actual: usize,
    },
    /// The frame heads a block that is already free (for `set_owner`: the block is not
    /// allocated).
    DoubleFree {
        /// The frame given.
        pfn: usize,
    },
}

/// Why [`BuddyAllocator::add_range`](crate::BuddyAllocator::add_range) refused a range. The
/// allocator is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// `start_pfn >= end_pfn`.
    Empty,
    /// The node id is not below [`MAX_NODES`](crate::MAX_NODES).
    InvalidNode {
        /// The node given.
        node: usize,
    },
    /// Part of the range has no entry in the metadata array.
    OutsideMetadata,
    /// Part of the range was already added.
    Overlap {
        /// The first frame of the range that is already managed.
        pfn: usize,
    },
}

/// Why [`BuddyAllocator::new`](crate::BuddyAllocator::new) refused a metadata array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// The array has `u32::MAX` entries or more (16 TiB of memory): free-list links are 32-bit
    /// indices into it, to keep [`PageMeta`](crate::PageMeta) small.
    TooManyFrames,
    /// `base_pfn + len` does not fit in a `usize`.
    PfnOverflow,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AllocError::OutOfMemory => f.write_str("out of memory: no free block large enough"),
            AllocError::InvalidOrder { order } => write!(f, "invalid order {order}"),
            AllocError::InvalidNode { node } => write!(f, "invalid NUMA node {node}"),
        }
    }
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FreeError::NotManaged { pfn } => write!(f, "frame {pfn:#x} is not managed memory"),
            FreeError::NotHead { pfn } => write!(f, "frame {pfn:#x} is not the head of a block"),
            FreeError::WrongOrder { pfn, given, actual } => {
                write!(f, "block at frame {pfn:#x} has order {actual}, not {given}")
            }
            FreeError::DoubleFree { pfn } => write!(f, "block at frame {pfn:#x} is already free"),
        }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RangeError::Empty => f.write_str("empty frame range"),
            RangeError::InvalidNode { node } => write!(f, "invalid NUMA node {node}"),
            RangeError::OutsideMetadata => f.write_str("range is outside the metadata array"),
            RangeError::Overlap { pfn } => write!(f, "frame {pfn:#x} is already managed"),
        }
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InitError::TooManyFrames => f.write_str("metadata array too long for 32-bit links"),
            InitError::PfnOverflow => f.write_str("base_pfn + len overflows"),
        }
    }
}

impl core::error::Error for AllocError {}
impl core::error::Error for FreeError {}
impl core::error::Error for RangeError {}
impl core::error::Error for InitError {}
