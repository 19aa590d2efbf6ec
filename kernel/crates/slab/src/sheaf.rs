//! Sheaves: per-CPU arrays of object pointers (the types; the slow paths that trade them are in
//! [`crate::cache::sheaves`]).
//!
//! A sheaf is a header followed by an array of `capacity` object pointers. Each CPU has, per
//! cache, a `main` sheaf that the fast paths pop from and push to (see [`crate::cache`]) and an
//! optional `spare`. When `main` runs empty (allocation) or full (free), the slow paths
//! exchange it, in order of cost: with the spare, with the node's [`Barn`](crate::barn::Barn),
//! and finally with the slabs (refill from / flush to the slab free lists).
//!
//! A cache without sheaves (capacity 0, e.g. debug caches) points `main` at one shared static
//! zero-capacity sheaf: the fast paths see it as both empty and full and fall into the slow
//! paths, which then go straight to the slabs. So the fast paths need no "has sheaves" test.
//!
//! Where sheaves come from: Linux allocates them with `kmalloc`, which needs care because the
//! kmalloc caches have sheaves themselves. Sheaf gives every cache with sheaves a private
//! *sheaf cache* (a cache without sheaves whose objects are exactly one sheaf: 32-byte header
//! plus `capacity` pointers), so allocating a sheaf never recurses into the cache being
//! served. Capacities are still rounded as Linux does, so that a sheaf would exactly fill its
//! kmalloc bucket (60 pointers: 512 bytes). Oversize prefilled sheaves get whole pages.

use core::cell::{Cell, UnsafeCell};
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::base::CPU_SLOT_BYTES;
use crate::head::{RcuHead, container_of};
use crate::layout::SHEAF_HEADER;
use crate::slabs::FreeObject;

/// Objects moved per batch when a sheaf is flushed to slabs (`PCS_BATCH_MAX`).
pub const SHEAF_FLUSH_BATCH: usize = 32;

/// Marks a sheaf allocated from the cache's sheaf cache rather than from whole pages.
pub(crate) const NOT_OVERSIZE: u32 = u32::MAX;

/// The header of a sheaf (Linux's `struct slab_sheaf`); `capacity` object pointers follow it.
///
/// As in Linux, part of the header is a union: while the sheaf is in use, its last two words
/// are `SheafWords` (capacity, kind, push limit); while an `rcu_free` sheaf waits for its
/// grace period they are the [`RcuHead`] it is queued on (`call_rcu(&sheaf->rcu_head, ...)`),
/// so handing a sheaf to RCU allocates nothing. The words are recomputed from the cache when
/// the sheaf comes back (`SheafBox::from_rcu_head`). The fast paths read `size` and
/// `push_limit` at the same offsets as before the union (0 and 24).
#[repr(C)]
pub struct Sheaf {
    /// Number of objects in the sheaf.
    pub(crate) size: u32,
    /// Node the sheaf was allocated for.
    pub(crate) node: u32,
    /// Address of the owning cache.
    pub(crate) cache: usize,
    /// The words of a sheaf in use, or the RCU head of one in RCU's hands.
    pub(crate) u: SheafUnion,
}

/// The last two words of a sheaf's header: [`SheafWords`] while it is in use, an [`RcuHead`]
/// while it waits for a grace period.
///
/// Invariant: every sheaf reachable through a [`SheafBox`], a CPU's `main` slot or the static
/// empty sheaf has its `words` live. The head is live only between
/// [`SheafBox::into_rcu_head`] and [`SheafBox::from_rcu_head`], while no handle to the sheaf
/// exists (the RCU callback owns it).
#[repr(C)]
pub(crate) union SheafUnion {
    /// The sheaf in use.
    pub(crate) words: SheafWords,
    /// The sheaf handed to RCU.
    pub(crate) rcu_head: ManuallyDrop<RcuHead>,
}

