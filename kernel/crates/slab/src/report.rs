//! What the debug checks report: the kinds of object problems, the report itself, the per-cache
//! log of recent reports and the caller-tracking record (Linux's `slab_err` / `object_err`
//! output and `struct track`).
//!
//! Plain data, below the [`Platform`](crate::Platform) (whose `slab_error` receives reports) and
//! the caches (which produce them in [`crate::cache::debug`]).

use core::fmt;

/// Number of reports each cache remembers.
pub const REPORT_LOG_LEN: usize = 16;

/// What was wrong with an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlabErrorKind {
    /// The object was already free.
    DoubleFree,
    /// The pointer is an object of another cache (named).
    WrongCache {
        /// Name of the cache the object really belongs to.
        owner: crate::CacheName,
    },
    /// The pointer is inside a slab of this cache but not at the start of an object.
    NotObjectBoundary,
    /// The pointer is not in a slab page at all.
    NotSlabPage,
    /// A red zone byte was changed; `offset` is relative to the object (negative: left zone).
    RedzoneOverwritten {
        /// Offset of the first bad byte from the object start.
        offset: isize,
    },
    /// A byte between the size asked of `kmalloc` and the end of its size class was changed
    /// (Linux's "kmalloc Redzone overwritten"): the caller wrote past what it asked for, though
    /// still inside the object.
    KmallocRedzoneOverwritten {
        /// Offset of the first bad byte from the object start.
        offset: usize,
        /// The size the caller asked for.
        orig_size: usize,
    },
    /// A poisoned (free) object was written to: use after free.
    PoisonOverwritten {
        /// Offset of the first bad byte.
        offset: usize,
    },
    /// A free pointer pointed outside its slab (or, as `validate` finds, back into its own
    /// free list: a cycle): the free list was corrupted. `object` is the free object holding the bad pointer (the slab's
    /// first byte when the descriptor's head is bad).
    FreelistCorrupted,
    /// The unused bytes at the end of a slab were written to (found when the slab is freed);
    /// `object` is the first bad byte, `offset` its distance from the slab's start.
    PaddingOverwritten {
        /// Offset of the first bad byte from the start of the slab.
        offset: usize,
    },
    /// The object was still allocated when its cache was destroyed ("Objects remaining in
    /// `<cache>` on `__kmem_cache_shutdown()`").
    ObjectRemaining,
    /// A slab's free list, well formed, does not hold as many objects as its counter says are
    /// free (Linux's "Wrong object count"; found by `validate`); `object` is the slab's first
    /// byte.
    WrongObjectCount {
        /// Objects in use according to the slab's counter (`inuse`).
        inuse: usize,
        /// Objects found on its free list.
        free_listed: usize,
    },
    /// The object is too small to hold the free queue's node
    /// ([`FREE_Q_NODE_SIZE`](crate::base::FREE_Q_NODE_SIZE) bytes); refused by
    /// `kmem_free_q_add`, untouched.
    TooSmallForFreeQ {
        /// Its usable size.
        size: usize,
    },
    /// The object's cache has a constructor: it keeps its free objects constructed, which the
    /// free queue's node would break; refused by `kmem_free_q_add`, untouched.
    FreeQConstructed,
    /// `kfree_rcu` without an `rcu_head` (`KmemCache::free_rcu`) found no `rcu_free` sheaf to
    /// take the object and no memory for a callback record of its own: the object is leaked,
    /// never reused, so RCU readers stay safe (`kfree_rcu` with a head never needs memory).
    KfreeRcuNoMemory,
    /// A free queue's list did not hold the objects queued (an object was written to after
    /// `kmem_free_q_add`): `kmem_free_up_q` freed `reached` of `queued`; `object` is the
    /// first queued object.
    FreeQCorrupted {
        /// Objects queued.
        queued: usize,
        /// Objects reached by the walk.
        reached: usize,
    },
}

/// A structured report of an object problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlabReport {
    /// Name of the cache that detected the problem (a shared copy: it outlives the cache).
    pub cache: crate::CacheName,
    /// Address of the object (or of the bad pointer).
    pub object: usize,
    /// What was wrong.
    pub kind: SlabErrorKind,
    /// The object's last allocation and last free, when its cache tracks callers
    /// (`SLAB_STORE_USER`) and `object` is an object of it (Linux's `print_tracking`).
    pub tracks: Option<[Track; 2]>,
}

