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

use crate::cache::KmemCache;
use crate::debug::SlabErrorKind;
use crate::platform::{Gfp, PAGE_SIZE, Platform};
use crate::stats::Stat;
use crate::sync::Mutex;

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
/// It lives in per-page storage provided by the platform ([`Platform::slab_meta`]), not in the
/// slab's own memory, and the platform maps every page of the slab to it
/// ([`Platform::page_owner`]), so finding the slab of any object is O(1).
pub struct Slab {
    /// Address of the owning [`KmemCache`] (its identity; also used to name it in reports).
    pub(crate) cache: usize,
    /// First byte of the slab's pages.
    pub(crate) base: *mut u8,
    /// First free object (raw pointer; the links inside objects are hardened).
    pub(crate) freelist: *mut u8,
    /// Objects handed out (to users or to sheaves).
    pub(crate) inuse: u32,
    /// Objects in the slab.
    pub(crate) objects: u32,
    /// Page order of the slab.
    pub(crate) order: u32,
    /// Node of the slab's memory.
    pub(crate) node: u32,
    /// Which list the slab is on.
    pub(crate) list: SlabListId,
    /// Intrusive list links.
    pub(crate) prev: *mut Slab,
    pub(crate) next: *mut Slab,
}

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
}

impl KmemCacheNode {
    pub(crate) fn new() -> Self {
        Self {
            list_lock: Mutex::new(NodeLists {
                partial: SlabList::new(),
                full: SlabList::new(),
                nr_slabs: 0,
                total_objects: 0,
            }),
        }
    }
}

/// Tag bit of a page owner that is a large kmalloc block rather than a slab descriptor.
pub(crate) const OWNER_LARGE: usize = 1;

/// Encodes the page owner of a large kmalloc block of `order` starting at `head`.
pub(crate) fn large_owner(head: usize, order: u32) -> usize {
    head | ((order as usize) << 1) | OWNER_LARGE
}

/// Decodes a large kmalloc owner into (head address, order).
pub(crate) fn decode_large_owner(owner: usize) -> (usize, u32) {
    (owner & !(PAGE_SIZE - 1), ((owner >> 1) & 0x1f) as u32)
}

impl<P: Platform> KmemCache<P> {
    /// Stores the hardened free pointer `next` in the free object `obj` (`set_freepointer`).
    ///
    /// # Safety
    /// `obj` must be a free object of this cache that the caller owns.
    #[inline]
    pub(crate) unsafe fn set_freepointer(&self, obj: *mut u8, next: *mut u8) {
        // SAFETY: `offset` is word aligned and inside the object slot (layout invariant), and
        // the caller owns the object.
        unsafe {
            let at = obj.add(self.layout.offset).cast::<usize>();
            at.write(next as usize ^ self.random ^ (at as usize).swap_bytes());
        }
    }

    /// Reads the free pointer stored in the free object `obj` (`get_freepointer`).
    ///
    /// # Safety
    /// `obj` must be an object of this cache whose memory the caller may read.
    #[inline]
    pub(crate) unsafe fn get_freepointer(&self, obj: *mut u8) -> *mut u8 {
        // SAFETY: as for `set_freepointer`.
        unsafe {
            let at = obj.add(self.layout.offset).cast::<usize>();
            (at.read() ^ self.random ^ (at as usize).swap_bytes()) as *mut u8
        }
    }

    /// Is `addr` the address of an object slot of `slab`?
    pub(crate) fn is_object_of(&self, slab: &Slab, addr: usize) -> bool {
        let first = slab.base as usize + self.layout.red_left_pad;
        addr >= first
            && (addr - first).is_multiple_of(self.layout.size)
            && (addr - first) / self.layout.size < slab.objects as usize
    }