/// What a sheaf in use keeps in the union of its header.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct SheafWords {
    /// Number of pointers the array has room for.
    pub(crate) capacity: u32,
    /// Page order of an oversize prefilled sheaf, or `u32::MAX` for a regular one.
    pub(crate) oversize_order: u32,
    /// The free fast path pushes while `size < push_limit`: `capacity`, or 0 in caches of a
    /// multi-node machine, whose frees all take the slow path for its remote-node test (so
    /// that the single-node fast path does not pay for that test).
    pub(crate) push_limit: u32,
    pub(crate) _reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Sheaf>() == SHEAF_HEADER);
const _: () = assert!(core::mem::size_of::<SheafUnion>() == core::mem::size_of::<RcuHead>());
// The fast paths' offsets, and the header's last word (read by the free fast path's
// double-free test on an empty sheaf) being `push_limit` and `_reserved`.
const _: () = assert!(core::mem::offset_of!(Sheaf, size) == 0);
const _: () = assert!(
    core::mem::offset_of!(Sheaf, u) + core::mem::offset_of!(SheafWords, push_limit)
        == SHEAF_HEADER - 8
);

impl Sheaf {
    /// A header with room for `capacity` objects holding `size` of them (for tests of the barn:
    /// real sheaves are allocated with their pointer array).
    pub(crate) const fn header(capacity: u32, size: u32) -> Self {
        Self {
            size,
            node: 0,
            cache: 0,
            u: SheafUnion {
                words: SheafWords {
                    capacity,
                    oversize_order: NOT_OVERSIZE,
                    push_limit: capacity,
                    _reserved: 0,
                },
            },
        }
    }

    /// The words of a sheaf in use.
    #[inline(always)]
    pub(crate) fn words(&self) -> SheafWords {
        // SAFETY: a sheaf reachable by reference is in use, so its words are live (the
        // invariant of `SheafUnion`: only RCU's callback, which holds no reference, sees the
        // head).
        unsafe { self.u.words }
    }

    /// The pointer array following the header.
    ///
    /// # Safety
    /// `this` must point to a sheaf allocated with its array (or to the static empty sheaf, in
    /// which case the array has no element).
    #[inline(always)]
    pub(crate) unsafe fn objects(this: *mut Sheaf) -> *mut *mut u8 {
        // SAFETY: the array starts right after the 32-byte header (caller contract).
        unsafe { this.add(1).cast() }
    }
}

struct StaticSheaf(Sheaf);
// SAFETY: the static sheaf is never written (capacity 0: the fast paths never store into it).
unsafe impl Sync for StaticSheaf {}

/// The one zero-capacity sheaf shared by all caches without sheaves.
static EMPTY_SHEAF: StaticSheaf = StaticSheaf(Sheaf::header(0, 0));

/// Pointer to the shared zero-capacity sheaf. Only ever read through.
fn empty_sheaf() -> NonNull<Sheaf> {
    NonNull::from(&EMPTY_SHEAF.0)
}

/// An owned sheaf: the one handle to a real sheaf (header and pointer array), through which
/// safe code pops, pushes and counts its objects.
///
/// Invariants, established by `SheafBox::init` and kept by every method:
/// * the handle is the sheaf's only owner: nobody else reads or writes the sheaf while the
///   handle exists (a per-CPU slot, the barn, a [`PrefilledSheaf`] or an RCU callback holds it;
///   giving it to one of them moves it);
/// * the array has room for exactly `capacity` pointers, all initialised: slots `0..size` hold
///   free objects of the sheaf's cache, the others null or stale pointers that are never read
///   as objects.
///
/// Dropping a `SheafBox` leaks the sheaf (and its objects): sheaves go back to their cache with
/// `KmemCache::free_sheaf`.
#[derive(Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct SheafBox(NonNull<Sheaf>);

// SAFETY: the handle is the sheaf's only owner (invariant), and the sheaf holds plain
// pointers to free objects: moving the handle to another CPU moves all of it.
unsafe impl Send for SheafBox {}

