//! Per-frame metadata: one [`PageMeta`] for every 4 KiB frame the allocator can manage.

use core::mem::{MaybeUninit, size_of};

/// The "no index" value of a free-list link.
pub(crate) const NIL: u32 = u32::MAX;

/// Flag bit: the frame is the head of a block that sits on a free list.
pub(crate) const FREE: u8 = 1 << 0;
/// Flag bit: the frame is the first frame of a block (free or allocated).
pub(crate) const HEAD: u8 = 1 << 1;
/// Flag bit: the frame belongs to a block but is not its first frame.
pub(crate) const TAIL: u8 = 1 << 2;
/// Flag bit: the frame is not managed (never added with `add_range`: a hole, firmware, MMIO).
pub(crate) const RESERVED: u8 = 1 << 3;

/// What the allocator knows about one 4 KiB page frame.
///
/// The kernel keeps one of these per frame, in an array indexed by frame number (minus the
/// array's base frame), so that looking up any physical address is a shift and an index: O(1).
/// Because there is one per frame, it must stay small: 24 bytes on a 64-bit target, about 0.6%
/// of the memory it describes.
///
/// A managed frame is in exactly one block, free or allocated. The block's first frame, its
/// **head**, carries the block's order; every other frame of it is a **tail**. The head of a
/// *free* block also carries the free-list links (the indices of its neighbours in the list),
/// so the lists live entirely in this array and never in the free memory itself.
///
/// The fields are private so that only the allocator can change them (a wrong flag would
/// corrupt the free lists); the accessors let anyone inspect them, e.g. for a debugger or
/// `/proc`-style statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PageMeta {
    /// Set by the block's user with `set_owner`, 0 otherwise; always 0 in free blocks.
    pub(crate) owner: usize,
    /// Free-list link to the previous free block (its head's index), or [`NIL`].
    pub(crate) prev: u32,
    /// Free-list link to the next free block (its head's index), or [`NIL`].
    pub(crate) next: u32,
    /// A combination of `FREE`, `HEAD`, `TAIL` and `RESERVED`.
    pub(crate) flags: u8,
    /// The block's order, meaningful in a head only.
    pub(crate) order: u8,
    /// The NUMA node the frame belongs to, meaningful unless reserved.
    pub(crate) node: u8,
}

impl PageMeta {
    /// Where the owner word is in an entry (`repr(C)`, first field): for lock-free readers
    /// that hold a raw pointer into the array and read that word alone (the kernel's
    /// `page_owner`, on every `kfree`).
    pub const OWNER_OFFSET: usize = core::mem::offset_of!(PageMeta, owner);

    /// The state of a frame the allocator does not manage (yet): the value to fill fresh
    /// metadata storage with, and what [`BuddyAllocator::new`](crate::BuddyAllocator::new)
    /// resets every entry to.
    pub const RESERVED: PageMeta = PageMeta {
        owner: 0,
        prev: NIL,
        next: NIL,
        flags: RESERVED,
        order: 0,
        node: 0,
    };

    /// A managed frame that is a tail (the state every frame of a new range starts in).
    pub(crate) const fn tail(node: u8) -> PageMeta {
        PageMeta {
            owner: 0,
            prev: NIL,
            next: NIL,
            flags: TAIL,
            order: 0,
            node,
        }
    }

    /// Whether the frame is outside the managed memory (a hole, or not added yet).
    pub const fn is_reserved(&self) -> bool {
        self.flags & RESERVED != 0
    }

    /// Whether the frame is the head of a block that is currently free (on a free list).
    ///
    /// Only heads say whether their block is free: a tail does not know, because updating every
    /// tail on each allocation would make it O(2^order) instead of O(1).
    pub const fn is_free(&self) -> bool {
        self.flags & FREE != 0
    }

    /// Whether the frame is the first frame of a block, free or allocated.
    pub const fn is_head(&self) -> bool {
        self.flags & HEAD != 0
    }

    /// Whether the frame is inside a block but not its first frame.
    pub const fn is_tail(&self) -> bool {
        self.flags & TAIL != 0
    }

    /// The order of the block this frame heads, or `None` if it is not a head.
    pub const fn order(&self) -> Option<usize> {
        if self.is_head() {
            Some(self.order as usize)
        } else {
            None
        }
    }

    /// The NUMA node of the frame, or `None` if it is reserved.
    pub const fn node(&self) -> Option<usize> {
        if self.is_reserved() {
            None
        } else {
            Some(self.node as usize)
        }
    }

    /// The owner word (see [`BuddyAllocator::set_owner`](crate::BuddyAllocator::set_owner)):
    /// 0 unless the user of an allocated block set it.
    pub const fn owner(&self) -> usize {
        self.owner
    }
}

impl Default for PageMeta {
    /// The same as [`PageMeta::RESERVED`].
    fn default() -> Self {
        PageMeta::RESERVED
    }
}

/// How many bytes of [`PageMeta`] storage the frames `start_pfn..end_pfn` need.
///
/// At boot the kernel computes this for the whole span of physical memory (from the lowest to
/// the highest usable frame), carves that many bytes out of a usable range (aligned to
/// `align_of::<PageMeta>()`, 8 bytes), and passes them to [`init_metadata`]. Returns 0 for an
/// empty or inverted range, and saturates instead of overflowing.
///
/// ```
/// // 4 GiB of RAM is 2^20 frames: 24 MiB of metadata.
/// assert_eq!(buddy::metadata_bytes(0, 1 << 20), 24 << 20);
/// ```
pub const fn metadata_bytes(start_pfn: usize, end_pfn: usize) -> usize {
    end_pfn
        .saturating_sub(start_pfn)
        .saturating_mul(size_of::<PageMeta>())
}

/// Fills raw metadata storage with [`PageMeta::RESERVED`] and returns it as a metadata slice,
/// ready for [`BuddyAllocator::new`](crate::BuddyAllocator::new).
///
/// In the kernel the storage is memory carved out at boot, uninitialised; viewing it as
/// `&mut [MaybeUninit<PageMeta>]` (which any properly aligned, exclusively owned memory may be)
/// and passing it through here is the one step that turns it into initialised metadata, without
/// any `unsafe` at the call site.
pub fn init_metadata(storage: &mut [MaybeUninit<PageMeta>]) -> &mut [PageMeta] {
    for slot in storage.iter_mut() {
        slot.write(PageMeta::RESERVED);
    }
    // SAFETY: the loop above wrote a valid `PageMeta` into every element of `storage`, so the
    // whole slice is initialised; the returned borrow has the same lifetime as `storage`.
    unsafe { storage.assume_init_mut() }
}