    /// Finds the slab of `addr`, checking that it is a slab page of this cache and that `addr`
    /// is at an object boundary.
    pub(crate) fn obj_to_slab(&self, addr: usize) -> Result<*mut Slab, SlabErrorKind> {
        let owner = self.platform.page_owner(addr);
        if owner == 0 || owner & OWNER_LARGE != 0 {
            return Err(SlabErrorKind::NotSlabPage);
        }
        let slab = owner as *mut Slab;
        // SAFETY: a non-large page owner is always a live slab descriptor (set in
        // `allocate_slab`, cleared before the descriptor dies in `discard_slab`).
        let s = unsafe { &*slab };
        if s.cache != self as *const Self as usize {
            // SAFETY: a slab's cache outlives the slab; caches sharing a platform have the same
            // platform type `P`.
            let other = unsafe { &*(s.cache as *const KmemCache<P>) };
            return Err(SlabErrorKind::WrongCache {
                owner: other.name(),
            });
        }
        if !self.is_object_of(s, addr) {
            return Err(SlabErrorKind::NotObjectBoundary);
        }
        Ok(slab)
    }

    /// Allocates and initialises a new slab (`allocate_slab`): pages from the platform (the
    /// preferred order, else the minimum one), descriptor, debug patterns, constructor and a
    /// free list in address order. The slab is on no list yet.
    fn allocate_slab(&self, node: usize, gfp: Gfp) -> Option<*mut Slab> {
        let l = &self.layout;
        let (pages, order, objects) = match self.platform.alloc_pages(l.order, node, gfp) {
            Some(p) => (p, l.order, l.objects),
            None if l.min_order < l.order => (
                self.platform.alloc_pages(l.min_order, node, gfp)?,
                l.min_order,
                l.min_objects,
            ),
            None => return None,
        };
        let desc = self.platform.slab_meta(pages).as_ptr();
        let base = pages.as_ptr();
        // SAFETY: `desc` is storage reserved for this block's descriptor (platform contract).
        unsafe {
            desc.write(Slab {
                cache: self as *const Self as usize,
                base,
                freelist: ptr::null_mut(),
                inuse: 0,
                objects: objects as u32,
                order,
                node: self.platform.page_node(base as usize) as u32,
                list: SlabListId::None,
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
            });
        }
        self.init_slab_padding(base, objects, order);
        let mut next = ptr::null_mut();
        for i in (0..objects).rev() {
            // SAFETY: object `i` is inside the freshly allocated block, which we own.
            let obj = unsafe { base.add(i * l.size + l.red_left_pad) };
            self.init_object_debug(obj, false);
            if let Some(ctor) = self.ctor {
                ctor(obj);
            }
            // SAFETY: the object is free and ours.
            unsafe { self.set_freepointer(obj, next) };
            next = obj;
        }
        // SAFETY: the descriptor was initialised above; the block belongs to us.
        unsafe {
            (*desc).freelist = next;
            self.platform.set_page_owner(pages, order, desc as usize);
        }
        Some(desc)
    }

    /// Gives an empty slab's pages back to the platform (`discard_slab`).
    ///
    /// # Safety
    /// `slab` must be empty, on no list and unreachable by other threads.
    pub(crate) unsafe fn discard_slab(&self, slab: *mut Slab) {
        // SAFETY: the slab is ours alone (caller contract); its block came from `alloc_pages`.
        unsafe {
            let (base, order) = ((*slab).base, (*slab).order);
            self.check_slab_padding(base, (*slab).objects as usize, order);
            let base = NonNull::new_unchecked(base);
            self.platform.set_page_owner(base, order, 0);
            if self
                .flags
                .contains(crate::flags::SlabFlags::SLAB_TYPESAFE_BY_RCU)
            {
                self.platform.free_pages_rcu(base, order);
            } else {
                self.platform.free_pages(base, order);
            }
        }
    }