impl SheafBox {
    /// Makes a sheaf with the header `header` (size 0) in the memory at `mem`, its array
    /// initialised to nulls.
    ///
    /// # Safety
    /// `mem` is aligned for [`Sheaf`], valid for writes of [`SHEAF_HEADER`] bytes plus
    /// `header`'s capacity in pointers, and owned by the caller: nobody else uses it until the
    /// sheaf is given back with [`SheafBox::into_raw`].
    pub(crate) unsafe fn init(mem: NonNull<u8>, header: Sheaf) -> Self {
        assert_eq!(header.size, 0, "a new sheaf is empty");
        let s = mem.cast::<Sheaf>();
        let capacity = header.words().capacity as usize;
        // SAFETY: the memory is ours and big enough (caller contract); a null pointer is
        // all-zero bytes.
        unsafe {
            s.as_ptr().write(header);
            Sheaf::objects(s.as_ptr()).write_bytes(0, capacity);
        }
        Self(s)
    }

    /// Gives the sheaf's memory back (to free it).
    pub(crate) fn into_raw(self) -> NonNull<Sheaf> {
        self.0
    }

    #[inline(always)]
    fn header(&self) -> &Sheaf {
        // SAFETY: the handle owns a live sheaf (invariant).
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn header_mut(&mut self) -> &mut Sheaf {
        // SAFETY: as above, and `&mut self` is the only access.
        unsafe { self.0.as_mut() }
    }

    /// The whole pointer array (`capacity` slots).
    #[inline(always)]
    fn slots(&mut self) -> &mut [Option<FreeObject>] {
        let capacity = self.capacity();
        // SAFETY: the array follows the header and holds `capacity` initialised pointers
        // (invariant); `Option<FreeObject>` has the layout of a nullable pointer; `&mut self`
        // is the only access to the sheaf.
        unsafe {
            let objects = Sheaf::objects(self.0.as_ptr()).cast::<Option<FreeObject>>();
            core::slice::from_raw_parts_mut(objects, capacity)
        }
    }

    /// Number of objects in the sheaf.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.header().size as usize
    }

    /// Number of objects the sheaf has room for.
    #[inline(always)]
    pub fn capacity(&self) -> usize {
        self.header().words().capacity as usize
    }

    /// Whether the sheaf holds no object.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the sheaf has no room left.
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// The node the sheaf was allocated for.
    pub(crate) fn node(&self) -> usize {
        self.header().node as usize
    }

    /// The page order of an oversize sheaf (allocated from whole pages), `None` for a regular
    /// one (an object of the cache's sheaf cache).
    pub(crate) fn oversize_order(&self) -> Option<u32> {
        let order = self.header().words().oversize_order;
        (order != NOT_OVERSIZE).then_some(order)
    }

    /// Hands the sheaf to RCU: the words of its header become the [`RcuHead`] returned, which
    /// the caller queues (Linux's `call_rcu(&sheaf->rcu_head, rcu_free_sheaf)`); its objects,
    /// size, node and cache stay. [`SheafBox::from_rcu_head`] takes it back. Only a regular
    /// sheaf can go (on the way back its words are those of a regular sheaf).
    pub(crate) fn into_rcu_head(self) -> NonNull<RcuHead> {
        assert!(
            self.oversize_order().is_none(),
            "only regular sheaves are handed to RCU"
        );
        let s = self.into_raw().as_ptr();
        // SAFETY: the handle owned the sheaf (invariant) and is consumed, so nothing reads the
        // words any more: the union now holds the head. The pointer is projected from the
        // sheaf's, so `from_rcu_head` can step back to the whole sheaf.
        unsafe {
            let head = &raw mut (*s).u.rcu_head;
            head.write(ManuallyDrop::new(RcuHead::new()));
            NonNull::new_unchecked(head.cast::<RcuHead>())
        }
    }

