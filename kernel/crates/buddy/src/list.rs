//! The free lists: intrusive doubly linked lists threaded through the metadata array.
//!
//! Each list (one per node and order) is identified by the index of its first block's head, or
//! [`NIL`] when empty. The head frame of each free block stores `prev` and `next`, the indices of
//! its neighbours. Because the links are doubly linked, a block can be unlinked from wherever it
//! is in its list in O(1), which is exactly what coalescing needs: the buddy to absorb can be
//! anywhere in its list, and we find it by arithmetic, not by walking.

use crate::allocator::BuddyAllocator;
use crate::meta::NIL;

impl BuddyAllocator<'_> {
    /// Pushes the free block headed at metadata index `idx` onto the front of its list.
    ///
    /// The front, because the block freed last is the one most likely to still be in the CPU
    /// caches when it is allocated again.
    pub(crate) fn list_push(&mut self, node: usize, order: usize, idx: u32) {
        let old = self.free_heads[node][order];
        let head = &mut self.meta[idx as usize];
        head.prev = NIL;
        head.next = old;
        if old != NIL {
            self.meta[old as usize].prev = idx;
        }
        self.free_heads[node][order] = idx;
    }

    /// Unlinks the free block headed at index `idx` from its list, wherever it is in it.
    pub(crate) fn list_remove(&mut self, node: usize, order: usize, idx: u32) {
        let (prev, next) = {
            let head = &mut self.meta[idx as usize];
            let links = (head.prev, head.next);
            head.prev = NIL;
            head.next = NIL;
            links
        };
        if prev == NIL {
            self.free_heads[node][order] = next;
        } else {
            self.meta[prev as usize].next = next;
        }
        if next != NIL {
            self.meta[next as usize].prev = prev;
        }
    }

    /// Takes the first block off a list, returning its head's index, or `None` if it is empty.
    pub(crate) fn list_pop(&mut self, node: usize, order: usize) -> Option<u32> {
        let idx = self.free_heads[node][order];
        if idx == NIL {
            return None;
        }
        self.list_remove(node, order, idx);
        Some(idx)
    }
}
