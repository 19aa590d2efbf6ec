//! `rcu_head`: the two words a structure embeds so that it can be handed to RCU without any
//! allocation, and the intrusive per-CPU list the grace-period machine keeps them on.
//!
//! Linux's `call_rcu(&obj->rcu, func)` links the `rcu_head` inside `obj` into a per-CPU list;
//! after a grace period `func(&obj->rcu)` runs and usually frees `obj` (finding it from the
//! head with `container_of`). Nothing is allocated, so it works when memory is exhausted, which
//! is when freeing matters most. [`RcuHead`] is that head: the slab crate's
//! [`slab::CallbackHead`] (Linux's `rcu_head` is a `callback_head` too), defined there so that
//! the slab allocator embeds the same type in its sheaves and caches and hands them to RCU
//! through its platform. [`HeadList`] is the list, a [`HeadQueue`] with the snapshot
//! bookkeeping of the `rcu` crate's [`Segments`]; [`RcuCallback`] is a queued head, which the
//! callback threads run with [`RcuCallback::run`].

use core::ptr::NonNull;

use rcu::cblist::{CbList, Segments};
use slab::HeadQueue;
pub use slab::{RcuFunc, RcuHead};

/// A head queued for a grace period, with its function set: running it calls the function.
pub struct RcuCallback(NonNull<RcuHead>);

// SAFETY: a queued head belongs to the RCU machinery until it runs, on whichever CPU; the
// caller of `call_rcu_head` promised the function may run anywhere in process context.
unsafe impl Send for RcuCallback {}

impl RcuCallback {
    /// A callback for `head`, whose function is set to `func`.
    ///
    /// # Safety
    /// `head` is valid and handed over until the callback runs (in particular it is not
    /// queued already), and running `func(head)` after a grace period, in process context, is
    /// sound (the contract of [`super::call_rcu_head`]).
    pub(crate) unsafe fn new(head: NonNull<RcuHead>, func: RcuFunc) -> Self {
        // SAFETY: the caller hands the head over: its words are ours to write.
        unsafe { RcuHead::set_func(head, func) };
        Self(head)
    }

    /// Runs the callback: `func(head)`.
    pub(crate) fn run(self) {
        // SAFETY: the function was set by `new` (a callback exists only after it), the head is
        // off every list (a callback is made by `new` or popped), and `new`'s caller promised
        // that calling it with the head is sound now that the grace period has passed (the
        // machine runs callbacks only then).
        unsafe { RcuHead::run(self.0) }
    }
}

/// A CPU's callbacks, linked through their own heads, oldest first: queueing never allocates.
#[derive(Default)]
pub struct HeadList {
    heads: HeadQueue,
    segs: Segments,
}

impl CbList for HeadList {
    type Cb = RcuCallback;

    fn push(&mut self, snap: u64, cb: RcuCallback) {
        // SAFETY: the callback owns its head (`RcuCallback::new`), which is on no list; the
        // list owns it until it is popped.
        unsafe { self.heads.push_back(cb.0) };
        self.segs.push(snap);
    }

    fn pop_ready(&mut self, gp_seq: u64) -> Option<RcuCallback> {
        if !self.segs.front_ready(gp_seq) {
            return None;
        }
        let head = self.heads.pop_front()?;
        self.segs.pop();
        Some(RcuCallback(head))
    }

    fn ready_len(&self, gp_seq: u64) -> usize {
        self.segs.ready_len(gp_seq)
    }

    fn len(&self) -> usize {
        self.segs.len()
    }
}
