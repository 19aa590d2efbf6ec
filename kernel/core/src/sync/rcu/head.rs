//! `rcu_head`: the two words a structure embeds so that it can be handed to RCU without any
//! allocation, and the intrusive per-CPU list the grace-period machine keeps them on.
//!
//! Linux's `call_rcu(&obj->rcu, func)` links the `rcu_head` inside `obj` into a per-CPU list;
//! after a grace period `func(&obj->rcu)` runs and usually frees `obj` (finding it from the
//! head with `container_of`). Nothing is allocated, so it works when memory is exhausted, which
//! is when freeing matters most. [`RcuHead`] is that head; [`HeadList`] is the list, with the
//! snapshot bookkeeping of the `rcu` crate's [`Segments`]; [`RcuCallback`] is a queued head,
//! which the callback threads run with [`RcuCallback::run`].

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use rcu::cblist::{CbList, Segments};

/// What runs after the grace period: called with the head it was queued with.
///
/// # Safety
/// The function may assume the head is the one `call_rcu_head` was given, with the same
/// validity the caller promised there (typically: the head is inside a live object that the
/// function now owns and frees).
pub type RcuFunc = unsafe fn(NonNull<RcuHead>);

/// Linux's `struct rcu_head`: a link and a function, embedded in the structure that a callback
/// will free. Queued with [`super::call_rcu_head`]; idle otherwise (its contents are then
/// meaningless).
#[repr(C)]
pub struct RcuHead {
    inner: UnsafeCell<Links>,
}

#[derive(Clone, Copy)]
struct Links {
    next: *mut RcuHead,
    func: Option<RcuFunc>,
}

// SAFETY: the head's words are written only by `call_rcu_head` (whose caller hands the head
// over) and by the list while the head is queued, under the list's lock; nobody else reads
// them. A shared reference to an idle head gives access to nothing.
unsafe impl Sync for RcuHead {}
// SAFETY: as above: the words are plain data, not tied to a CPU.
unsafe impl Send for RcuHead {}

impl RcuHead {
    /// An idle head.
    pub const fn new() -> Self {
        Self {
            inner: UnsafeCell::new(Links {
                next: ptr::null_mut(),
                func: None,
            }),
        }
    }
}

impl Default for RcuHead {
    fn default() -> Self {
        Self::new()
    }
}

/// A head queued for a grace period, with its function set: running it calls the function.
pub struct RcuCallback(NonNull<RcuHead>);

// SAFETY: a queued head belongs to the RCU machinery until it runs, on whichever CPU; the
// caller of `call_rcu_head` promised the function may run anywhere in process context.
unsafe impl Send for RcuCallback {}

impl RcuCallback {
    /// A callback for `head`, whose function is set to `func`.
    ///
    /// # Safety
    /// `head` is valid and handed over until the callback runs, and running `func(head)` after
    /// a grace period, in process context, is sound (the contract of
    /// [`super::call_rcu_head`]).
    pub(super) unsafe fn new(head: NonNull<RcuHead>, func: RcuFunc) -> Self {
        // SAFETY: the caller hands the head over: nobody else touches its words.
        unsafe {
            *(*head.as_ptr()).inner.get() = Links {
                next: ptr::null_mut(),
                func: Some(func),
            };
        }
        Self(head)
    }

    /// Runs the callback: `func(head)`.
    pub fn run(self) {
        // SAFETY: the function was set by `new` (a callback exists only after it), and
        // `new`'s caller promised that calling it with the head is sound now that the grace
        // period has passed (the machine runs callbacks only then).
        unsafe {
            let links = *(*self.0.as_ptr()).inner.get();
            let func = links.func.expect("a queued head has its function");
            func(self.0);
        }
    }
}

/// A CPU's callbacks, linked through their own heads, oldest first: queueing never allocates.
pub struct HeadList {
    first: *mut RcuHead,
    last: *mut RcuHead,
    segs: Segments,
}

// SAFETY: the list owns the queued heads (see `RcuCallback`), and is used under its lock.
unsafe impl Send for HeadList {}

impl Default for HeadList {
    fn default() -> Self {
        Self {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            segs: Segments::new(),
        }
    }
}

impl CbList for HeadList {
    type Cb = RcuCallback;

    fn push(&mut self, snap: u64, cb: RcuCallback) {
        let head = cb.0.as_ptr();
        // SAFETY: the callback owns its head (`RcuCallback::new`); the previous last head, if
        // any, is queued here, so its link is ours to write.
        unsafe {
            (*(*head).inner.get()).next = ptr::null_mut();
            if self.last.is_null() {
                self.first = head;
            } else {
                (*(*self.last).inner.get()).next = head;
            }
        }
        self.last = head;
        self.segs.push(snap);
    }

    fn pop_ready(&mut self, gp_seq: u64) -> Option<RcuCallback> {
        if !self.segs.front_ready(gp_seq) {
            return None;
        }
        let head = NonNull::new(self.first)?;
        // SAFETY: `head` is queued here: its link is valid and ours to read.
        self.first = unsafe { (*(*head.as_ptr()).inner.get()).next };
        if self.first.is_null() {
            self.last = ptr::null_mut();
        }
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
