//! Callback lists: where each CPU's callbacks wait for their grace periods.
//!
//! A list holds callbacks oldest first, and remembers for each the `gp_seq` value it waits for
//! (its *snapshot*). [`crate::Rcu`] queues and takes callbacks through the [`CbList`] trait, so
//! the list's storage is the kernel's choice:
//!
//! - [`VecList`] keeps boxed closures (or anything else) in a `VecDeque`: simple, and what the
//!   host tests use, but pushing may allocate;
//! - the kernel keeps Linux-style `rcu_head`s embedded in the objects being freed, linked
//!   through themselves, so that queueing a callback never allocates (it works when memory is
//!   exhausted). The links are raw pointers, so that list lives in the kernel's core; it keeps
//!   its snapshots in a [`Segments`], like every list here.
//!
//! # Segments (Linux's `rcu_segcblist`)
//!
//! Storing a snapshot with every callback would make each `rcu_head` three words instead of
//! two. Snapshots never decrease along a list, so runs of callbacks with the same snapshot can
//! share it: a list is a few *segments*, each a snapshot and a count. At most three distinct
//! snapshots are ever pending at once on a list (callbacks already ready, those waiting for the
//! GP in progress, those waiting for the next one), but a list whose callbacks are taken late
//! can hold more. When all [`SEGMENTS`] are in use, a new callback joins the last segment and
//! that segment's snapshot is raised to the new callback's: its callbacks then wait for a later
//! GP than they need, which is always safe (a callback may run late, never early).

use alloc::collections::VecDeque;

use crate::seq::rcu_seq_done;

/// A CPU's list of callbacks, oldest first, each waiting for a snapshot of `gp_seq`.
///
/// Implementations keep callbacks in FIFO order and their snapshots non-decreasing (see
/// [`Segments`], which does the bookkeeping).
pub trait CbList: Send {
    /// A callback as the list stores it.
    type Cb;

    /// Appends `cb`, to run once `gp_seq` has reached `snap` (or any later snapshot the list
    /// records instead). The snapshots pushed never decrease.
    fn push(&mut self, snap: u64, cb: Self::Cb);

    /// Removes and returns the oldest callback if its grace period is over when the counter
    /// reads `gp_seq`.
    fn pop_ready(&mut self, gp_seq: u64) -> Option<Self::Cb>;

    /// How many callbacks at the head of the list are ready when the counter reads `gp_seq`.
    fn ready_len(&self, gp_seq: u64) -> usize;

    /// How many callbacks the list holds, ready or not.
    fn len(&self) -> usize;

    /// Whether the list holds no callback.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The most segments a list keeps (Linux's `RCU_CBLIST_NSEGS` is 4 too).
pub const SEGMENTS: usize = 4;

/// The snapshots of a callback list: runs of consecutive callbacks sharing one snapshot,
/// oldest first. It counts callbacks; the list that uses it stores them, in the same order.
#[derive(Debug, Clone, Default)]
pub struct Segments {
    /// `(snapshot, callbacks)` of each segment in use, oldest first; counts are never 0.
    segs: [(u64, usize); SEGMENTS],
    /// Segments in use.
    used: usize,
}

impl Segments {
    /// No segment, no callback.
    pub const fn new() -> Self {
        Self {
            segs: [(0, 0); SEGMENTS],
            used: 0,
        }
    }

    /// Counts one more callback at the tail, waiting for `snap` (see the module docs for what
    /// happens when every segment is in use).
    pub fn push(&mut self, snap: u64) {
        match self.used {
            0 => {
                self.segs[0] = (snap, 1);
                self.used = 1;
            }
            n => {
                let last = &mut self.segs[n - 1];
                if last.0 == snap || n == SEGMENTS {
                    // Same snapshot, or no segment left: join the last one, waiting for the
                    // later of the two snapshots.
                    last.0 = last.0.max(snap);
                    last.1 += 1;
                } else {
                    debug_assert!(last.0 < snap, "snapshots pushed never decrease");
                    self.segs[n] = (snap, 1);
                    self.used = n + 1;
                }
            }
        }
    }

    /// The snapshot the oldest callback waits for.
    pub fn front(&self) -> Option<u64> {
        (self.used > 0).then(|| self.segs[0].0)
    }

    /// Whether the oldest callback is ready when the counter reads `gp_seq`.
    pub fn front_ready(&self, gp_seq: u64) -> bool {
        self.front().is_some_and(|snap| rcu_seq_done(gp_seq, snap))
    }

    /// Counts the oldest callback out (after the list removed it).
    ///
    /// # Panics
    /// If no callback is counted.
    pub fn pop(&mut self) {
        assert!(self.used > 0, "rcu: pop from an empty callback list");
        self.segs[0].1 -= 1;
        if self.segs[0].1 == 0 {
            self.segs.copy_within(1..self.used, 0);
            self.used -= 1;
        }
    }

    /// How many callbacks at the head are ready when the counter reads `gp_seq`.
    pub fn ready_len(&self, gp_seq: u64) -> usize {
        self.segs[..self.used]
            .iter()
            .take_while(|&&(snap, _)| rcu_seq_done(gp_seq, snap))
            .map(|&(_, n)| n)
            .sum()
    }

    /// How many callbacks are counted.
    pub fn len(&self) -> usize {
        self.segs[..self.used].iter().map(|&(_, n)| n).sum()
    }

    /// Whether no callback is counted.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
}

/// A callback list over a `VecDeque`: any callback type, pushing may allocate. The host tests
/// use it with boxed closures ([`crate::Callback`]).
pub struct VecList<C> {
    cbs: VecDeque<C>,
    segs: Segments,
}

impl<C> VecList<C> {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            cbs: VecDeque::new(),
            segs: Segments::new(),
        }
    }
}

impl<C> Default for VecList<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Send> CbList for VecList<C> {
    type Cb = C;

    fn push(&mut self, snap: u64, cb: C) {
        self.segs.push(snap);
        self.cbs.push_back(cb);
    }

    fn pop_ready(&mut self, gp_seq: u64) -> Option<C> {
        if !self.segs.front_ready(gp_seq) {
            return None;
        }
        self.segs.pop();
        self.cbs.pop_front()
    }

    fn ready_len(&self, gp_seq: u64) -> usize {
        self.segs.ready_len(gp_seq)
    }

    fn len(&self) -> usize {
        self.cbs.len()
    }
}

#[cfg(test)]
mod tests;