    /// The sheaf whose header holds `head`.
    ///
    /// # Safety
    /// `head` was returned by [`SheafBox::into_rcu_head`] and the sheaf is not taken back yet.
    unsafe fn sheaf_of_rcu_head(head: NonNull<RcuHead>) -> NonNull<Sheaf> {
        // SAFETY: the head is the `u` field of a live sheaf (it is the union's first and only
        // member at offset 0), and was projected from the sheaf's pointer (caller contract).
        unsafe { container_of::<Sheaf>(head, core::mem::offset_of!(Sheaf, u)) }
    }

    /// The address of the cache owning the sheaf queued on `head` (its `cache` word, which the
    /// head does not overlay): how the RCU callback finds its cache.
    ///
    /// # Safety
    /// As for [`SheafBox::from_rcu_head`].
    pub(crate) unsafe fn rcu_head_cache(head: NonNull<RcuHead>) -> usize {
        // SAFETY: the sheaf is live and in RCU's hands (caller contract); `cache` is not part
        // of the union.
        unsafe { (*Self::sheaf_of_rcu_head(head).as_ptr()).cache }
    }

    /// Takes back the sheaf that [`SheafBox::into_rcu_head`] handed to RCU: its header words
    /// become those of a regular sheaf of `capacity` pointers with `push_limit` again.
    ///
    /// # Safety
    /// `head` was returned by [`SheafBox::into_rcu_head`] for a sheaf of `capacity` pointers,
    /// it has been popped off every queue (its callback is running) and is not used again: the
    /// result becomes the sheaf's only owner.
    pub(crate) unsafe fn from_rcu_head(
        head: NonNull<RcuHead>,
        capacity: usize,
        push_limit: u32,
    ) -> SheafBox {
        // SAFETY: caller contract.
        let s = unsafe { Self::sheaf_of_rcu_head(head) };
        let words = SheafWords {
            capacity: capacity as u32,
            oversize_order: NOT_OVERSIZE,
            push_limit,
            _reserved: 0,
        };
        // SAFETY: the head is done with (caller contract): the union holds the words again,
        // and the sheaf, with its objects, belongs to the new handle.
        unsafe { (&raw mut (*s.as_ptr()).u.words).write(words) };
        SheafBox(s)
    }

    /// Whether `obj` is the object on top of the sheaf (the one freed last).
    #[inline]
    pub(crate) fn top_is(&mut self, obj: *mut u8) -> bool {
        let size = self.len();
        size > 0 && self.slots()[size - 1].as_ref().map(FreeObject::as_ptr) == Some(obj)
    }

    /// Takes the top object.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<FreeObject> {
        let size = self.len();
        if size == 0 {
            return None;
        }
        let obj = self.slots()[size - 1].take();
        debug_assert!(obj.is_some(), "slots below size hold objects");
        self.header_mut().size = size as u32 - 1;
        obj
    }

    /// Puts `obj` on top; `Err` gives it back when the sheaf is full.
    #[inline(always)]
    pub(crate) fn push(&mut self, obj: FreeObject) -> Result<(), FreeObject> {
        let size = self.len();
        if size >= self.capacity() {
            return Err(obj);
        }
        self.slots()[size] = Some(obj);
        self.header_mut().size = size as u32 + 1;
        Ok(())
    }

    /// Moves the top `n = min(len, out.len())` objects into `out[..n]`, in the order they
    /// have in the sheaf (the deepest first); returns `n`.
    pub(crate) fn take_batch(&mut self, out: &mut [Option<FreeObject>]) -> usize {
        let size = self.len();
        let n = size.min(out.len());
        for (dst, src) in out[..n].iter_mut().zip(&mut self.slots()[size - n..size]) {
            *dst = src.take();
        }
        self.header_mut().size = (size - n) as u32;
        n
    }

    /// Adds objects up to `target` (at most the capacity): `fill` gets the free slots
    /// `len..target`, all `None`, and fills a prefix of them; returns how many were added.
    pub(crate) fn fill(
        &mut self,
        target: usize,
        fill: impl FnOnce(&mut [Option<FreeObject>]),
    ) -> usize {
        let size = self.len();
        let target = target.min(self.capacity());
        if size >= target {
            return 0;
        }
        let free = &mut self.slots()[size..target];
        free.iter_mut().for_each(|s| *s = None);
        fill(free);
        let got = free.iter().take_while(|s| s.is_some()).count();
        self.header_mut().size = (size + got) as u32;
        got
    }
}

