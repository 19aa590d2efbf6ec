//! [`WorkStruct`]: the state a work item carries, embedded in the user's structure, and the
//! [`WorkItem`] handle trait.
//!
//! # The words of a `WorkStruct`
//!
//! - `data`, the only word touched without the workqueue lock (Linux's `work_struct::data`):
//!   bit 0 [`PENDING`], bit 1 [`CANCELING`], bits 32..64 the *queue sequence number*: how many
//!   times the item was successfully queued (it grows with PENDING in one compare-exchange,
//!   so a flusher can name "the queueing I must wait for").
//! - `info` (under the lock): where the pending instance sits (nowhere yet, the timer, a
//!   pool's worklist, a workqueue's inactive list, a pool's held list) with its pool,
//!   workqueue and flush color. Linux keeps the same facts in `data` (a `pool_workqueue`
//!   pointer and the color) and in the list the `entry` is on.
//! - `running` (under the lock): the sequence number and pool of the instance being executed,
//!   0 when none (Linux finds it in the pool's `busy_hash`).
//! - `deadline` (under the lock): the timer's expiry of a delayed queueing.

use core::fmt;

use crate::sync::{AtomicU64, Ordering};

/// Bit 0 of the data word: the item is queued (or on its timer, or being queued) and has not
/// started running yet (Linux's `WORK_STRUCT_PENDING`).
pub const PENDING: u64 = 1 << 0;
/// Bit 1 of the data word: a `cancel_work*` owns the item; queueing it is refused until the
/// cancel ends (Linux marks this with `WORK_OFFQ_CANCELING`).
pub const CANCELING: u64 = 1 << 1;
const SEQ_SHIFT: u32 = 32;
const SEQ_ONE: u64 = 1 << SEQ_SHIFT;

/// Where the pending instance of an item is (the `info` word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Not on any list: idle, running, or PENDING but still in transit to its list.
    None = 0,
    /// Waiting for its delayed-work timer.
    Timer = 1,
    /// On its pool's worklist (active).
    Worklist = 2,
    /// On its pool workqueue's inactive list (beyond `max_active`).
    Inactive = 3,
    /// On its pool's held list: dequeued while the previous instance was still running, it
    /// runs as soon as that one finishes (Linux's "collision", `move_linked_works`).
    Held = 4,
}

/// The decoded `info` word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Info {
    pub loc: Loc,
    pub color: u8,
    pub pool: u16,
    pub wq: u16,
}

impl Info {
    fn encode(self) -> u64 {
        self.loc as u64
            | (u64::from(self.color) << 8)
            | (u64::from(self.pool) << 16)
            | (u64::from(self.wq) << 32)
    }

    fn decode(v: u64) -> Self {
        let loc = match v & 0xff {
            0 => Loc::None,
            1 => Loc::Timer,
            2 => Loc::Worklist,
            3 => Loc::Inactive,
            _ => Loc::Held,
        };
        Self {
            loc,
            color: (v >> 8) as u8,
            pool: (v >> 16) as u16,
            wq: (v >> 32) as u16,
        }
    }
}

/// The workqueue state of one work item, embedded in the user's structure (Linux's
/// `struct work_struct` without the function pointer and list links: the function belongs to
/// the kernel's handle type, the links to its [`WorkList`](crate::WorkList)).
///
/// Any `WorkStruct` can also be queued with a delay: it carries the timer's deadline (Linux's
/// `struct delayed_work` adds a `timer_list`; here the kernel owns the timer and the crate
/// keeps the deadline, see [`Workqueues::queue_delayed_work_on`](crate::Workqueues::queue_delayed_work_on)).
pub struct WorkStruct {
    data: AtomicU64,
    info: AtomicU64,
    running: AtomicU64,
    deadline: AtomicU64,
}