impl fmt::Display for SlabReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: object {:#x}: ", self.cache, self.object)?;
        match &self.kind {
            SlabErrorKind::DoubleFree => write!(f, "double free"),
            SlabErrorKind::WrongCache { owner } => write!(f, "object belongs to cache {owner}"),
            SlabErrorKind::NotObjectBoundary => write!(f, "not at an object boundary"),
            SlabErrorKind::NotSlabPage => write!(f, "not a slab page"),
            SlabErrorKind::RedzoneOverwritten { offset } => {
                write!(f, "red zone overwritten at offset {offset}")
            }
            SlabErrorKind::KmallocRedzoneOverwritten { offset, orig_size } => write!(
                f,
                "kmalloc red zone overwritten at offset {offset} ({orig_size} bytes requested)"
            ),
            SlabErrorKind::PoisonOverwritten { offset } => {
                write!(f, "poison overwritten at offset {offset} (use after free)")
            }
            SlabErrorKind::FreelistCorrupted => write!(f, "free pointer corrupted"),
            SlabErrorKind::PaddingOverwritten { offset } => {
                write!(f, "slab padding overwritten at offset {offset}")
            }
            SlabErrorKind::ObjectRemaining => {
                write!(f, "object remaining on __kmem_cache_shutdown()")
            }
            SlabErrorKind::WrongObjectCount { inuse, free_listed } => write!(
                f,
                "wrong object count: {inuse} in use, {free_listed} on the free list"
            ),
            SlabErrorKind::TooSmallForFreeQ { size } => write!(
                f,
                "too small for the free queue ({size} bytes, a node needs {})",
                crate::base::FREE_Q_NODE_SIZE
            ),
            SlabErrorKind::KfreeRcuNoMemory => write!(
                f,
                "kfree_rcu: no sheaf and no memory to wait for a grace period: object leaked"
            ),
            SlabErrorKind::FreeQConstructed => {
                write!(
                    f,
                    "object of a cache with a constructor: not for the free queue"
                )
            }
            SlabErrorKind::FreeQCorrupted { queued, reached } => write!(
                f,
                "free queue corrupted: {reached} of {queued} queued objects reached"
            ),
        }
    }
}

/// What [`KmemCache::validate`](crate::KmemCache::validate) found (Linux's
/// `validate_slab_cache`, the `/sys/kernel/slab/NAME/validate` file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidateReport {
    /// Slabs checked: those on the partial and full lists of every node.
    pub slabs: usize,
    /// Objects in those slabs.
    pub objects: usize,
    /// Problems found.
    pub errors: usize,
    /// The first problems found (at most [`REPORT_LOG_LEN`]; `errors` counts them all). Each
    /// was also logged in the cache and sent to the platform, like every report.
    pub reports: alloc::vec::Vec<SlabReport>,
}

impl ValidateReport {
    /// Records `r`, keeping it if there is room left in `reports` (never allocates: the
    /// caller holds a node lock).
    pub(crate) fn push(&mut self, r: SlabReport) {
        self.errors += 1;
        if self.reports.len() < self.reports.capacity() {
            self.reports.push(r);
        }
    }
}

/// Ring of the last reports of a cache. It keeps a report without its tracking records
/// (`tracks`), which the platform printed when the report was made: with them, every cache
/// (its structure is in `.data` for a static cache) would grow by 1 KiB for the log alone.
pub(crate) struct ReportLog {
    recent: [Option<LoggedReport>; REPORT_LOG_LEN],
    total: usize,
}

/// A [`SlabReport`] as the log keeps it.
#[derive(Clone)]
struct LoggedReport {
    cache: crate::CacheName,
    object: usize,
    kind: SlabErrorKind,
}

impl ReportLog {
    pub(crate) const fn new() -> Self {
        Self {
            recent: [const { None }; REPORT_LOG_LEN],
            total: 0,
        }
    }

    /// Remembers `r` (without its tracks), forgetting the oldest report once
    /// [`REPORT_LOG_LEN`] are kept.
    pub(crate) fn push(&mut self, r: SlabReport) {
        self.recent[self.total % REPORT_LOG_LEN] = Some(LoggedReport {
            cache: r.cache,
            object: r.object,
            kind: r.kind,
        });
        self.total += 1;
    }

    /// The reports kept, oldest first (their `tracks` are `None`), and the total number ever
    /// pushed.
    pub(crate) fn recent(&self) -> (alloc::vec::Vec<SlabReport>, usize) {
        let n = self.total.min(REPORT_LOG_LEN);
        let v = (self.total - n..self.total)
            .filter_map(|i| self.recent[i % REPORT_LOG_LEN].clone())
            .map(|r| SlabReport {
                cache: r.cache,
                object: r.object,
                kind: r.kind,
                tracks: None,
            })
            .collect();
        (v, self.total)
    }
}

/// A caller-tracking record (Linux's `struct track`), two per object of a `SLAB_STORE_USER`
/// cache: its last allocation and its last free.
///
/// The allocator fills `cpu` and passes the caller it was given as `addr` (0 when none: the
/// allocator interface of `Box` and `Vec` carries no caller); the platform fills in the rest
/// ([`Platform::fill_track`](crate::Platform::fill_track)): the kernel finds the first frame
/// outside the allocator, stores the stack in its stack depot and stamps the thread and the
/// time.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Track {
    /// The call site (`_RET_IP_` in Linux): an address in the function that allocated or
    /// freed. 0 if none was found.
    pub addr: usize,
    /// The platform's handle of the call stack from `addr` outwards (its stack depot); 0 for
    /// none.
    pub handle: u32,
    /// CPU that did it.
    pub cpu: u32,
    /// Thread that did it (Linux's `pid`).
    pub pid: u32,
    /// When, in the platform's ticks ([`Platform::jiffies`](crate::Platform::jiffies)): a
    /// report shows `age=` now minus this.
    pub when: u64,
}

// The layout reserves `TRACK_SIZE` bytes per record.
const _: () = assert!(core::mem::size_of::<Track>() == crate::layout::TRACK_SIZE);
