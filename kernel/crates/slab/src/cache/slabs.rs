//! The slab layer of a cache: new slabs, taking objects from and freeing them to the slabs of
//! a node, giving empty slabs back (Linux's `allocate_slab`, `get_partial`, `__slab_free`,
//! `discard_slab`).

use alloc::vec::Vec;
use core::ptr::{self, NonNull};

use super::{KmemCache, SlabInfo};
use crate::base::Gfp;
use crate::flags::SlabFlags;
use crate::platform::{Pinned, Platform};
use crate::report::SlabErrorKind;
use crate::slabs::{FreeObject, FreePointer, NodeLists, PageOwner, Slab, SlabListId};
use crate::stats::Stat;
use crate::sync::MutexGuard;

impl<P: Platform> KmemCache<P> {
    /// How this cache hardens its free pointers.
    #[inline]
    pub(crate) fn free_pointer(&self) -> FreePointer {
        FreePointer {
            offset: self.layout.offset,
            random: self.random,
            size: self.layout.size,
            red_left_pad: self.layout.red_left_pad,
        }
    }

    /// The cache a slab descriptor belongs to.
    ///
    /// # Safety
    /// `slab` is a live slab descriptor of a cache with platform type `P` (a page owner of
    /// that platform decoded as [`PageOwner::Slab`] is one: owners are set in
    /// `allocate_slab` and cleared before the descriptor dies in `discard_slab`, and a slab's
    /// cache outlives it). The cache must stay alive for `'a`.
    #[inline]
    pub(crate) unsafe fn of_slab<'a>(slab: NonNull<Slab>) -> &'a Self {
        // SAFETY: caller contract.
        unsafe { &*(slab.as_ref().cache as *const Self) }
    }

    /// Whether `obj` is an object of `slab`, a slab descriptor, and the slab is this cache's:
    /// the default free check of `kmem_cache_free`'s fast path, a compare and
    /// [`Self::is_object_fast`].
    #[inline(always)]
    pub(crate) fn is_own_object_fast(&self, slab: &Slab, obj: NonNull<u8>) -> bool {
        (slab.cache == self as *const Self as usize) & self.is_object_fast(slab, obj)
    }

    /// Whether `obj` is at an object boundary of `slab`, a slab of this cache (the fast paths'
    /// test, [`ObjIndex`]: a subtraction, a multiply and a comparison with the slab's
    /// `free_limit`). `obj` must lie in the slab's pages (its page owner is `slab`). Exact for a cache with sheaves, whose objects start at the slab's first
    /// byte (no left red zone); a debug cache's frees, which all take the slow path, are
    /// checked there in full.
    #[inline(always)]
    pub(crate) fn is_object_fast(&self, slab: &Slab, obj: NonNull<u8>) -> bool {
        let offset = (obj.as_ptr() as usize).wrapping_sub(slab.base as usize);
        self.obj_index.key(offset) < slab.free_limit
    }

    /// Is `addr` the address of an object slot of `slab`?
    pub(crate) fn is_object_of(&self, slab: &Slab, addr: usize) -> bool {
        slab.is_object(self.free_pointer(), addr)
    }

    /// Finds the slab of `addr`, checking that it is a slab page of this cache and that `addr`
    /// is at an object boundary.
    pub(crate) fn obj_to_slab(&self, addr: usize) -> Result<*mut Slab, SlabErrorKind> {
        let slab = self.own_slab(addr)?;
        // SAFETY: a slab owner of our platform is a live descriptor (see `of_slab`).
        if !self.is_object_of(unsafe { slab.as_ref() }, addr) {
            return Err(SlabErrorKind::NotObjectBoundary);
        }
        Ok(slab.as_ptr())
    }

    /// The slab of this cache whose pages hold `addr`: `NotSlabPage` for memory of no slab,
    /// `WrongCache` (naming the owner) for another cache's slab.
    fn own_slab(&self, addr: usize) -> Result<NonNull<Slab>, SlabErrorKind> {
        let PageOwner::Slab(slab) = PageOwner::decode(self.platform.page_owner(addr)) else {
            return Err(SlabErrorKind::NotSlabPage);
        };
        // SAFETY: a slab owner of our platform is a live descriptor (see `of_slab`).
        if unsafe { slab.as_ref() }.cache != self as *const Self as usize {
            // SAFETY: as above; caches sharing a platform have the same platform type `P`.
            let other = unsafe { Self::of_slab(slab) };
            return Err(SlabErrorKind::WrongCache {
                owner: other.cache_name(),
            });
        }
        Ok(slab)
    }