impl WorkStruct {
    /// An idle item (never queued). `const`, so an item can live in a `static`.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            data: AtomicU64::new(0),
            info: AtomicU64::new(0),
            running: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
        }
    }

    /// An idle item (never queued).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            data: AtomicU64::new(0),
            info: AtomicU64::new(0),
            running: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
        }
    }

    /// Is the item pending (queued, on its timer, or being queued), not yet started?
    /// (Linux's `work_pending`.)
    pub fn is_pending(&self) -> bool {
        self.data.load(Ordering::Acquire) & PENDING != 0
    }

    /// Is a `cancel_work*` in progress on the item?
    pub fn is_canceling(&self) -> bool {
        self.data.load(Ordering::Acquire) & CANCELING != 0
    }

    /// How many times the item was successfully queued (a queueing that found it pending does
    /// not count). Instances run in this order, so "instance `n` finished" means every
    /// queueing up to the `n`-th is done.
    pub fn seq(&self) -> u32 {
        (self.data.load(Ordering::Acquire) >> SEQ_SHIFT) as u32
    }

    /// Test-and-set of PENDING (the first step of `queue_work`): `true` if this call set it
    /// (and so owns the new instance, numbered by the incremented [`seq`](Self::seq)),
    /// `false` if the item was already pending or is being canceled.
    pub(crate) fn try_set_pending(&self) -> bool {
        let mut cur = self.data.load(Ordering::Relaxed);
        loop {
            if cur & (PENDING | CANCELING) != 0 {
                return false;
            }
            let new = (cur | PENDING).wrapping_add(SEQ_ONE);
            match self
                .data
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Clears PENDING (the instance starts running, was canceled or was refused).
    pub(crate) fn clear_pending(&self) {
        self.data.fetch_and(!PENDING, Ordering::AcqRel);
    }

    /// Sets CANCELING: `true` if this call set it (it is now the one canceler).
    pub(crate) fn try_set_canceling(&self) -> bool {
        self.data.fetch_or(CANCELING, Ordering::AcqRel) & CANCELING == 0
    }

    /// Clears CANCELING: queueing is allowed again.
    pub(crate) fn clear_canceling(&self) {
        self.data.fetch_and(!CANCELING, Ordering::AcqRel);
    }

    /// The raw data word (PENDING, CANCELING, sequence number).
    pub(crate) fn data(&self) -> (bool, u32) {
        let d = self.data.load(Ordering::Acquire);
        (d & PENDING != 0, (d >> SEQ_SHIFT) as u32)
    }

    pub(crate) fn info(&self) -> Info {
        Info::decode(self.info.load(Ordering::Relaxed))
    }

    pub(crate) fn set_info(&self, info: Info) {
        self.info.store(info.encode(), Ordering::Relaxed);
    }

    pub(crate) fn set_loc(&self, loc: Loc) {
        let info = Info { loc, ..self.info() };
        self.set_info(info);
    }

    /// The instance being executed: `(seq, pool)`.
    pub(crate) fn running(&self) -> Option<(u32, u16)> {
        let r = self.running.load(Ordering::Relaxed);
        (r != 0).then(|| ((r >> 32) as u32, (r & 0xffff) as u16 - 1))
    }

    /// Marks the pending instance as running on `pool` and clears PENDING (under the lock,
    /// so a canceler never sees it pending and off every list); returns its sequence number.
    pub(crate) fn start_running(&self, pool: u16) -> u32 {
        let (_, seq) = self.data();
        self.running.store(
            (u64::from(seq) << 32) | (u64::from(pool) + 1),
            Ordering::Relaxed,
        );
        self.set_loc(Loc::None);
        self.clear_pending();
        seq
    }

    pub(crate) fn stop_running(&self) {
        self.running.store(0, Ordering::Relaxed);
    }

    pub(crate) fn deadline(&self) -> u64 {
        self.deadline.load(Ordering::Relaxed)
    }

    pub(crate) fn set_deadline(&self, at: u64) {
        self.deadline.store(at, Ordering::Relaxed);
    }
}

impl Default for WorkStruct {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for WorkStruct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pending, seq) = self.data();
        f.debug_struct("WorkStruct")
            .field("pending", &pending)
            .field("canceling", &self.is_canceling())
            .field("seq", &seq)
            .finish()
    }
}

/// A handle to a work item: what the worklists hold and the workers are given to run.
///
/// The kernel implements it for its own handle type, typically `&'static T` or `Arc<T>` of a
/// structure that embeds a [`WorkStruct`] and knows the function to run (Linux's
/// `work_struct::func`). Cloning must not allocate (a reference, an `Arc`). Two handles name the
/// same item when their [`work`](Self::work) is the same `WorkStruct` (same address).
pub trait WorkItem: Clone {
    /// The embedded workqueue state.
    fn work(&self) -> &WorkStruct;

    /// Writes a short description for the `workqueues` dump (Linux prints the function name).
    /// Default: the address of the `WorkStruct`.
    fn describe(&self, f: &mut dyn fmt::Write) -> fmt::Result {
        write!(f, "{:p}", self.work())
    }
}

impl WorkItem for &'static WorkStruct {
    fn work(&self) -> &WorkStruct {
        self
    }
}

impl WorkItem for alloc::sync::Arc<WorkStruct> {
    fn work(&self) -> &WorkStruct {
        self
    }
}

/// Do two handles name the same item?
pub fn same_work<W: WorkItem>(a: &W, b: &W) -> bool {
    core::ptr::eq(a.work(), b.work())
}

#[cfg(test)]
mod tests;
