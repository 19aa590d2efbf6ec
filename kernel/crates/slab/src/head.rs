//! `struct callback_head`: the two words a structure embeds so that it can be handed to RCU or
//! to a work queue without any allocation, and the intrusive queue that links such heads.
//!
//! Linux's `call_rcu(&obj->rcu, func)` links the `rcu_head` inside `obj` into a per-CPU list;
//! after a grace period `func(&obj->rcu)` runs and usually frees `obj`, finding it from the head
//! with `container_of`. Nothing is allocated, so it works when memory is exhausted, which is
//! when freeing matters most. Linux's `rcu_head` is a `callback_head` (`task_work` queues the
//! same type): a link and a function. So is [`CallbackHead`], with [`RcuHead`] the alias:
//!
//! * the slab allocator embeds one in every sheaf (an `rcu_free` sheaf is handed to RCU on its
//!   own head) and two in every cache (`async_destroy_work`, the work item of the asynchronous
//!   destroy, and `rcu_head`, which releases a `SLAB_TYPESAFE_BY_RCU` cache a grace period
//!   after its shutdown); the [`Platform`](crate::Platform) queues them with
//!   [`call_rcu_head`](crate::Platform::call_rcu_head) and
//!   [`queue_work_head`](crate::Platform::queue_work_head);
//! * the kernel core re-exports the type as `kcore::sync::rcu::RcuHead`: its grace-period lists
//!   and the slab allocator's list of pending work are [`HeadQueue`]s.
//!
//! A head is *idle* (its words mean nothing) until a queueing call sets its function with
//! [`CallbackHead::set_func`] and links it; it belongs to whoever queued it until it is
//! popped and [`run`](CallbackHead::run). The owner of the structure is found again with
//! [`container_of`], the one place that turns a head back into its container.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

/// What runs when a queued head's time has come: called with the head it was queued with.
///
/// # Safety
/// The function may assume the head is the one given to the queueing call, with the validity
/// that call's caller promised (typically: the head is inside a live structure that the
/// function now owns, and frees or hands on).
pub type CallbackFunc = unsafe fn(NonNull<CallbackHead>);

/// The function of an [`RcuHead`] (Linux's `rcu_callback_t`).
pub type RcuFunc = CallbackFunc;

/// Linux's `struct callback_head`: a link and a function, embedded in the structure a callback
/// will free or finish. Idle until queued (its contents are then meaningless).
#[repr(C)]
pub struct CallbackHead {
    /// The next head on the queue this one is on.
    next: UnsafeCell<*mut CallbackHead>,
    /// What runs with the head, set by [`CallbackHead::set_func`].
    func: UnsafeCell<Option<CallbackFunc>>,
}

/// Linux's `struct rcu_head`, which is a `callback_head`.
pub type RcuHead = CallbackHead;

const _: () = assert!(core::mem::size_of::<CallbackHead>() == 2 * core::mem::size_of::<usize>());

// SAFETY: the head's words are written only by the queueing calls (whose callers hand the head
// over) and by the queue it is on, under that queue's lock; nobody else reads them. A shared
// reference to an idle head gives access to nothing.
unsafe impl Sync for CallbackHead {}
// SAFETY: as above: the words are plain data, not tied to a CPU or thread.
unsafe impl Send for CallbackHead {}

impl CallbackHead {
    /// An idle head.
    pub const fn new() -> Self {
        Self {
            next: UnsafeCell::new(ptr::null_mut()),
            func: UnsafeCell::new(None),
        }
    }

    /// Sets the function the head runs and clears its link (`head->func = func`): the first
    /// step of every queueing call.
    ///
    /// # Safety
    /// `head` is valid and handed over by its owner: it is on no queue and nobody else reads
    /// or writes its words until it has run.
    pub unsafe fn set_func(head: NonNull<Self>, func: CallbackFunc) {
        let h = head.as_ptr();
        // SAFETY: the caller hands the head over: its words are ours to write.
        unsafe {
            *(*h).next.get() = ptr::null_mut();
            *(*h).func.get() = Some(func);
        }
    }

    /// Runs the head: `func(head)` with the function set by [`CallbackHead::set_func`].
    ///
    /// # Safety
    /// The head's function was set and the head is off every queue (popped); calling the
    /// function now is sound by the contract of the call that queued it (a grace period has
    /// passed, for RCU; process context, for work).
    pub unsafe fn run(head: NonNull<Self>) {
        // SAFETY: the head is ours (popped) and its function set (caller contract).
        let func = unsafe { *(*head.as_ptr()).func.get() };
        let func = func.expect("a queued head has its function");
        // SAFETY: the queueing call's contract, which the caller says holds now.
        unsafe { func(head) }
    }
}

impl Default for CallbackHead {
    fn default() -> Self {
        Self::new()
    }
}

/// The structure `T` that embeds `head` at byte offset `offset` (Linux's `container_of`):
/// how a callback finds the sheaf, cache or record its head is part of.
///
/// # Safety
/// `head` points at a head that is the field at byte `offset` (from `core::mem::offset_of!`)
/// of a live `T`, and the pointer carries the provenance of that whole `T` (it was made from a
/// pointer to the `T`, not from a reference to the head field alone).
pub unsafe fn container_of<T>(head: NonNull<CallbackHead>, offset: usize) -> NonNull<T> {
    // SAFETY: stepping back `offset` bytes from the field gives the start of the `T` it is
    // part of (caller contract), which is inside the same allocation and not null.
    unsafe { head.byte_sub(offset).cast::<T>() }
}

/// A first-in first-out queue of heads linked through their own `next` words: queueing never
/// allocates. Used under its owner's lock (the kernel's RCU lists and slab work list, the
/// host platform's queues).
pub struct HeadQueue {
    first: *mut CallbackHead,
    last: *mut CallbackHead,
    len: usize,
}

// SAFETY: the queue owns the heads linked on it (their queueing callers handed them over), and
// heads are not tied to a thread; the queue is used by one context at a time (under a lock).
unsafe impl Send for HeadQueue {}

impl HeadQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            len: 0,
        }
    }

    /// Appends `head`, whose function is set ([`CallbackHead::set_func`]).
    ///
    /// # Safety
    /// `head` is valid and handed over until it is popped: it is on no other queue (nor on this
    /// one), and nobody else touches its words meanwhile.
    pub unsafe fn push_back(&mut self, head: NonNull<CallbackHead>) {
        let h = head.as_ptr();
        // SAFETY: the head is handed over (caller contract); the previous last head, if any, is
        // queued here, so its link is ours to write.
        unsafe {
            *(*h).next.get() = ptr::null_mut();
            if self.last.is_null() {
                self.first = h;
            } else {
                *(*self.last).next.get() = h;
            }
        }
        self.last = h;
        self.len += 1;
    }

    /// Removes and returns the oldest head, which the caller then owns (to
    /// [`run`](CallbackHead::run) it).
    pub fn pop_front(&mut self) -> Option<NonNull<CallbackHead>> {
        let head = NonNull::new(self.first)?;
        // SAFETY: `head` is queued here: its link is valid and ours to read.
        self.first = unsafe { *(*head.as_ptr()).next.get() };
        if self.first.is_null() {
            self.last = ptr::null_mut();
        }
        self.len -= 1;
        Some(head)
    }

    /// Number of heads queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no head is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for HeadQueue {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