    /// Pops up to `out.len()` objects from `slab` into `out` (node lock held); returns how many.
    ///
    /// Each next pointer is checked to lie in the slab: a corrupted free list is reported and the
    /// rest of the slab is leaked (marked in use), as Linux does.
    ///
    /// # Safety
    /// The slab's node lock must be held and `slab` valid.
    unsafe fn take_from_slab(&self, slab: *mut Slab, out: &mut [*mut u8], caller: usize) -> usize {
        // SAFETY: the node lock is held (caller contract), so the slab is ours to modify.
        let s = unsafe { &mut *slab };
        let mut got = 0;
        while got < out.len() && !s.freelist.is_null() {
            let obj = s.freelist;
            // SAFETY: `obj` is a free object of this slab.
            let next = unsafe { self.get_freepointer(obj) };
            if !next.is_null() && !self.is_object_of(s, next as usize) {
                self.report(obj as usize, SlabErrorKind::FreelistCorrupted);
                s.freelist = ptr::null_mut();
                self.add_isolated((s.objects - s.inuse) as usize);
                s.inuse = s.objects;
                break;
            }
            s.freelist = next;
            s.inuse += 1;
            if self.debug && !self.alloc_debug_checks(obj, caller) {
                continue; // isolated: stays counted as in use, never handed out
            }
            out[got] = obj;
            got += 1;
        }
        got
    }

    /// Fills `out` with objects from the slabs of `node` (`get_partial` + `new_slab`): partial
    /// slabs first, then fresh slabs. Returns how many objects were obtained; fewer than asked
    /// only when the page source is out of memory.
    pub(crate) fn alloc_from_slabs(
        &self,
        node: usize,
        gfp: Gfp,
        out: &mut [*mut u8],
        caller: usize,
    ) -> usize {
        let mut got = 0;
        loop {
            {
                let mut n = self.nodes[node].list_lock.lock();
                while got < out.len() {
                    let s = n.partial.first();
                    if s.is_null() {
                        break;
                    }
                    // SAFETY: `s` is on the locked node's partial list.
                    unsafe {
                        got += self.take_from_slab(s, &mut out[got..], caller);
                        if (*s).inuse == (*s).objects {
                            n.partial.remove(s);
                            n.full.push_front(s, SlabListId::Full);
                        }
                    }
                }
            }
            if got == out.len() {
                return got;
            }
            let Some(s) = self.allocate_slab(node, gfp) else {
                return got;
            };
            self.stat_add(Stat::AllocSlab, 1);
            // SAFETY: the new slab is valid; we lock the node its memory is on.
            unsafe {
                let snode = (*s).node as usize;
                let mut n = self.nodes[snode].list_lock.lock();
                n.nr_slabs += 1;
                n.total_objects += (*s).objects as usize;
                got += self.take_from_slab(s, &mut out[got..], caller);
                if (*s).inuse == (*s).objects {
                    n.full.push_front(s, SlabListId::Full);
                } else {
                    n.partial.push_front(s, SlabListId::Partial);
                }
            }
        }
    }

