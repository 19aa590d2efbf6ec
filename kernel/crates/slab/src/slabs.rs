//! Slabs: blocks of `2^order` pages cut into objects, their free lists and the per-node lists
//! that hold them (Linux's `struct slab` and `struct kmem_cache_node`).
//!
//! A slab's free objects are chained through a *free pointer* stored in each free object at
//! `cache.offset`. The pointer is hardened like `CONFIG_SLAB_FREELIST_HARDENED`: it is stored as
//! `next ^ cache.random ^ swap_bytes(address where it is stored)`, so an attacker who overwrites
//! a free object cannot forge a useful pointer without knowing the per-cache secret, and a stray
//! write of a plausible pointer decodes to garbage that the bounds check below rejects.
//!
//! All slab state (free list, `inuse`, list membership) is protected by the `list_lock` of the
//! node the slab's memory belongs to. Slabs are reached only through the slow paths: the fast
//! paths work on sheaves.

use core::ptr::{self, NonNull};

use crate::base::PAGE_SIZE;
use crate::sync::Mutex;

/// An object of a cache that nobody uses any more: on a slab's free list, in a sheaf, or on
/// its way between them (or, freshly freed by a user, about to be checked at the slab).
///
/// The token that lets policy code move objects around in safe code: only the allocator makes
/// one ([`FreeObject::new`], where an object comes off a slab's free list or is given back by
/// a caller of an `unsafe` free function), it is not `Copy` (moving it moves the right to hand
/// the object out or write into it), and it is consumed when the object leaves the allocator
/// ([`FreeObject::into_allocated`]) or goes back to a slab. Its layout is that of a non-null
/// pointer, so `Option<FreeObject>` is a nullable object pointer (the sheaves' array).
#[repr(transparent)]
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FreeObject(NonNull<u8>);

// SAFETY: a free object is plain memory that nobody uses; the token only moves the right to
// use it (for example into an RCU callback that runs on another CPU).
unsafe impl Send for FreeObject {}

impl FreeObject {
    /// Makes the token of the free object `obj`.
    ///
    /// # Safety
    /// `obj` is an object of a cache that nobody uses any more (and that no other token
    /// names), or, for objects handed to [`free_to_slabs`](crate::KmemCache), a pointer that
    /// the slab-level checks reject (see the contract of [`crate::KmemCache::free`]).
    #[inline(always)]
    pub(crate) unsafe fn new(obj: NonNull<u8>) -> Self {
        Self(obj)
    }

    /// The object's address.
    #[inline(always)]
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.0.as_ptr()
    }

    /// Hands the object out: it is allocated from now on, the token is gone.
    #[inline(always)]
    pub(crate) fn into_allocated(self) -> NonNull<u8> {
        self.0
    }
}

impl From<&FreeObject> for NonNull<u8> {
    /// The object's address.
    fn from(obj: &FreeObject) -> Self {
        obj.0
    }
}

/// Which node list a slab is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlabListId {
    /// On no list (being built or being freed).
    None,
    /// On the partial list: some objects are free.
    Partial,
    /// On the full list: no object is free.
    Full,
}

/// The descriptor of one slab (Linux's `struct slab`, which overlays `struct page`).
///
/// It lives in per-page storage provided by the platform ([`Platform::slab_meta`](crate::Platform::slab_meta)), not in the
/// slab's own memory, and the platform maps every page of the slab to it
/// ([`Platform::page_owner`](crate::Platform::page_owner)), so finding the slab of any object is O(1).
///
/// The free fast paths read `base`, `cache` and `free_limit` (the first three words:
/// `repr(C)` keeps them at the line's start).
#[repr(C)]
pub struct Slab {
    /// First byte of the slab's pages.
    pub(crate) base: *mut u8,
    /// Address of the owning [`KmemCache`](crate::KmemCache) (its identity; also used to name it in reports).
    pub(crate) cache: usize,
    /// The free fast path's bound for an object's key (`ObjIndex::limit` of `objects`, in
    /// the cache's `ObjIndex`).
    pub(crate) free_limit: u64,
    /// First free object (raw pointer; the links inside objects are hardened).
    pub(crate) freelist: *mut u8,
    /// Objects handed out (to users or to sheaves).
    pub(crate) inuse: u32,
    /// Objects in the slab.
    pub(crate) objects: u32,
    /// Intrusive list links.
    pub(crate) prev: *mut Slab,
    pub(crate) next: *mut Slab,
    /// Page order of the slab.
    pub(crate) order: u8,
    /// Node of the slab's memory.
    pub(crate) node: u16,
    /// Which list the slab is on.
    pub(crate) list: SlabListId,
}

