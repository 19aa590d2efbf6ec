//! A `no_std` buddy allocator for physical page frames.
//!
//! The kernel hands this crate the physical memory it found at boot, as ranges of *page frame
//! numbers* (PFNs: a physical address divided by [`PAGE_SIZE`]), and asks it for blocks of
//! `2^order` contiguous frames. It needs no heap: all of its bookkeeping lives in a fixed-size
//! struct plus a [`PageMeta`] array whose storage the caller provides.
//!
//! # Buddies
//!
//! Every block this allocator hands out holds `2^order` frames, for an *order* from 0 (one 4 KiB
//! page) to [`MAX_ORDER`] (1024 pages, 4 MiB), and is **naturally aligned**: its first frame
//! number is a multiple of its size. That one rule is what makes the scheme work. Cut an aligned
//! block of order `k + 1` in half and you get two aligned blocks of order `k`, which are each
//! other's *buddy*. Given either half, the other is found by flipping a single bit:
//!
//! ```text
//! buddy(pfn, order) = pfn ^ (1 << order)
//!
//! order 1 block at pfn 8:   [8 9 | 10 11]   <- order 2 block at pfn 8
//!                            ^^^    ^^^^^
//!       buddy(8, 1) = 10,  buddy(10, 1) = 8
//! ```
//!
//! No search, no tree walk: O(1) arithmetic. Without natural alignment, "the block next to mine"
//! would be ambiguous (left or right neighbour?) and two merged halves would not form a block
//! that could be merged again.
//!
//! # Splitting and coalescing
//!
//! The allocator keeps one free list per order (and per NUMA node, see below). To allocate an
//! order-`k` block it takes the smallest free block of order `j >= k` and **splits** it: the
//! upper half goes back on the free list of order `j - 1`, and so on down to `k`.
//!
//! Freeing does the opposite, **coalescing**: if the buddy of the freed block is itself a free
//! block of the same order (and of the same node), the two are removed from their list and
//! merged into one block of the next order, and the check repeats one level up. This eager
//! merging keeps free memory in blocks as large as possible, which is what later large
//! allocations need: after everything is freed, memory is back in the very blocks it started in.
//!
//! # Metadata
//!
//! Each frame has a small [`PageMeta`] entry (24 bytes on 64-bit targets) in one array indexed
//! by frame number. The allocator keeps its free lists *in* that array: the head frame of a free
//! block stores the indices of the previous and next free block of its list. So the allocator
//! never writes to free memory itself (it need not even be mapped), and taking a buddy out of
//! the middle of its list when coalescing is O(1). The array also carries an `owner` word that a
//! user such as the slab allocator can set for every page of a block it holds
//! ([`BuddyAllocator::set_owner`]), so that any address maps back to its owner in O(1). Use
//! [`metadata_bytes`] to size the array and [`init_metadata`] to initialise raw storage.
//!
//! # NUMA nodes
//!
//! Each range of memory is added with a node id ([`BuddyAllocator::add_range`]), and every node
//! has its own set of free lists. [`BuddyAllocator::alloc_pages`] serves a request from the
//! preferred node when it can (splitting a large local block rather than taking a remote one,
//! because local memory is faster for the CPU asking), and only then falls back to the other
//! nodes. Blocks never coalesce across nodes.
//!
//! # Errors, not panics
//!
//! Running out of memory is an ordinary outcome ([`AllocError::OutOfMemory`]), and a bad free
//! (unknown frame, not a block's head, wrong order, double free) is reported as a
//! [`FreeError`] with the allocator's state untouched. There is no locking inside: the API
//! takes `&mut self`, and the kernel wraps the allocator in its own lock.
//!
//! # Complexity
//!
//! With `N` = [`MAX_NODES`] and `K` = [`NR_ORDERS`], both small constants:
//!
//! - [`alloc_pages`](BuddyAllocator::alloc_pages): O(N * K) list-head checks to find a block,
//!   then at most `K - 1` O(1) splits; constant time in practice.
//! - [`free_pages`](BuddyAllocator::free_pages): at most `K - 1` O(1) merges (each an unlink from
//!   a doubly linked list), plus O(2^order) to clear the owner word if one was set (the same cost
//!   [`set_owner`](BuddyAllocator::set_owner) already paid).
//! - [`add_range`](BuddyAllocator::add_range): O(pages in the range).
//! - [`stats`](BuddyAllocator::stats): O(N * K), from counters kept up to date on every change.
//!
//! # Example
//!
//! ```
//! use buddy::{BuddyAllocator, PageMeta, AllocError, FreeError};
//!
//! // Metadata for frames 0..2048. In the kernel this is carved out of physical memory.
//! let mut meta = vec![PageMeta::RESERVED; 2048];
//! let mut pages = BuddyAllocator::new(&mut meta, 0).unwrap();
//! pages.add_range(0, 1024, 0).unwrap(); // node 0: one order-10 block
//! pages.add_range(1024, 2048, 1).unwrap(); // node 1: another
//!
//! let a = pages.alloc_pages(0, Some(1)).unwrap(); // one page from node 1
//! assert!((1024..2048).contains(&a));
//! assert_eq!(pages.free_pages(a, 1), Err(FreeError::WrongOrder { pfn: a, given: 1, actual: 0 }));
//! pages.free_pages(a, 0).unwrap();
//! assert_eq!(pages.free_pages(a, 0), Err(FreeError::DoubleFree { pfn: a }));
//!
//! let big = pages.alloc_pages(10, None).unwrap();
//! let _other = pages.alloc_pages(10, None).unwrap();
//! assert_eq!(pages.alloc_pages(0, None), Err(AllocError::OutOfMemory));
//! pages.free_pages(big, 10).unwrap();
//! ```
//!
//! # Tests
//!
//! Unit tests are in `src/tests.rs` (a child module `tests` of the crate root, in its own file,
//! as in every host crate of the kernel) and the model-based property test in `tests/model.rs`.

#![no_std]
#![warn(missing_docs, missing_debug_implementations)]

mod allocator;
mod check;
mod error;
mod list;
mod meta;
mod stats;

#[cfg(test)]
mod tests;

pub use allocator::BuddyAllocator;
pub use check::InvariantViolation;
pub use error::{AllocError, FreeError, InitError, RangeError};
pub use meta::{PageMeta, init_metadata, metadata_bytes};
pub use stats::{NodeStats, Stats};

// The size of one page frame, in bytes: 4 KiB, the smallest page on x86_64 (the `consts`
// crate owns it).
pub use consts::PAGE_SIZE;

/// The largest order: a block of order `MAX_ORDER` is `2^10 = 1024` frames, 4 MiB.
///
/// Larger blocks would help huge allocations but make splitting one more costly for everyone
/// else; 10 is what Linux has used for decades.
pub const MAX_ORDER: usize = 10;

/// The number of distinct orders, `0..=MAX_ORDER`: the length of every per-order array.
pub const NR_ORDERS: usize = MAX_ORDER + 1;

/// How many NUMA nodes the allocator can track; node ids are `0..MAX_NODES`.
///
/// The per-node free lists are fixed-size arrays (no heap), so this is a compile-time bound. It
/// must stay at most 256, because [`PageMeta`] stores the node id in a byte.
pub const MAX_NODES: usize = 8;
