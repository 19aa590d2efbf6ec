//! The deferred free queue (the 2019 Linux RFC `kmem_free_q`, modelled on `wake_q`): collect
//! objects to free while a lock is held, free them after it is dropped.
//!
//! Freeing is usually the last step of tearing a structure down, and is often done under the
//! lock that protected it, though the free itself needs no lock. With debug checks on
//! (`slub_debug`: red zones, poison, free-list walks) a free costs thousands of cycles, and a
//! lock held across many of them is held that much longer. The queue makes the deferral free
//! of allocation: each queued object is a list node itself, through its own first two words.
//!
//! ```text
//!  KmemFreeQHead { first ─┐, last ──────────────────────┐, len: 3 }
//!                         ▼                              ▼
//!            object A [next ─┼─ tag ]──▶ object B [next ─┼─ tag ]──▶ object C [null │ tag ] ...
//! ```
//!
//! * [`SlabAllocator::kmem_free_q_add`] (under the lock) writes the node into the object: `next`
//!   and a tag that names its cache (or kmalloc). It refuses, with a report and without writing
//!   anything, an object whose usable size is below [`FREE_Q_NODE_SIZE`], an object of a cache
//!   with a constructor (the node would break the constructed state the cache keeps free
//!   objects in), and an object already queued.
//! * [`SlabAllocator::kmem_free_up_q`] (after the lock) frees every object in the order queued,
//!   through the normal [`KmemCache::free`] or [`SlabAllocator::kfree`], so a wrong cache or a
//!   double free is reported by their checks. It reads `next` before each free.
//!
//! ## The head
//! Linux's head keeps `lastp`, a pointer to the last `next` field (first of all to `first`
//! itself): a head that points into itself cannot move, which Rust values do. Sheaf's keeps
//! `first` and `last` (null when empty), and `len`: no self-reference, so a head can be built
//! on the stack, moved out of a lock with `core::mem::take` and freed up elsewhere (it is
//! `Send`). The lifetime `'a` ties it to the caches of its objects, which therefore outlive it.
//!
//! ## A double free through the queue
//! Queueing an object twice would rewrite its node: with the object last, `next` pointing at
//! itself (a cycle); anywhere else, the list cut short (the objects after it lost). So `add`
//! detects it, in O(1): the node's second word is a tag, the cache address mixed with a
//! constant ([`SlabAllocator::kmem_free_q_add`] compares the object's current second word with
//! the tags the object could carry while queued), and `free_up` clears the tag just before the
//! free, so that a queued-then-freed object, reallocated later, does not look queued. The
//! second `add` is refused with [`SlabErrorKind::DoubleFree`] and nothing written: the object
//! stays queued once and is freed once. The false positive (live data equal to a tag) needs
//! a 64-bit coincidence.
//!
//! The other double frees involving the queue are the free checks' business, as the RFC has
//! it: an object freed through the queue and then again (directly, or queued again), or freed
//! and then queued, is reported by [`KmemCache::free`] at the second free (debug caches
//! always; plain ones as far as their checks go, see `docs/slab.md`). Freeing a queued object
//! *before* `free_up` frees the node with it: that is a use after free of the queue itself,
//! which no intrusive list survives (Linux's neither), and is not detected.
//!
//! Against what the tag cannot see (a caller writing into an object after queueing it, the
//! same object queued under two different caches), `free_up` walks at most `len` nodes and
//! reports [`SlabErrorKind::FreeQCorrupted`] if the list ends early or goes on.
//!
//! ## What `add` does to the object
//! Its first [`FREE_Q_NODE_SIZE`] bytes are overwritten: the object is the queue's from `add`
//! on. In a cache that records the size asked of `kmalloc` (debug kmalloc caches), the object
//! counts as having asked for its whole size from then on, as after `ksize`, so that the node
//! does not trip the kmalloc red-zone check. A cache whose free pointer lies inside the object
//! overwrites those bytes anyway when it frees it.