// A descriptor fills one cache line (the host gives each its own, the kernel packs them).
const _: () = assert!(core::mem::size_of::<Slab>() <= 64);

/// A doubly-linked intrusive list of slabs.
pub(crate) struct SlabList {
    head: *mut Slab,
    tail: *mut Slab,
    /// Number of slabs on the list (`nr_partial` for the partial list).
    pub(crate) nr: usize,
}

impl SlabList {
    const fn new() -> Self {
        Self {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            nr: 0,
        }
    }

    /// First slab, or null.
    pub(crate) fn first(&self) -> *mut Slab {
        self.head
    }

    /// Adds `s` at the front (Linux adds partial slabs at the head: they are used first).
    ///
    /// # Safety
    /// `s` must be a valid slab on no list, and the list's lock must be held.
    pub(crate) unsafe fn push_front(&mut self, s: *mut Slab, id: SlabListId) {
        // SAFETY: the caller guarantees `s` and every slab on the list are valid and locked.
        unsafe {
            (*s).prev = ptr::null_mut();
            (*s).next = self.head;
            (*s).list = id;
            if self.head.is_null() {
                self.tail = s;
            } else {
                (*self.head).prev = s;
            }
        }
        self.head = s;
        self.nr += 1;
    }

    /// Adds `s` at the back.
    ///
    /// # Safety
    /// As for [`SlabList::push_front`].
    pub(crate) unsafe fn push_back(&mut self, s: *mut Slab, id: SlabListId) {
        // SAFETY: the caller guarantees `s` and every slab on the list are valid and locked.
        unsafe {
            (*s).next = ptr::null_mut();
            (*s).prev = self.tail;
            (*s).list = id;
            if self.tail.is_null() {
                self.head = s;
            } else {
                (*self.tail).next = s;
            }
        }
        self.tail = s;
        self.nr += 1;
    }

    /// Unlinks `s`.
    ///
    /// # Safety
    /// `s` must be on this list, and the list's lock must be held.
    pub(crate) unsafe fn remove(&mut self, s: *mut Slab) {
        // SAFETY: `s` is on this list, so its neighbours are valid slabs of the list.
        unsafe {
            let (prev, next) = ((*s).prev, (*s).next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).prev = prev;
            }
            (*s).list = SlabListId::None;
            (*s).prev = ptr::null_mut();
            (*s).next = ptr::null_mut();
        }
        self.nr -= 1;
    }
}

/// The lists of one node, protected by its `list_lock`.
pub(crate) struct NodeLists {
    /// Slabs with free objects (`n->partial`, `n->nr_partial`).
    pub(crate) partial: SlabList,
    /// Slabs without free objects. Linux keeps this list only for debug caches; Sheaf keeps it
    /// always so that `kmem_cache_destroy` can name every leftover object.
    pub(crate) full: SlabList,
    /// Slabs of this node (`nr_slabs`).
    pub(crate) nr_slabs: usize,
    /// Objects in those slabs (`total_objects`).
    pub(crate) total_objects: usize,
}

// SAFETY: the raw slab pointers are only followed while the owning mutex is held.
unsafe impl Send for NodeLists {}

/// Per-node state of a cache (Linux's `struct kmem_cache_node`).
pub struct KmemCacheNode {
    pub(crate) list_lock: Mutex<NodeLists>,
    /// Objects of this node that callers hold, counted at CPUs of other nodes, less objects
    /// of other nodes counted at this node's CPUs (net): the cross-node allocations and frees
    /// that bypass the sheaves (`alloc_node` of another node, a remote free, an allocation
    /// from a prefilled sheaf of another node). With it, the per-CPU allocation and free
    /// counts of a node's CPUs give the objects of that node callers hold (`cpu_slabs`).
    pub(crate) held_moved: core::sync::atomic::AtomicI64,
}

impl KmemCacheNode {
    pub(crate) fn new() -> Self {
        Self {
            held_moved: core::sync::atomic::AtomicI64::new(0),
            list_lock: Mutex::new(NodeLists {
                partial: SlabList::new(),
                full: SlabList::new(),
                nr_slabs: 0,
                total_objects: 0,
            }),
        }
    }
}

