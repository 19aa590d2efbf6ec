//! The allocator itself: adding memory, allocating with splits, freeing with coalescing.

use core::fmt;

use crate::error::{AllocError, FreeError, InitError, RangeError};
use crate::meta::{FREE, HEAD, NIL, PageMeta, TAIL};
use crate::stats::{NodeStats, Stats};
use crate::{MAX_NODES, MAX_ORDER, NR_ORDERS};

/// A buddy allocator of physical page frames.
///
/// It manages the frames `base_pfn..base_pfn + meta.len()` of the metadata array it is given
/// (more precisely, those of them that are later added with [`add_range`](Self::add_range)),
/// and hands out naturally aligned blocks of `2^order` frames. See the [crate docs](crate) for
/// how buddies, splitting and coalescing work.
///
/// It borrows the metadata array for `'a` (in the kernel, `'static`) and owns nothing else: its
/// own state is a couple of kilobytes of fixed-size arrays, so it can live in a `static` behind
/// the kernel's lock. It never allocates and never panics on a bad request.
pub struct BuddyAllocator<'a> {
    /// One entry per frame of the window, indexed by `pfn - base_pfn`.
    pub(crate) meta: &'a mut [PageMeta],
    /// The frame number of `meta[0]`.
    pub(crate) base_pfn: usize,
    /// The index of the first free block of each list, per node and order, or `NIL`.
    pub(crate) free_heads: [[u32; NR_ORDERS]; MAX_NODES],
    /// The counters behind [`stats`](Self::stats).
    pub(crate) nodes: [NodeStats; MAX_NODES],
}