/// A CPU's `main` sheaf: an owned sheaf (a [`SheafBox`] moved in), or the shared static
/// zero-capacity sheaf, which sends both fast paths to the slow paths (a CPU without sheaves,
/// or the "CPU unknown" entry 0). Never null, so the fast paths need no test for that.
#[repr(transparent)]
pub(crate) struct MainSheaf(NonNull<Sheaf>);

impl MainSheaf {
    /// The static empty sheaf.
    pub(crate) fn none() -> Self {
        Self(empty_sheaf())
    }

    /// Whether it holds a real sheaf.
    #[inline(always)]
    fn is_real(&self) -> bool {
        self.0 != empty_sheaf()
    }

    /// The real sheaf, if any.
    #[inline(always)]
    pub(crate) fn get(&mut self) -> Option<&mut SheafBox> {
        if !self.is_real() {
            return None;
        }
        // SAFETY: both types are a transparent `NonNull<Sheaf>`, and a real main sheaf is a
        // `SheafBox` moved in by `put`, owned by the slot.
        Some(unsafe { &mut *(self as *mut Self).cast::<SheafBox>() })
    }

    /// Takes the real sheaf out, leaving the static one.
    pub(crate) fn take(&mut self) -> Option<SheafBox> {
        let real = if self.is_real() {
            Some(SheafBox(self.0))
        } else {
            None
        };
        self.0 = empty_sheaf();
        real
    }

    /// Moves `s` in. The slot must hold the static sheaf (else its sheaf would leak).
    pub(crate) fn put(&mut self, s: SheafBox) {
        debug_assert!(!self.is_real(), "main sheaf replaced without being taken");
        self.0 = s.into_raw();
    }
}

/// One CPU's sheaves of one cache (Linux's `struct slub_percpu_sheaves`), as seen by the slow
/// paths while the CPU is pinned: borrowed from the CPU's [`PerCpu`] slot in
/// `KmemCache::cpu_sheaves` (see `KmemCache::pcs`), given back when dropped.
pub(crate) struct PerCpuSheaves<'a> {
    /// A real sheaf or the static empty one.
    pub(crate) main: &'a mut MainSheaf,
    /// A sheaf in any state (empty, partially filled or full), if any.
    pub(crate) spare: &'a mut Option<SheafBox>,
    /// The sheaf collecting `kfree_rcu` objects (never full: a full one is handed to RCU at
    /// once), if any.
    pub(crate) rcu_free: &'a mut Option<SheafBox>,
    /// This CPU's node.
    pub(crate) node: usize,
    borrowed: &'a Cell<bool>,
}

impl Drop for PerCpuSheaves<'_> {
    fn drop(&mut self) {
        self.borrowed.set(false);
    }
}

