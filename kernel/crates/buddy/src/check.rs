//! A full consistency check of the allocator's state, for tests and kernel debugging.

use core::fmt;

use crate::allocator::BuddyAllocator;
use crate::meta::{FREE, HEAD, NIL};
use crate::stats::NodeStats;
use crate::{MAX_NODES, MAX_ORDER, NR_ORDERS};

/// A broken invariant found by [`BuddyAllocator::check_invariants`]: which frame, and what is
/// wrong with it. Seeing one means a bug in this crate (or memory corruption of its metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvariantViolation {
    /// The frame where the problem shows (for a free list: the head of the faulty block).
    pub pfn: usize,
    /// What is wrong, in words.
    pub what: &'static str,
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {:#x}: {}", self.pfn, self.what)
    }
}

impl core::error::Error for InvariantViolation {}

impl BuddyAllocator<'_> {
    /// Walks all the metadata and every free list and checks that they agree. O(frames).
    ///
    /// It checks that the managed frames are tiled by blocks (a head with an order, followed by
    /// `2^order - 1` tails of the same node), that each block is naturally aligned, that free
    /// blocks have no owner, that no free block has a free buddy of the same order and node
    /// (coalescing is eager, so one would be a missed merge), that each free list is a well
    /// linked list of exactly the free heads of its node and order, and that the counters of
    /// [`stats`](Self::stats) match what the walk counted.
    ///
    /// Too slow to call on every operation in the kernel, but cheap insurance in tests and in a
    /// debug build's self-check.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let mut counted = [NodeStats::default(); MAX_NODES];
        let mut i = 0;
        while i < self.meta.len() {
            let m = &self.meta[i];
            let pfn = self.base_pfn + i;
            let fail = |what| Err(InvariantViolation { pfn, what });
            if m.is_reserved() {
                if m.flags & (HEAD | FREE) != 0 || m.owner != 0 {
                    return fail("reserved frame with block flags or an owner");
                }
                i += 1;
                continue;
            }
            if !m.is_head() || m.is_tail() {
                return fail("block does not start with a head");
            }
            let (order, node) = (m.order as usize, m.node as usize);
            if order > MAX_ORDER || node >= MAX_NODES {
                return fail("order or node out of range");
            }
            if !pfn.is_multiple_of(1 << order) {
                return fail("block not naturally aligned");
            }
            let Some(block) = self.meta.get(i..i + (1 << order)) else {
                return fail("block runs past the metadata array");
            };
            for t in &block[1..] {
                if t.flags != crate::meta::TAIL || t.node != m.node {
                    return fail("block page is not a tail of the same node");
                }
            }
            if m.is_free() {
                if block.iter().any(|t| t.owner != 0) {
                    return fail("free block has an owner");
                }
                if order < MAX_ORDER
                    && let Some(b) = self.page_meta(pfn ^ (1 << order))
                    && b.flags == HEAD | FREE
                    && b.order == m.order
                    && b.node == m.node
                {
                    return fail("free block has a free buddy: missed coalescing");
                }
                counted[node].free_blocks[order] += 1;
            } else {
                counted[node].used_blocks[order] += 1;
            }
            counted[node].total_pages += 1 << order;
            i += 1 << order;
        }
        if counted != self.nodes {
            return Err(InvariantViolation {
                pfn: self.base_pfn,
                what: "stats counters disagree with the metadata",
            });
        }
        for node in 0..MAX_NODES {
            for order in 0..NR_ORDERS {
                self.check_list(node, order)?;
            }
        }
        Ok(())
    }

    /// Checks one free list: links, flags, and length against the counter.
    fn check_list(&self, node: usize, order: usize) -> Result<(), InvariantViolation> {
        let mut prev = NIL;
        let mut idx = self.free_heads[node][order];
        let mut len = 0;
        while idx != NIL {
            let pfn = self.base_pfn + idx as usize;
            let fail = |what| Err(InvariantViolation { pfn, what });
            let Some(m) = self.meta.get(idx as usize) else {
                return fail("free-list link out of the metadata array");
            };
            if m.flags != HEAD | FREE || m.order as usize != order || m.node as usize != node {
                return fail("free-list entry is not a free head of this order and node");
            }
            if m.prev != prev {
                return fail("free-list back link is wrong");
            }
            len += 1;
            if len > self.nodes[node].free_blocks[order] {
                return fail("free list longer than its counter (or a cycle)");
            }
            prev = idx;
            idx = m.next;
        }
        if len != self.nodes[node].free_blocks[order] {
            return Err(InvariantViolation {
                pfn: self.base_pfn,
                what: "free list shorter than its counter",
            });
        }
        Ok(())
    }
}