impl fmt::Debug for BuddyAllocator<'_> {
    /// Shows the metadata window and the counters, not the (huge) metadata array.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuddyAllocator")
            .field("pfns", &(self.base_pfn..self.end_pfn()))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<'a> BuddyAllocator<'a> {
    /// Creates an allocator whose metadata array `meta` describes the frames
    /// `base_pfn..base_pfn + meta.len()`, none of them managed yet.
    ///
    /// Every entry is reset to [`PageMeta::RESERVED`] (O(len)), so any initialised storage will
    /// do; size it with [`metadata_bytes`](crate::metadata_bytes). Memory becomes allocatable
    /// only once added with [`add_range`](Self::add_range): the array may cover holes, and the
    /// frames holding the array itself, which the kernel must simply never add.
    ///
    /// Fails if the array is too long for the 32-bit free-list links (16 TiB of memory), or if
    /// `base_pfn + meta.len()` overflows.
    pub fn new(meta: &'a mut [PageMeta], base_pfn: usize) -> Result<Self, InitError> {
        if meta.len() >= NIL as usize {
            return Err(InitError::TooManyFrames);
        }
        if base_pfn.checked_add(meta.len()).is_none() {
            return Err(InitError::PfnOverflow);
        }
        meta.fill(PageMeta::RESERVED);
        Ok(BuddyAllocator {
            meta,
            base_pfn,
            free_heads: [[NIL; NR_ORDERS]; MAX_NODES],
            nodes: [NodeStats::default(); MAX_NODES],
        })
    }

    /// The first frame the metadata array describes.
    pub fn base_pfn(&self) -> usize {
        self.base_pfn
    }

    /// One past the last frame the metadata array describes.
    pub fn end_pfn(&self) -> usize {
        self.base_pfn + self.meta.len()
    }

    /// Hands the frames `start_pfn..end_pfn` of NUMA node `node` to the allocator.
    ///
    /// The range is cut into the largest naturally aligned blocks that fit (so a range that
    /// starts at an odd frame begins with an order-0 block, then an order-1 block, and so on up),
    /// and each block is freed into the free lists, where it coalesces with any free buddy of the
    /// same node from ranges added earlier: adding `0..512` then `512..1024` gives one order-10
    /// block, exactly as adding `0..1024` at once would.
    ///
    /// The range must lie inside the metadata window and must not overlap memory already added;
    /// otherwise nothing changes and an error says why. O(number of frames).
    pub fn add_range(
        &mut self,
        start_pfn: usize,
        end_pfn: usize,
        node: usize,
    ) -> Result<(), RangeError> {
        if node >= MAX_NODES {
            return Err(RangeError::InvalidNode { node });
        }
        if start_pfn >= end_pfn {
            return Err(RangeError::Empty);
        }
        if start_pfn < self.base_pfn || end_pfn > self.end_pfn() {
            return Err(RangeError::OutsideMetadata);
        }
        let (first, last) = (start_pfn - self.base_pfn, end_pfn - self.base_pfn);
        if let Some(i) = self.meta[first..last].iter().position(|m| !m.is_reserved()) {
            return Err(RangeError::Overlap { pfn: start_pfn + i });
        }

        // `node < MAX_NODES <= 256`, so the cast is lossless.
        self.meta[first..last].fill(PageMeta::tail(node as u8));
        self.nodes[node].total_pages += end_pfn - start_pfn;
        let mut pfn = start_pfn;
        while pfn < end_pfn {
            // The largest order that is both aligned at `pfn` and fits before `end_pfn`.
            let aligned = pfn.trailing_zeros() as usize; // 64 for pfn 0: any order is aligned
            let fits = (end_pfn - pfn).ilog2() as usize;
            let order = aligned.min(fits).min(MAX_ORDER);
            self.insert_free(pfn, order, node);
            pfn += 1 << order;
        }
        Ok(())
    }

    /// Allocates a naturally aligned block of `2^order` frames and returns its first frame.
    ///
    /// The preferred node (`None`: no preference) is tried first, with every order from `order`
    /// up to [`MAX_ORDER`]: splitting a big local block is better than taking a small remote one,
    /// because memory on the CPU's own node is faster. Only if the node has no block large
    /// enough do the other nodes get asked, in the order `node + 1, node + 2, ...` (wrapping
    /// around), or `0, 1, ...` without a preference.
    ///
    /// Fails with [`AllocError::OutOfMemory`] when no node has a free block of at least this
    /// order, and with `InvalidOrder` / `InvalidNode` for arguments out of range; never panics.
    /// The returned block's owner word (see [`set_owner`](Self::set_owner)) is 0.
    pub fn alloc_pages(
        &mut self,
        order: usize,
        preferred_node: Option<usize>,
    ) -> Result<usize, AllocError> {
        if order > MAX_ORDER {
            return Err(AllocError::InvalidOrder { order });
        }
        let first = match preferred_node {
            Some(node) if node >= MAX_NODES => return Err(AllocError::InvalidNode { node }),
            Some(node) => node,
            None => 0,
        };
        for i in 0..MAX_NODES {
            let node = (first + i) % MAX_NODES;
            if let Some(pfn) = self.alloc_from_node(order, node) {
                return Ok(pfn);
            }
        }
        Err(AllocError::OutOfMemory)
    }

    /// Frees the block of `2^order` frames starting at `pfn`, coalescing it with its buddy for as
    /// long as the buddy is a free block of the same order and node.
    ///
    /// The request is checked first: `pfn` must head an allocated block of exactly that order.
    /// A [`FreeError`] says what was wrong, and then nothing has changed. If the block's owner
    /// word was set, every page's owner word is reset to 0 (free memory has no owner).
    pub fn free_pages(&mut self, pfn: usize, order: usize) -> Result<(), FreeError> {
        let idx = self.allocated_block(pfn, order)?;
        let node = self.meta[idx].node as usize;
        if self.meta[idx].owner != 0 {
            // `set_owner` wrote the whole block, so the whole block needs clearing.
            for m in &mut self.meta[idx..idx + (1 << order)] {
                m.owner = 0;
            }
        }
        self.nodes[node].used_blocks[order] -= 1;
        self.insert_free(pfn, order, node);
        Ok(())
    }

    /// Sets the owner word of every page of the allocated block `pfn` of `2^order` frames.
    ///
    /// This is for the block's user: the slab allocator, say, stores a pointer to its slab here,
    /// and later maps any address inside the block back to that slab with [`owner`](Self::owner)
    /// in O(1), without caring which page of the block the address is in. O(2^order).
    ///
    /// The block is checked exactly as [`free_pages`](Self::free_pages) checks it (so
    /// [`FreeError::DoubleFree`] here means the block is free), and nothing changes on error.
    /// The owner words are reset to 0 when the block is freed.
    pub fn set_owner(&mut self, pfn: usize, order: usize, value: usize) -> Result<(), FreeError> {
        let idx = self.allocated_block(pfn, order)?;
        for m in &mut self.meta[idx..idx + (1 << order)] {
            m.owner = value;
        }
        Ok(())
    }

    /// The owner word of frame `pfn`: what [`set_owner`](Self::set_owner) stored for its block,
    /// or 0 if nothing was (including for free and unmanaged frames). O(1).
    pub fn owner(&self, pfn: usize) -> usize {
        self.page_meta(pfn).map_or(0, PageMeta::owner)
    }

    /// The metadata of frame `pfn`, or `None` if it is outside the metadata window.
    pub fn page_meta(&self, pfn: usize) -> Option<&PageMeta> {
        self.index(pfn).map(|i| &self.meta[i])
    }

    /// A snapshot of the free and used counts, per node and per order. O(1): the counters are
    /// kept up to date on every change.
    pub fn stats(&self) -> Stats {
        Stats { nodes: self.nodes }
    }

    /// The metadata index of frame `pfn`, or `None` outside the window.
    pub(crate) fn index(&self, pfn: usize) -> Option<usize> {
        let idx = pfn.checked_sub(self.base_pfn)?;
        (idx < self.meta.len()).then_some(idx)
    }

    /// Checks that `pfn` heads an allocated block of `order` and returns its metadata index.
    fn allocated_block(&self, pfn: usize, order: usize) -> Result<usize, FreeError> {
        let idx = self.index(pfn).ok_or(FreeError::NotManaged { pfn })?;
        let m = &self.meta[idx];
        if m.is_reserved() {
            Err(FreeError::NotManaged { pfn })
        } else if !m.is_head() {
            Err(FreeError::NotHead { pfn })
        } else if m.is_free() {
            Err(FreeError::DoubleFree { pfn })
        } else if m.order as usize != order {
            Err(FreeError::WrongOrder {
                pfn,
                given: order,
                actual: m.order as usize,
            })
        } else {
            Ok(idx)
        }
    }

    /// Takes a block of at least `order` from `node`'s lists and splits it down to `order`.
    fn alloc_from_node(&mut self, order: usize, node: usize) -> Option<usize> {
        let (mut current, idx) =
            (order..=MAX_ORDER).find_map(|k| self.list_pop(node, k).map(|idx| (k, idx)))?;
        self.nodes[node].free_blocks[current] -= 1;
        let pfn = self.base_pfn + idx as usize;

        // Split: keep the lower half, give the upper half (our buddy) back, one order lower.
        while current > order {
            current -= 1;
            let upper = idx + (1 << current);
            let m = &mut self.meta[upper as usize];
            m.flags = HEAD | FREE;
            m.order = current as u8;
            self.list_push(node, current, upper);
            self.nodes[node].free_blocks[current] += 1;
        }

        let head = &mut self.meta[idx as usize];
        head.flags = HEAD;
        head.order = order as u8;
        self.nodes[node].used_blocks[order] += 1;
        Some(pfn)
    }

    /// Puts the block `pfn` of `order` on `node`'s free lists, merging it with its buddy while
    /// the buddy is free, of the same order and on the same node.
    ///
    /// On entry, every page of the block other than the head is a tail, and the head is not on
    /// any list. The absorbed half of each merge (whichever of the two is higher) simply becomes
    /// a tail of the merged block: O(1) per merge.
    fn insert_free(&mut self, mut pfn: usize, mut order: usize, node: usize) {
        while order < MAX_ORDER {
            let buddy = pfn ^ (1 << order);
            let Some(bidx) = self.index(buddy) else { break };
            let b = &self.meta[bidx];
            // A free head of the same order means the whole buddy block is free and managed.
            if b.flags != HEAD | FREE || b.order as usize != order || b.node as usize != node {
                break;
            }
            // `bidx < meta.len() < NIL`, checked in `new`.
            self.list_remove(node, order, bidx as u32);
            self.nodes[node].free_blocks[order] -= 1;
            let upper = pfn.max(buddy) - self.base_pfn;
            self.meta[upper].flags = TAIL;
            self.meta[upper].order = 0;
            pfn = pfn.min(buddy);
            order += 1;
        }

        let idx = pfn - self.base_pfn;
        let head = &mut self.meta[idx];
        head.flags = HEAD | FREE;
        head.order = order as u8;
        self.list_push(node, order, idx as u32);
        self.nodes[node].free_blocks[order] += 1;
    }
}
