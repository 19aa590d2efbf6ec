//! The FIFO lists of pending items: the [`WorkList`] trait and [`VecList`], its host version.
//!
//! # Why a trait
//!
//! Linux's `queue_work` never allocates: the list node (`work_struct::entry`) is inside the
//! item, and queueing links it into the pool's `worklist`. This crate forbids `unsafe`, and a
//! linked list whose nodes live in the users' structures needs raw pointers, so the crate
//! does not implement the links itself: every list it keeps (a pool's worklist and held
//! list, a pool workqueue's inactive list) is a type parameter `L: WorkList<W>`.
//!
//! - The kernel implements `WorkList` in its core (the crate with `unsafe`) as an intrusive
//!   doubly-linked list over a link field of its item type: push, pop and remove are then
//!   O(1) and never allocate. That is sound for one reason the crate guarantees: **an item is
//!   on at most one list at a time** (it has at most one pending instance, and the pending
//!   instance is on exactly one list, or on its timer, or in transit), so one link field per
//!   item is enough.
//! - The host tests (and a kernel that accepts allocation in `queue_work`) use [`VecList`], a
//!   `VecDeque` of handles: it allocates only when it grows, so [`VecList::with_capacity`]
//!   keeps queueing allocation-free up to a known number of items.

use alloc::collections::VecDeque;

use crate::work::{WorkItem, WorkStruct};

/// A FIFO list of work items (a pool's worklist and the like).
///
/// Why a trait: Linux's `queue_work` never allocates, because the list node
/// (`work_struct::entry`) is inside the item. A list whose nodes live in the users'
/// structures needs raw pointers, and this crate forbids `unsafe`; so every list it keeps is
/// a type parameter. The kernel implements it in its core as an intrusive doubly-linked list
/// over a link field of its item type (O(1), never allocates); that is sound because **an
/// item is on at most one list at a time** (one pending instance, on one list, or on its
/// timer, or in transit), so one link field per item is enough. The host uses [`VecList`].
///
/// Implementations identify items by their [`WorkStruct`] address; an item is on at most one
/// list at a time, and [`push_back`](Self::push_back)/[`push_front`](Self::push_front) are
/// never called for an item that is already on a list.
pub trait WorkList<W: WorkItem>: Default {
    /// Appends `w` (the common case: FIFO order).
    fn push_back(&mut self, w: W);
    /// Puts `w` first (an item whose previous instance just finished runs next).
    fn push_front(&mut self, w: W);
    /// Removes and returns the first item.
    fn pop_front(&mut self) -> Option<W>;
    /// Removes the item whose `WorkStruct` is `work` and returns it, if it is on this list.
    fn remove(&mut self, work: &WorkStruct) -> Option<W>;
    /// Removes and returns the first item for which `pred` is true.
    fn take_first(&mut self, pred: &mut dyn FnMut(&W) -> bool) -> Option<W>;
    /// Calls `f` on every item, first to last.
    fn for_each(&self, f: &mut dyn FnMut(&W));
    /// The number of items.
    fn len(&self) -> usize;
    /// No items?
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A [`WorkList`] backed by a `VecDeque` of handles (allocates when it grows).
#[derive(Debug)]
pub struct VecList<W>(VecDeque<W>);

impl<W> VecList<W> {
    /// A list that holds `n` items before it allocates again.
    pub fn with_capacity(n: usize) -> Self {
        Self(VecDeque::with_capacity(n))
    }
}

impl<W> Default for VecList<W> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

impl<W: WorkItem> WorkList<W> for VecList<W> {
    fn push_back(&mut self, w: W) {
        self.0.push_back(w);
    }
    fn push_front(&mut self, w: W) {
        self.0.push_front(w);
    }
    fn pop_front(&mut self) -> Option<W> {
        self.0.pop_front()
    }
    fn remove(&mut self, work: &WorkStruct) -> Option<W> {
        let i = self.0.iter().position(|x| core::ptr::eq(x.work(), work))?;
        self.0.remove(i)
    }
    fn take_first(&mut self, pred: &mut dyn FnMut(&W) -> bool) -> Option<W> {
        let i = self.0.iter().position(pred)?;
        self.0.remove(i)
    }
    fn for_each(&self, f: &mut dyn FnMut(&W)) {
        self.0.iter().for_each(f);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}