use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use crate::cache::KmemCache;
use crate::kmalloc::ZERO_SIZE_PTR;
use crate::name::CacheName;
use crate::platform::Platform;
use crate::registry::SlabAllocator;
use crate::report::{SlabErrorKind, SlabReport};

// Bytes of a queue node (`sizeof(struct kmem_free_q_node)`), defined in `base` so that the
// error reports below this file can name it.
pub use crate::base::FREE_Q_NODE_SIZE;

/// Mixed into the cache address to make a node's tag (any constant unlikely in live data).
const TAG_MIX: usize = 0x6b6d_5f66_7265_6571;

/// Name of the queue's kmalloc functions in reports.
const ADD: &str = "kmem_free_q_add";
const FREE_UP: &str = "kmem_free_up_q";

/// A queue node, at the start of a queued object (`struct kmem_free_q_node`).
#[repr(C)]
struct Node {
    /// The next queued object, null for the last.
    next: *mut Node,
    /// [`tag`] of the object's cache (or of kmalloc).
    tag: usize,
}

/// A report by the queue function `api` about the object at `addr`.
fn report(api: impl Into<CacheName>, addr: usize, kind: SlabErrorKind) -> SlabReport {
    SlabReport {
        cache: api.into(),
        object: addr,
        kind,
        tracks: None,
    }
}

/// The tag of a node whose object goes back to `cache`, or through `kfree` for `None`.
fn tag<P: Platform>(cache: Option<&KmemCache<P>>) -> usize {
    cache.map_or(0, |c| ptr::from_ref(c) as usize) ^ TAG_MIX
}

/// A queue of objects to free later (`struct kmem_free_q_head`, `DEFINE_KMEM_FREE_Q`).
///
/// Empty when made ([`Self::new`] or `Default`). Dropping a head that still holds objects
/// leaks them: hand it to [`SlabAllocator::kmem_free_up_q`].
#[doc(alias = "kmem_free_q_head")]
#[doc(alias = "DEFINE_KMEM_FREE_Q")]
pub struct KmemFreeQHead<'a, P: Platform> {
    first: *mut Node,
    last: *mut Node,
    len: usize,
    _caches: PhantomData<&'a KmemCache<P>>,
}

// SAFETY: the nodes are objects given up to the queue (nobody else uses them), and the caches
// they name are shared (`KmemCache` is `Sync`); freeing an object on another CPU is allowed.
unsafe impl<P: Platform> Send for KmemFreeQHead<'_, P> {}

impl<P: Platform> KmemFreeQHead<'_, P> {
    /// An empty queue (`kmem_free_q_init`).
    #[doc(alias = "kmem_free_q_init")]
    pub const fn new() -> Self {
        Self {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            len: 0,
            _caches: PhantomData,
        }
    }

    /// Objects queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no object is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<P: Platform> Default for KmemFreeQHead<'_, P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for KmemFreeQHead<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KmemFreeQHead")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// What [`SlabAllocator::kmem_free_up_q`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeUpResult {
    /// Objects freed without a report.
    pub freed: usize,
    /// The problems found, in queue order: each refused free (the object is then left as the
    /// free path leaves it), and a corrupted list last.
    pub reports: Vec<SlabReport>,
}