/// Who owns a page, as recorded in its page-owner word ([`Platform::set_page_owner`]): the one
/// place that encodes and decodes that word.
///
/// * `0`: nobody (not memory of this allocator, or a free page);
/// * a slab descriptor's address shifted right by one (descriptors are word aligned, so no bit
///   is lost): a slab, a positive word as a signed number, whatever half of the address space
///   the descriptor is in;
/// * `(head | order << 1 | 1)` rotated right by one: a large kmalloc block of `2^order` pages
///   starting at the page-aligned `head`, a negative word (the tag bit lands in the sign).
///
/// So `kfree`'s fast path tells a slab from everything else with one signed test of the word
/// ([`PageOwner::slab`]), and reaches the descriptor's fields through an address mode that
/// doubles the word (no instruction to decode it).
///
/// [`Platform::set_page_owner`]: crate::Platform::set_page_owner
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageOwner {
    /// Nobody.
    None,
    /// A large kmalloc block of `2^order` pages starting at `head`.
    Large {
        /// First byte of the block.
        head: usize,
        /// Page order of the block.
        order: u32,
    },
    /// A slab, by its descriptor.
    Slab(NonNull<Slab>),
}

/// Tag bit of a large kmalloc block's owner word, before the rotation.
const OWNER_LARGE: usize = 1;

impl PageOwner {
    /// The page-owner word of `self`.
    #[inline]
    pub(crate) fn encode(self) -> usize {
        match self {
            PageOwner::None => 0,
            PageOwner::Large { head, order } => {
                (head | ((order as usize) << 1) | OWNER_LARGE).rotate_right(1)
            }
            PageOwner::Slab(s) => {
                let addr = s.as_ptr() as usize;
                debug_assert!(addr & 1 == 0, "slab descriptors are word aligned");
                addr >> 1
            }
        }
    }

    /// The slab descriptor of an owner word, `None` for a large block or nobody: the fast
    /// test of `kfree` (one signed comparison).
    #[inline(always)]
    pub(crate) fn slab(owner: usize) -> Option<NonNull<Slab>> {
        if (owner as isize) > 0 {
            // A positive word is a descriptor's address shifted right by one (see `encode`);
            // non-zero, so the address is too.
            NonNull::new((owner << 1) as *mut Slab)
        } else {
            None
        }
    }

    /// Decodes a page-owner word.
    #[inline]
    pub(crate) fn decode(owner: usize) -> Self {
        if let Some(slab) = Self::slab(owner) {
            PageOwner::Slab(slab)
        } else if owner == 0 {
            PageOwner::None
        } else {
            let word = owner.rotate_left(1);
            debug_assert!(word & OWNER_LARGE != 0);
            PageOwner::Large {
                head: word & !(PAGE_SIZE - 1),
                order: ((word >> 1) & 0x1f) as u32,
            }
        }
    }
}

/// How a cache hardens the free pointers inside its free objects: where the pointer is stored
/// (`s->offset`) and the per-cache secret mixed into it (`s->random`), and where its object
/// slots are (to check a link before following it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FreePointer {
    /// Offset of the free pointer from the object's start (word aligned, inside the slot).
    pub(crate) offset: usize,
    /// The per-cache secret.
    pub(crate) random: usize,
    /// Stride of the object slots (`s->size`).
    pub(crate) size: usize,
    /// Left red zone before each object (`red_left_pad`).
    pub(crate) red_left_pad: usize,
}

impl FreePointer {
    /// Stores the hardened free pointer `next` in the free object `obj` (`set_freepointer`).
    ///
    /// # Safety
    /// `obj` must be a free object of a cache with this free-pointer layout that the caller
    /// owns.
    #[inline]
    pub(crate) unsafe fn set(self, obj: *mut u8, next: *mut u8) {
        // SAFETY: `offset` is word aligned and inside the object slot (layout invariant), and
        // the caller owns the object.
        unsafe {
            let at = obj.add(self.offset).cast::<usize>();
            at.write(next as usize ^ self.random ^ (at as usize).swap_bytes());
        }
    }

    /// Clears the free-pointer word of `obj` (raw zero, which decodes to no valid link).
    ///
    /// # Safety
    /// As for `set`.
    #[inline]
    pub(crate) unsafe fn clear(self, obj: *mut u8) {
        // SAFETY: as for `set`.
        unsafe { obj.add(self.offset).cast::<usize>().write(0) };
    }

    /// Reads the free pointer stored in the free object `obj` (`get_freepointer`).
    ///
    /// # Safety
    /// `obj` must be an object of a cache with this layout whose memory the caller may read.
    #[inline]
    pub(crate) unsafe fn get(self, obj: *mut u8) -> *mut u8 {
        // SAFETY: as for `set`.
        unsafe {
            let at = obj.add(self.offset).cast::<usize>();
            (at.read() ^ self.random ^ (at as usize).swap_bytes()) as *mut u8
        }
    }
}