    /// Frees `objs` to their slabs (`__slab_free`, batched): takes each slab's node lock (kept
    /// across consecutive objects of the same node), pushes the object on the slab's free list,
    /// moves slabs between the full and partial lists, and gives empty slabs beyond
    /// `min_partial` back to the page source once the lock is dropped.
    ///
    /// Objects that fail a check (not a slab object of this cache, double free, corrupted debug
    /// bytes) are reported and left alone (leaked): the allocator keeps working. Returns the last
    /// problem found, if any.
    ///
    /// # Safety
    /// Every object must either be an allocated object of this cache no longer in use, or be
    /// something the checks reject (debug caches check everything; other caches check the page,
    /// the cache, the object boundary and the free-list head).
    pub(crate) unsafe fn free_to_slabs(
        &self,
        objs: &[*mut u8],
        caller: usize,
    ) -> Result<(), SlabErrorKind> {
        let mut result = Ok(());
        let mut discard: *mut Slab = ptr::null_mut();
        let mut locked: Option<(usize, crate::sync::MutexGuard<'_, NodeLists>)> = None;
        for &obj in objs {
            let slab = match self.obj_to_slab(obj as usize) {
                Ok(s) => s,
                Err(kind) => {
                    self.report(obj as usize, kind);
                    result = Err(kind);
                    continue;
                }
            };
            // SAFETY: `slab` is a live slab of this cache.
            let node = unsafe { (*slab).node } as usize;
            if locked.as_ref().is_none_or(|(ln, _)| *ln != node) {
                drop(locked.take());
                locked = Some((node, self.nodes[node].list_lock.lock()));
            }
            let n = &mut locked.as_mut().expect("locked above").1;
            // SAFETY: the slab's node lock is held.
            let s = unsafe { &mut *slab };
            if s.freelist == obj || s.inuse == 0 {
                self.report(obj as usize, SlabErrorKind::DoubleFree);
                result = Err(SlabErrorKind::DoubleFree);
                continue;
            }
            if self.debug
                && let Err(kind) = self.free_debug_checks(s, obj, caller)
            {
                self.report(obj as usize, kind);
                if kind != SlabErrorKind::DoubleFree {
                    self.add_isolated(1);
                }
                result = Err(kind);
                continue;
            }
            // SAFETY: the object is allocated and being freed: we may write its free pointer.
            unsafe { self.set_freepointer(obj, s.freelist) };
            s.freelist = obj;
            let was_full = s.inuse == s.objects;
            s.inuse -= 1;
            // SAFETY: list membership follows `s.list`; the node lock is held.
            unsafe {
                if was_full {
                    n.full.remove(slab);
                    n.partial.push_back(slab, SlabListId::Partial);
                }
                if s.inuse == 0 && n.partial.nr > self.min_partial {
                    n.partial.remove(slab);
                    n.nr_slabs -= 1;
                    n.total_objects -= s.objects as usize;
                    s.next = discard;
                    discard = slab;
                }
            }
        }
        drop(locked);
        let mut freed = 0;
        while !discard.is_null() {
            // SAFETY: slabs on the local discard chain are empty and unlisted.
            unsafe {
                let next = (*discard).next;
                self.discard_slab(discard);
                discard = next;
            }
            freed += 1;
        }
        if freed != 0 {
            self.stat_add(Stat::FreeSlab, freed);
        }
        result
    }

    /// Gives back every empty slab of every node (the slab part of `kmem_cache_shrink`).
    pub(crate) fn discard_empty_slabs(&self) -> usize {
        let mut freed = 0;
        for node in self.nodes.iter() {
            let mut discard: *mut Slab = ptr::null_mut();
            {
                let mut n = node.list_lock.lock();
                let mut s = n.partial.first();
                while !s.is_null() {
                    // SAFETY: `s` is on the locked partial list.
                    unsafe {
                        let next = (*s).next;
                        if (*s).inuse == 0 {
                            n.partial.remove(s);
                            n.nr_slabs -= 1;
                            n.total_objects -= (*s).objects as usize;
                            (*s).next = discard;
                            discard = s;
                        }
                        s = next;
                    }
                }
            }
            while !discard.is_null() {
                // SAFETY: the slabs on the discard chain are empty and unlisted.
                unsafe {
                    let next = (*discard).next;
                    self.discard_slab(discard);
                    discard = next;
                }
                freed += 1;
            }
        }
        if freed != 0 {
            self.stat_add(Stat::FreeSlab, freed as u64);
        }
        freed
    }

    /// Addresses of every object still allocated, slab by slab (for `kmem_cache_destroy`).
    pub(crate) fn allocated_objects(&self) -> alloc::vec::Vec<usize> {
        let mut live = alloc::vec::Vec::new();
        for node in self.nodes.iter() {
            let n = node.list_lock.lock();
            for list in [&n.partial, &n.full] {
                let mut s = list.first();
                while !s.is_null() {
                    // SAFETY: `s` is on a locked list of this node.
                    let slab = unsafe { &*s };
                    let mut free = alloc::vec![false; slab.objects as usize];
                    let mut f = slab.freelist;
                    let mut steps = 0;
                    while !f.is_null() && steps < slab.objects {
                        if !self.is_object_of(slab, f as usize) {
                            break;
                        }
                        let first = slab.base as usize + self.layout.red_left_pad;
                        free[(f as usize - first) / self.layout.size] = true;
                        // SAFETY: `f` is a free object of the slab.
                        f = unsafe { self.get_freepointer(f) };
                        steps += 1;
                    }
                    for (i, is_free) in free.iter().enumerate() {
                        if !is_free {
                            live.push(
                                slab.base as usize
                                    + self.layout.red_left_pad
                                    + i * self.layout.size,
                            );
                        }
                    }
                    s = slab.next;
                }
            }
        }
        live
    }
}
