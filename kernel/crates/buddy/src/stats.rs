//! Counters: how much memory is free and used, per order and per node.

use crate::{MAX_NODES, NR_ORDERS};

/// The counters of one NUMA node.
///
/// `free_blocks[k]` is the number of free blocks of order `k` (each `2^k` pages), and
/// `used_blocks[k]` the number of allocated ones. Every managed page is in exactly one block, so
/// `free_pages() + used_pages() == total_pages` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeStats {
    /// Pages added to this node with `add_range`.
    pub total_pages: usize,
    /// Free blocks per order.
    pub free_blocks: [usize; NR_ORDERS],
    /// Allocated blocks per order.
    pub used_blocks: [usize; NR_ORDERS],
}

impl NodeStats {
    /// Free pages on this node: the free blocks weighted by their size.
    pub fn free_pages(&self) -> usize {
        pages(&self.free_blocks)
    }

    /// Allocated pages on this node.
    pub fn used_pages(&self) -> usize {
        pages(&self.used_blocks)
    }

    /// Whether this node has a free block of order `order` or larger, i.e. whether an
    /// allocation of that order can be served locally.
    pub fn can_serve(&self, order: usize) -> bool {
        self.free_blocks.iter().skip(order).any(|&n| n > 0)
    }
}

/// A snapshot of the allocator's counters, from
/// [`BuddyAllocator::stats`](crate::BuddyAllocator::stats).
///
/// The per-order totals over all nodes are methods; the per-node detail is in `nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// One entry per node id; nodes that were never given memory are all zeros.
    pub nodes: [NodeStats; MAX_NODES],
}

impl Stats {
    /// All managed pages.
    pub fn total_pages(&self) -> usize {
        self.nodes.iter().map(|n| n.total_pages).sum()
    }

    /// All free pages.
    pub fn free_pages(&self) -> usize {
        self.nodes.iter().map(NodeStats::free_pages).sum()
    }

    /// All allocated pages.
    pub fn used_pages(&self) -> usize {
        self.nodes.iter().map(NodeStats::used_pages).sum()
    }

    /// Free blocks of order `order`, over all nodes (0 for an order above `MAX_ORDER`).
    pub fn free_blocks(&self, order: usize) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.free_blocks.get(order))
            .sum()
    }

    /// Allocated blocks of order `order`, over all nodes (0 for an order above `MAX_ORDER`).
    pub fn used_blocks(&self, order: usize) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.used_blocks.get(order))
            .sum()
    }
}

/// The number of pages in `counts[k]` blocks of order `k`, summed over `k`.
fn pages(counts: &[usize; NR_ORDERS]) -> usize {
    counts
        .iter()
        .enumerate()
        .map(|(order, &n)| n << order)
        .sum()
}