/// A slab's free list, reached through the descriptor: `&Slab` or `&mut Slab` is had only with
/// the node's `list_lock` held (the descriptors are reached through the locked node lists or,
/// for a new slab, before anybody else can see it).
///
/// Invariant of every descriptor (set up by `allocate_slab`, kept by these methods, the only
/// ones that write `freelist`): `freelist` is null or the first of a chain of free objects of
/// this slab, linked by hardened free pointers ([`FreePointer`]) and ended by null. A link
/// is checked to be an object slot of the slab before it is followed, so a corrupted object
/// cannot send the walk outside the slab.
impl Slab {
    /// Is `addr` the address of an object slot of this slab?
    pub(crate) fn is_object(&self, fp: FreePointer, addr: usize) -> bool {
        let first = self.base as usize + fp.red_left_pad;
        addr >= first
            && (addr - first).is_multiple_of(fp.size)
            && (addr - first) / fp.size < self.objects as usize
    }

    /// Empties the free list without reading or writing the objects on it (their links stay
    /// as they are). Only for a slab whose every object is free and about to be re-listed or
    /// freed by its owner under the node lock (`free_slab_checks`).
    pub(crate) fn freelist_forget(&mut self) {
        self.freelist = ptr::null_mut();
    }

    /// The first free object (null when the slab is full).
    pub(crate) fn freelist_head(&self) -> *mut u8 {
        self.freelist
    }

    /// Pops the first free object. `Err(obj)` when the link stored in `obj` is not an object
    /// of the slab (a corrupted free list): the list is then cut (empty) and `obj`, whose
    /// memory cannot be trusted, is not handed out.
    pub(crate) fn freelist_pop(&mut self, fp: FreePointer) -> Result<Option<FreeObject>, *mut u8> {
        let Some(obj) = NonNull::new(self.freelist) else {
            return Ok(None);
        };
        // SAFETY: `obj` heads the free list: a free object of this slab (invariant).
        let next = unsafe { fp.get(obj.as_ptr()) };
        if !next.is_null() && !self.is_object(fp, next as usize) {
            self.freelist = ptr::null_mut();
            return Err(obj.as_ptr());
        }
        self.freelist = next;
        // SAFETY: `obj` came off the free list: its free-pointer word is still ours to write.
        // Clearing it means that only objects on a free list hold a valid link, which is what
        // `holds_free_link` tells double frees by.
        unsafe { fp.clear(obj.as_ptr()) };
        // SAFETY: the object came off the free list: nobody uses it, no token names it.
        Ok(Some(unsafe { FreeObject::new(obj) }))
    }

    /// Whether the object at `obj` (an object slot of this slab) holds a valid free-list link,
    /// that is, whether it is on this slab's free list already: freeing it again is a double
    /// free. Every object popped off a free list has its link word cleared
    /// ([`Slab::freelist_pop`]), and a cleared word (or any value its owner may have written)
    /// decodes, through the per-cache secret, to a valid link (null or an object slot of the
    /// slab) only with a probability of about `objects / 2^64`.
    pub(crate) fn holds_free_link(&self, fp: FreePointer, obj: *mut u8) -> bool {
        debug_assert!(self.is_object(fp, obj as usize));
        // SAFETY: `obj` is an object slot of this slab (caller contract, checked above in
        // debug builds) and the node lock is held: reading its free-pointer word is a read of
        // the slab's own memory, whoever owns the object.
        let next = unsafe { fp.get(obj) };
        next.is_null() || self.is_object(fp, next as usize)
    }

    /// Pushes `obj`, an object of this slab, on the free list.
    pub(crate) fn freelist_push(&mut self, fp: FreePointer, obj: FreeObject) {
        debug_assert!(self.is_object(fp, obj.as_ptr() as usize));
        // SAFETY: nobody uses `obj` (token), an object of a cache with this layout: its
        // free-pointer word is ours to write.
        unsafe { fp.set(obj.as_ptr(), self.freelist) };
        self.freelist = obj.as_ptr();
    }

    /// The free list, in order: at most `objects` entries, ending after the first one that
    /// is not an object slot of the slab (which is yielded but not followed).
    pub(crate) fn freelist_iter(&self, fp: FreePointer) -> impl Iterator<Item = *mut u8> + '_ {
        let mut f = self.freelist;
        let mut steps = 0;
        core::iter::from_fn(move || {
            if f.is_null() || steps >= self.objects {
                return None;
            }
            let cur = f;
            steps += 1;
            f = if self.is_object(fp, cur as usize) {
                // SAFETY: `cur` is an object slot of this slab on its free list: a free
                // object (invariant).
                unsafe { fp.get(cur) }
            } else {
                ptr::null_mut()
            };
            Some(cur)
        })
    }
}

#[cfg(test)]
mod tests;