impl<P: Platform> SlabAllocator<P> {
    /// Queues `obj` on `head`, to be freed by [`Self::kmem_free_up_q`] (`kmem_free_q_add`):
    /// `cache` is its cache, `None` for an object from `kmalloc`. Writes the node into the
    /// object's first [`FREE_Q_NODE_SIZE`] bytes; allocates nothing, takes no lock (the kmalloc
    /// case looks up the page owner of `obj`, as `kfree` does). [`ZERO_SIZE_PTR`] is accepted
    /// and ignored, as `kfree` ignores it.
    ///
    /// Refused, with nothing written and the object still the caller's:
    /// * an object whose usable size (the cache's object size, or what `ksize` would say) is
    ///   below [`FREE_Q_NODE_SIZE`]: [`SlabErrorKind::TooSmallForFreeQ`];
    /// * an object of a cache with a constructor: [`SlabErrorKind::FreeQConstructed`];
    /// * for `None`, a pointer that is not a kmalloc'ed object (`ksize`'s reports);
    /// * an object already queued (on any queue): [`SlabErrorKind::DoubleFree`], also logged
    ///   in the cache and sent to the platform like a free's report.
    ///
    /// # Safety
    /// As for [`KmemCache::free`] (or [`Self::kfree`] for `None`): `obj` is an allocated object
    /// of `cache` that the caller gives up, unless this returns an error. Its first
    /// [`FREE_Q_NODE_SIZE`] bytes belong to the queue until it is freed up.
    pub unsafe fn kmem_free_q_add<'a>(
        &'a self,
        head: &mut KmemFreeQHead<'a, P>,
        cache: Option<&'a KmemCache<P>>,
        obj: NonNull<u8>,
    ) -> Result<(), SlabReport> {
        let p = obj.as_ptr();
        let addr = p as usize;
        // The cache the object goes back to (none for a large kmalloc block: pages, enough for
        // any node), and the name for reports (taken only when there is something to report:
        // taking it touches its count).
        let name = || cache.map_or(CacheName::from_static(ADD), KmemCache::cache_name);
        let owner = match cache {
            Some(c) => Some(c),
            None if obj == ZERO_SIZE_PTR => return Ok(()),
            None => self
                .kmalloc_owner(obj)
                .map_err(|kind| report(ADD, addr, kind))?,
        };
        if let Some(c) = owner {
            // The usable size (what `ksize` says of a kmalloc'ed object).
            let size = c.object_size();
            if size < FREE_Q_NODE_SIZE {
                return Err(report(
                    name(),
                    addr,
                    SlabErrorKind::TooSmallForFreeQ { size },
                ));
            }
            if c.ctor.is_some() {
                return Err(report(name(), addr, SlabErrorKind::FreeQConstructed));
            }
        }
        // LAB(freeq) BEGIN
        // LAB-HINT: `owner` passed the checks: queue the object without freeing it. First refuse
        // LAB-HINT: an object already queued: its second word equals `tag(owner)` or
        // LAB-HINT: `tag::<P>(None)` (report `SlabErrorKind::DoubleFree` as a free would:
        // LAB-HINT: `c.report(addr, kind)` for a cache, `self.platform.slab_error(&r)` for
        // LAB-HINT: kmalloc, and return the report). A debug cache's object counts as asked for
        // LAB-HINT: in full from now on (`set_orig_size`). Then write a `Node { next: null, tag:
        // LAB-HINT: tag(cache) }` at the object's start and link it after `head.last` (or as
        // LAB-HINT: `head.first`), and count it in `head.len`. See the module docs' picture.
        // LAB-STUB: // Until then nothing is deferred: the object is freed at once, under the
        // LAB-STUB: // caller's lock (what the queue exists to avoid), and nothing is queued.
        // LAB-STUB: let _ = (head, name, tag::<P>, size_of::<Node>());
        // LAB-STUB: // SAFETY: the object is an allocated object of `cache` (or kmalloc's) that
        // LAB-STUB: // the caller gives up (the contract of this function).
        // LAB-STUB: unsafe {
        // LAB-STUB:     match cache {
        // LAB-STUB:         Some(c) => c.free(obj),
        // LAB-STUB:         None => self.kfree(p),
        // LAB-STUB:     }
        // LAB-STUB: }
        let node = p.cast::<Node>();
        // SAFETY: the object is allocated and the caller's (contract), at least
        // `FREE_Q_NODE_SIZE` bytes (checked) and word aligned (every object is).
        let queued = unsafe { (*node).tag };
        // Queued already, named this way or the other (its cache, or kmalloc)?
        if queued == tag(owner) || queued == tag::<P>(None) {
            let r = report(name(), addr, SlabErrorKind::DoubleFree);
            match owner {
                Some(c) => c.report(addr, SlabErrorKind::DoubleFree),
                None => self.platform.slab_error(&r),
            }
            return Err(r);
        }
        if let Some(c) = owner.filter(|c| c.debug) {
            // The node may cover bytes a debug kmalloc cache red-zones past the size asked
            // for: the whole object counts as asked for from now on (`ksize`'s rule).
            c.set_orig_size(p, c.object_size());
        }
        // SAFETY: as above; the last node, if any, is a queued object, the queue's.
        unsafe {
            node.write(Node {
                next: ptr::null_mut(),
                tag: tag(cache),
            });
            if head.last.is_null() {
                head.first = node;
            } else {
                (*head.last).next = node;
            }
        }
        head.last = node;
        head.len += 1;
        Ok(())
        // LAB(freeq) END
    }

    /// Frees every object queued on `head`, in the order queued, and leaves it empty
    /// (`kmem_free_up_q`). Call it after dropping the lock the objects were queued under.
    ///
    /// Each object goes through [`KmemCache::free`] or [`Self::kfree`], whose checks report a
    /// wrong cache or a double free (see [`FreeUpResult::reports`]); the walk reads each
    /// object's `next` before freeing it and stops after the `len` objects queued.
    pub fn kmem_free_up_q<'a>(&'a self, head: &mut KmemFreeQHead<'a, P>) -> FreeUpResult {
        let head = core::mem::take(head);
        // LAB(freeq) BEGIN
        // LAB-HINT: Walk from `head.first`, at most `head.len` nodes: read the node (its `next`
        // LAB-HINT: before the free, which may overwrite it), clear its tag (a freed object
        // LAB-HINT: must not look queued when it is reused), and free the object through the
        // LAB-HINT: cache its tag names (`tag ^ TAG_MIX`: a `KmemCache` address, or 0 for
        // LAB-HINT: `kfree`). Count each free in `freed` or push its report. A list that ends
        // LAB-HINT: before `len` nodes or goes on after them is `SlabErrorKind::FreeQCorrupted`
        // LAB-HINT: (report it with `self.platform.slab_error` and in `reports`).
        // LAB-STUB: // Until then nothing is freed: whatever was queued stays allocated (leaked).
        // LAB-STUB: let _ = (head.first, head.last, FREE_UP);
        // LAB-STUB: FreeUpResult::default()
        let mut result = FreeUpResult::default();
        let mut node = head.first;
        let mut reached = 0;
        while reached < head.len && !node.is_null() {
            // SAFETY: `node` is a queued object: given up at `add`, untouched since, with its
            // node at its start. Clearing the tag keeps the object from looking queued once it
            // is reused.
            let (next, tag) = unsafe {
                let Node { next, tag } = node.read();
                (*node).tag = 0;
                (next, tag)
            };
            let cache = tag ^ TAG_MIX;
            // SAFETY: `node` is an object given up at `add` (`NonNull`: it is not null); the
            // tag names the cache given there, which outlives the head (`'a`).
            let freed = unsafe {
                let obj = NonNull::new_unchecked(node.cast::<u8>());
                match (cache as *const KmemCache<P>).as_ref() {
                    Some(c) => c.free(obj),
                    None => self.kfree(obj.as_ptr()),
                }
            };
            match freed {
                Ok(()) => result.freed += 1,
                Err(r) => result.reports.push(r),
            }
            reached += 1;
            node = next;
        }
        if reached != head.len || !node.is_null() {
            let kind = SlabErrorKind::FreeQCorrupted {
                queued: head.len,
                reached,
            };
            let r = report(FREE_UP, head.first as usize, kind);
            self.platform.slab_error(&r);
            result.reports.push(r);
        }
        result
        // LAB(freeq) END
    }
}