/// A CPU's slot in a cache: its sheaves and node, alone on a cache line.
#[repr(C, align(64))]
pub(crate) struct PerCpu {
    /// A real sheaf or the static empty one. The fast paths read only this.
    pub(crate) main: UnsafeCell<MainSheaf>,
    /// A sheaf in any state, if any.
    spare: UnsafeCell<Option<SheafBox>>,
    /// The sheaf collecting `kfree_rcu` objects, if any.
    rcu_free: UnsafeCell<Option<SheafBox>>,
    /// This CPU's node.
    pub(crate) node: usize,
    /// Whether a [`PerCpuSheaves`] of this slot exists (a second one would alias it).
    borrowed: Cell<bool>,
    /// Allocations served by the fast path on this CPU (`alloc_fastpath`): on the line the
    /// fast path already has, so counting costs one instruction.
    pub(crate) alloc_fast: AtomicU64,
    /// Frees pushed by the fast path on this CPU (`free_fastpath`).
    pub(crate) free_fast: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<PerCpu>() == CPU_SLOT_BYTES);

impl PerCpu {
    /// A slot of a CPU of `node` without sheaves.
    pub(crate) fn new(node: usize) -> Self {
        Self {
            main: UnsafeCell::new(MainSheaf::none()),
            spare: UnsafeCell::new(None),
            rcu_free: UnsafeCell::new(None),
            node,
            borrowed: Cell::new(false),
            alloc_fast: AtomicU64::new(0),
            free_fast: AtomicU64::new(0),
        }
    }

    /// Counts one fast-path event (`alloc_fast` or `free_fast`). Only the CPU owning the
    /// slot, pinned, counts: a relaxed load and store, which x86 does as one `add` to memory.
    #[inline(always)]
    pub(crate) fn count(counter: &AtomicU64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// The sheaves of this slot, borrowed until the result is dropped. Panics if they are
    /// already borrowed (a slow path re-entering itself on the same CPU and cache: a bug).
    ///
    /// # Safety
    /// No other context accesses this slot (its `main` included) while the result lives: the
    /// caller is pinned to the slot's CPU, or has the whole cache to itself.
    pub(crate) unsafe fn borrow(&self) -> PerCpuSheaves<'_> {
        assert!(
            !self.borrowed.replace(true),
            "per-CPU sheaves borrowed twice"
        );
        // SAFETY: no other context touches the slot (caller contract), and the flag makes
        // this the only borrow in this one.
        unsafe {
            PerCpuSheaves {
                main: &mut *self.main.get(),
                spare: &mut *self.spare.get(),
                rcu_free: &mut *self.rcu_free.get(),
                node: self.node,
                borrowed: &self.borrowed,
            }
        }
    }
}

/// The page source could not provide the memory asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// Why [`KmemCache::refill_sheaf`](crate::KmemCache::refill_sheaf) did not top a prefilled
/// sheaf up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefillError {
    /// The page source could not provide the memory (the sheaf keeps what it had).
    OutOfMemory,
    /// The sheaf belongs to another cache (reported; the sheaf is left as it was).
    WrongCache,
}

/// A sheaf handed to a caller by [`KmemCache::prefill_sheaf`](crate::KmemCache::prefill_sheaf): allocations from it
/// cannot fail until it is empty, which lets a caller reserve objects before entering a section
/// that must not fail (Linux uses this for maple tree nodes).
///
/// Give it back with [`KmemCache::return_sheaf`](crate::KmemCache::return_sheaf); dropping it leaks its objects.
///
/// A prefilled sheaf belongs to the cache that made it: the other calls check that they are
/// given a sheaf of their own cache, report one of another cache and leave it alone (its
/// objects have that cache's size). A cache is told by a serial number that no other cache
/// gets, so a sheaf outliving its cache (kept past the allocator's drop) is refused by a new
/// cache at the same address too. `kmem_cache_destroy` refuses to free a cache while any of
/// its prefilled sheaves is out (its objects, and the sheaf itself, belong to the cache).
#[must_use = "return the sheaf with kmem_cache_return_sheaf"]
#[derive(Debug)]
pub struct PrefilledSheaf {
    pub(crate) sheaf: SheafBox,
    /// The cache it belongs to: its serial number (an identity never reused, unlike an
    /// address, which a cache created after this one's destruction may get) and name.
    pub(crate) cache: (u64, crate::CacheName),
}