    /// The start of this cache's object whose slot contains `addr` (`None` if `addr` is in no
    /// slab of this cache, or in a slab's left red zone or unused tail).
    pub(crate) fn object_containing(&self, addr: usize) -> Option<NonNull<u8>> {
        let slab = self.own_slab(addr).ok()?;
        // SAFETY: a slab owner of our platform is a live descriptor (see `of_slab`).
        let s = unsafe { slab.as_ref() };
        let first = s.base as usize + self.layout.red_left_pad;
        let index = addr.checked_sub(first)? / self.layout.size;
        let start = first + index * self.layout.size;
        (self.is_object_of(s, start) && addr < start + self.layout.size)
            .then(|| NonNull::new(start as *mut u8))
            .flatten()
    }

    /// Allocates and initialises a new slab (`allocate_slab`): pages from the platform (the
    /// preferred order, else the minimum one), descriptor, debug patterns, constructor and a
    /// free list in address order. The slab is on no list yet.
    fn allocate_slab(&self, node: usize, gfp: Gfp) -> Option<*mut Slab> {
        let l = &self.layout;
        let (pages, order, objects) = match self.platform.alloc_pages(l.order, node, gfp) {
            Some(p) => (p, l.order, l.objects),
            None if l.min_order < l.order => {
                self.stat_add(Stat::OrderFallback, 1);
                (
                    self.platform.alloc_pages(l.min_order, node, gfp)?,
                    l.min_order,
                    l.min_objects,
                )
            }
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
                free_limit: self.obj_index.limit(objects),
                order: order as u8,
                node: self.platform.page_node(base as usize) as u16,
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
                // SAFETY: `obj` is a fresh object of this cache, in a slab nobody else sees
                // yet: what a `Ctor` is promised.
                unsafe { ctor(obj.cast()) };
            }
            // SAFETY: the object is free and ours.
            unsafe { self.free_pointer().set(obj, next) };
            next = obj;
        }
        // SAFETY: the descriptor was initialised above; the block belongs to us.
        unsafe {
            (*desc).freelist = next;
            let owner = PageOwner::Slab(NonNull::new_unchecked(desc)).encode();
            self.platform.set_page_owner(pages, order, owner);
        }
        Some(desc)
    }

    /// Gives an empty slab's pages back to the platform (`discard_slab`, `free_slab`), after
    /// checking its padding and, under `SLAB_CONSISTENCY_CHECKS`, its objects. Returns
    /// `false` when an object failed its checks: the slab is then kept, back on its node's
    /// lists with the bad objects isolated (`free_slab_checks`).
    ///
    /// # Safety
    /// `slab` must be empty, on no list and unreachable by other threads.
    pub(crate) unsafe fn discard_slab(&self, slab: *mut Slab) -> bool {
        // SAFETY: the slab is ours alone (caller contract); its block came from `alloc_pages`.
        unsafe {
            let (base, order) = ((*slab).base, u32::from((*slab).order));
            self.check_slab_padding(base, (*slab).objects as usize, order);
            if self.debug && self.free_slab_checks(&mut *slab) {
                self.relist_slab(slab);
                return false;
            }
            let base = NonNull::new_unchecked(base);
            self.platform.set_page_owner(base, order, 0);
            if self.flags.contains(SlabFlags::SLAB_TYPESAFE_BY_RCU) {
                self.platform.free_pages_rcu(base, order);
            } else {
                self.platform.free_pages(base, order);
            }
        }
        true
    }

    /// Puts a slab taken off its node's lists to be freed back on them (partial, or full when
    /// all its objects are in use), because it is kept after all.
    ///
    /// # Safety
    /// `slab` must be a slab of this cache on no list, unreachable by other threads, its
    /// `inuse` up to date.
    unsafe fn relist_slab(&self, slab: *mut Slab) {
        // SAFETY: the slab is ours alone (caller contract).
        let (node, objects, full) = unsafe {
            let s = &*slab;
            (s.node as usize, s.objects as usize, s.inuse == s.objects)
        };
        let mut n = self.nodes[node].list_lock.lock();
        n.nr_slabs += 1;
        n.total_objects += objects;
        // SAFETY: on no list; its node lock is held.
        unsafe {
            if full {
                n.full.push_front(slab, SlabListId::Full);
            } else {
                n.partial.push_back(slab, SlabListId::Partial);
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
    unsafe fn take_from_slab(
        &self,
        slab: *mut Slab,
        out: &mut [Option<FreeObject>],
        caller: usize,
    ) -> usize {
        // SAFETY: the node lock is held (caller contract), so the slab is ours to modify.
        let s = unsafe { &mut *slab };
        let fp = self.free_pointer();
        let mut got = 0;
        while got < out.len() {
            let obj = match s.freelist_pop(fp) {
                Ok(Some(obj)) => obj,
                Ok(None) => break,
                Err(obj) => {
                    self.report(obj as usize, SlabErrorKind::FreelistCorrupted);
                    self.add_isolated((s.objects - s.inuse) as usize);
                    s.inuse = s.objects;
                    break;
                }
            };
            s.inuse += 1;
            if self.debug && !self.alloc_debug_checks(obj.as_ptr(), caller) {
                self.isolate(obj.as_ptr() as usize);
                continue; // isolated: stays counted as in use, never handed out
            }
            out[got] = Some(obj);
            got += 1;
        }
        got
    }

    /// Fills `out` with objects from the slabs of `node` (`get_partial` + `new_slab`): partial
    /// slabs first, then fresh slabs. Returns how many objects were obtained (in `out[..n]`);
    /// fewer than asked only when the page source is out of memory.
    pub(crate) fn alloc_from_slabs(
        &self,
        node: usize,
        gfp: Gfp,
        out: &mut [Option<FreeObject>],
        caller: usize,
    ) -> usize {
        // The node-list and barn locks spin: take them pinned, so that no holder is ever preempted
        // or interrupted by code that spins for them on its CPU (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
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
    /// Every object is an object of this cache no longer in use or something the checks
    /// reject ([`FreeObject`]'s contract: debug caches check everything; other caches check
    /// the page, the cache, the object boundary and the free-list head).
    pub(crate) fn free_to_slabs(
        &self,
        objs: impl IntoIterator<Item = FreeObject>,
        caller: usize,
    ) -> Result<(), SlabErrorKind> {
        // The node-list and barn locks spin: take them pinned, so that no holder is ever preempted
        // or interrupted by code that spins for them on its CPU (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
        let mut result = Ok(());
        let mut discard: *mut Slab = ptr::null_mut();
        let mut locked: Option<(usize, MutexGuard<'_, NodeLists>)> = None;
        // Slabs moved onto / taken off a partial list, counted once the lock is dropped.
        let (mut added, mut removed) = (0u64, 0u64);
        for free_obj in objs {
            let obj = free_obj.as_ptr();
            let slab = match self.obj_to_slab(obj as usize) {
                Ok(s) => s,
                Err(kind) => {
                    self.report(obj as usize, kind.clone());
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
            // Every double free that reaches a slab is caught here: the object is on the free
            // list already (it holds a valid link), or the slab has nothing in use. An object
            // isolated by an earlier failed check was not freed then: freeing it again is one
            // too, and must not count it twice.
            if s.inuse == 0
                || s.freelist_head() == obj
                || s.holds_free_link(self.free_pointer(), obj)
                || (self.debug && self.is_isolated(obj as usize))
            {
                self.report(obj as usize, SlabErrorKind::DoubleFree);
                result = Err(SlabErrorKind::DoubleFree);
                continue;
            }
            if self.debug
                && let Err(kind) = self.free_debug_checks(s, obj, caller)
            {
                self.report(obj as usize, kind.clone());
                if kind != SlabErrorKind::DoubleFree {
                    self.isolate(obj as usize);
                }
                result = Err(kind);
                continue;
            }
            s.freelist_push(self.free_pointer(), free_obj);
            let was_full = s.inuse == s.objects;
            s.inuse -= 1;
            // SAFETY: list membership follows `s.list`; the node lock is held.
            unsafe {
                if was_full {
                    n.full.remove(slab);
                    n.partial.push_back(slab, SlabListId::Partial);
                    added += 1;
                }
                if s.inuse == 0 && n.partial.nr > self.min_partial {
                    n.partial.remove(slab);
                    removed += 1;
                    n.nr_slabs -= 1;
                    n.total_objects -= s.objects as usize;
                    s.next = discard;
                    discard = slab;
                }
            }
        }
        drop(locked);
        if added != 0 {
            self.stat_add(Stat::FreeAddPartial, added);
        }
        if removed != 0 {
            self.stat_add(Stat::FreeRemovePartial, removed);
        }
        // SAFETY: the chain holds empty slabs taken off their lists above.
        unsafe { self.discard_chain(discard) };
        result
    }

    /// Gives back every slab of a chain linked through `next` (counting `free_slab`); returns
    /// how many were freed (a slab kept because a free object in it was corrupted is not).
    ///
    /// # Safety
    /// Every slab on the chain is empty and on no list, and the chain is the caller's alone.
    unsafe fn discard_chain(&self, mut discard: *mut Slab) -> usize {
        // The node-list and barn locks spin: take them pinned, so that no holder is ever preempted
        // or interrupted by code that spins for them on its CPU (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
        let mut freed = 0;
        while !discard.is_null() {
            // SAFETY: caller contract.
            unsafe {
                let next = (*discard).next;
                if self.discard_slab(discard) {
                    freed += 1;
                }
                discard = next;
            }
        }
        if freed != 0 {
            self.stat_add(Stat::FreeSlab, freed as u64);
        }
        freed
    }

    /// Calls `f` on every slab of every node's partial and full lists, with the node's lock
    /// held (`f` must not allocate from or free to this cache).
    pub(crate) fn for_each_slab(&self, mut f: impl FnMut(&Slab)) {
        // The node-list and barn locks spin: take them pinned, so that no holder is ever preempted
        // or interrupted by code that spins for them on its CPU (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
        for node in self.nodes.iter() {
            let n = node.list_lock.lock();
            for list in [&n.partial, &n.full] {
                let mut s = list.first();
                while !s.is_null() {
                    // SAFETY: `s` is on a list of this node, whose lock is held.
                    let slab = unsafe { &*s };
                    f(slab);
                    s = slab.next;
                }
            }
        }
    }

    /// Gives back every empty slab of every node (the slab part of `kmem_cache_shrink`).
    pub(crate) fn discard_empty_slabs(&self) -> usize {
        // The node-list and barn locks spin: take them pinned, so that no holder is ever preempted
        // or interrupted by code that spins for them on its CPU (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
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
            // SAFETY: the chain holds empty slabs taken off their list above.
            freed += unsafe { self.discard_chain(discard) };
        }
        freed
    }

    /// Addresses of every object still allocated, slab by slab (for `kmem_cache_destroy`).
    pub(crate) fn allocated_objects(&self) -> Vec<usize> {
        let mut live = Vec::new();
        let fp = self.free_pointer();
        let first = |slab: &Slab| slab.base as usize + self.layout.red_left_pad;
        self.for_each_slab(|slab| {
            let mut free = alloc::vec![false; slab.objects as usize];
            for f in slab.freelist_iter(fp) {
                if !slab.is_object(fp, f as usize) {
                    break;
                }
                free[(f as usize - first(slab)) / self.layout.size] = true;
            }
            for (i, is_free) in free.iter().enumerate() {
                if !is_free {
                    live.push(first(slab) + i * self.layout.size);
                }
            }
        });
        live
    }

    /// Slab and object counts, summed over nodes.
    pub fn slabinfo(&self) -> SlabInfo {
        if let Some(p) = self.alias_of() {
            return p.slabinfo();
        }
        (0..self.nodes.len())
            .map(|node| self.node_slabinfo(node))
            .fold(SlabInfo::default(), |a, n| SlabInfo {
                active_objs: a.active_objs + n.active_objs,
                num_objs: a.num_objs + n.num_objs,
                active_slabs: a.active_slabs + n.active_slabs,
                num_slabs: a.num_slabs + n.num_slabs,
                nr_partial: a.nr_partial + n.nr_partial,
                partial_objs: a.partial_objs + n.partial_objs,
            })
    }

    /// [`Self::slabinfo`] of node `node` alone, counted under its list lock.
    pub fn node_slabinfo(&self, node: usize) -> SlabInfo {
        // The node-list and barn locks spin: take them pinned, so that no holder is ever preempted
        // or interrupted by code that spins for them on its CPU (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
        let n = self.nodes[node].list_lock.lock();
        let mut info = SlabInfo {
            num_slabs: n.nr_slabs,
            num_objs: n.total_objects,
            nr_partial: n.partial.nr,
            ..SlabInfo::default()
        };
        for (list, partial) in [(&n.partial, true), (&n.full, false)] {
            let mut s = list.first();
            while !s.is_null() {
                // SAFETY: `s` is on a locked list.
                let slab = unsafe { &*s };
                info.active_objs += slab.inuse as usize;
                info.active_slabs += (slab.inuse != 0) as usize;
                if partial {
                    info.partial_objs += slab.inuse as usize;
                }
                s = slab.next;
            }
        }
        info
    }
}
