//! The sheaf slow paths of a cache: what happens when a CPU's `main` sheaf is empty
//! (allocation) or full (free): swap with the spare, trade at the barn, refill from or flush to
//! the slabs. Also the flushing of a CPU's sheaves and of the barns (shrink, destroy).

use core::ptr::{self, NonNull};

use super::KmemCache;
use crate::barn::ReplaceFull;
use crate::base::{Gfp, cpu_slot, get_order, slot_cpu};
use crate::layout::{SHEAF_HEADER, WORD};
use crate::platform::Platform;
use crate::report::SlabReport;
use crate::sheaf::{NOT_OVERSIZE, PerCpuSheaves, SHEAF_FLUSH_BATCH, Sheaf, empty_sheaf};
use crate::stats::Stat;

impl<P: Platform> KmemCache<P> {
    /// The sheaves of `cpu`.
    ///
    /// # Safety
    /// The caller is pinned to `cpu` (or nobody else uses the cache), and holds no other
    /// reference to that CPU's sheaves.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn pcs(&self, cpu: usize) -> PerCpuSheaves<'_> {
        let slot = &self.cpu_sheaves[cpu + 1];
        // SAFETY: caller contract: this CPU's sheaves are exclusively ours.
        unsafe {
            PerCpuSheaves {
                main: &mut *slot.main.get(),
                spare: &mut *slot.spare.get(),
                rcu_free: &mut *slot.rcu_free.get(),
                node: slot.node,
            }
        }
    }

    /// The `push_limit` of this cache's sheaves of `capacity` (see [`Sheaf::push_limit`]).
    fn push_limit(&self, capacity: usize) -> u32 {
        if self.multi_node { 0 } else { capacity as u32 }
    }

    /// Allocates an empty sheaf of this cache's capacity from its sheaf cache
    /// (`alloc_empty_sheaf`).
    pub(crate) fn alloc_empty_sheaf(&self, node: usize, gfp: Gfp) -> Option<NonNull<Sheaf>> {
        let sc = self.sheaf_cache.as_ref()?;
        let s = sc.alloc(gfp)?.cast::<Sheaf>();
        // SAFETY: the object is big enough for a header and `sheaf_capacity` pointers.
        unsafe {
            s.as_ptr().write(Sheaf {
                capacity: self.sheaf_capacity as u32,
                node: node as u32,
                cache: self as *const Self as usize,
                push_limit: self.push_limit(self.sheaf_capacity),
                ..Sheaf::header(0, 0)
            });
        }
        self.stat_add(Stat::SheafAlloc, 1);
        Some(s)
    }

    /// Allocates an oversize sheaf for `capacity` objects from whole pages.
    pub(super) fn alloc_oversize_sheaf(
        &self,
        capacity: usize,
        node: usize,
        gfp: Gfp,
    ) -> Option<NonNull<Sheaf>> {
        let order = get_order(SHEAF_HEADER + capacity * WORD);
        let p = self.platform.alloc_pages(order, node, gfp)?.cast::<Sheaf>();
        // SAFETY: the block holds the header and `capacity` pointers.
        unsafe {
            p.as_ptr().write(Sheaf {
                capacity: capacity as u32,
                node: node as u32,
                oversize_order: order,
                cache: self as *const Self as usize,
                push_limit: self.push_limit(capacity),
                ..Sheaf::header(0, 0)
            });
        }
        self.stat_add(Stat::SheafAlloc, 1);
        Some(p)
    }

    /// Frees an empty sheaf structure (`free_empty_sheaf`).
    ///
    /// # Safety
    /// `s` must be an empty sheaf of this cache, owned by the caller.
    pub(crate) unsafe fn free_sheaf(&self, s: NonNull<Sheaf>) {
        // SAFETY: the caller owns the sheaf; it came from the sheaf cache or from pages.
        unsafe {
            debug_assert_eq!(s.as_ref().size, 0);
            let order = s.as_ref().oversize_order;
            if order == NOT_OVERSIZE {
                let sc = self
                    .sheaf_cache
                    .as_ref()
                    .expect("regular sheaf implies a sheaf cache");
                let _ = sc.free(s.cast());
            } else {
                self.platform.free_pages(s.cast(), order);
            }
        }
        self.stat_add(Stat::SheafFree, 1);
    }

    /// Fills `sheaf` from the slabs of `node` up to `target` objects (`refill_sheaf`); returns
    /// how many were added.
    ///
    /// # Safety
    /// The caller owns `sheaf`, a real sheaf of this cache, and `target <= capacity`.
    pub(crate) unsafe fn refill_from_slabs(
        &self,
        sheaf: *mut Sheaf,
        target: usize,
        node: usize,
        gfp: Gfp,
    ) -> usize {
        // SAFETY: the caller owns the sheaf; slots `size..target` are inside its array.
        let got = unsafe {
            let size = (*sheaf).size as usize;
            if size >= target {
                return 0;
            }
            let slots =
                core::slice::from_raw_parts_mut(Sheaf::objects(sheaf).add(size), target - size);
            let got = self.alloc_from_slabs(node, gfp, slots, 0);
            (*sheaf).size += got as u32;
            got
        };
        self.stat_add(Stat::SheafRefill, got as u64);
        got
    }

    /// Returns every object of `sheaf` to the slabs, [`SHEAF_FLUSH_BATCH`] at a time
    /// (`sheaf_flush_unused`): each batch is copied out of the sheaf first, so the slab locks
    /// are taken with the sheaf already consistent.
    ///
    /// # Safety
    /// The caller owns `sheaf` (a real sheaf of this cache).
    pub(crate) unsafe fn sheaf_flush(&self, sheaf: *mut Sheaf) {
        let mut batch = [ptr::null_mut(); SHEAF_FLUSH_BATCH];
        loop {
            // SAFETY: the caller owns the sheaf; the copied range is below `size`.
            let n = unsafe {
                let size = (*sheaf).size as usize;
                if size == 0 {
                    return;
                }
                let n = size.min(SHEAF_FLUSH_BATCH);
                ptr::copy_nonoverlapping(
                    Sheaf::objects(sheaf).add(size - n),
                    batch.as_mut_ptr(),
                    n,
                );
                (*sheaf).size = (size - n) as u32;
                n
            };
            // SAFETY: the objects came out of a sheaf of this cache, so they are allocated
            // objects of this cache no longer used by anyone.
            let _ = unsafe { self.free_to_slabs(&batch[..n], 0) };
            self.stat_add(Stat::SheafFlush, n as u64);
        }
    }

    /// Allocation slow path: `main` of `slot` (from [`Platform::pin_fast`]) is empty, or
    /// `slot` is 0 and the CPU still has to be asked for with [`Platform::pin`].
    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_slow(&self, slot: usize, gfp: Gfp, caller: usize) -> Option<*mut u8> {
        if slot != 0 {
            return self.alloc_refill(slot_cpu(slot), gfp, caller);
        }
        let (_guard, cpu) = self.platform.pin();
        // SAFETY: pinned to `cpu`: its main sheaf is ours, and always a valid sheaf.
        unsafe {
            let main = *self.main_slot(cpu_slot(cpu));
            if (*main).size != 0 {
                (*main).size -= 1;
                return Some(*Sheaf::objects(main).add((*main).size as usize));
            }
        }
        self.alloc_refill(cpu, gfp, caller)
    }

    /// Allocation with `main` empty, pinned to `cpu`.
    ///
    /// Swap with a non-empty spare; else trade the empty main for a full sheaf from the barn;
    /// else refill main from the slabs. A cache without sheaves takes one object from the slabs.
    fn alloc_refill(&self, cpu: usize, gfp: Gfp, caller: usize) -> Option<*mut u8> {
        // SAFETY: the caller is pinned to `cpu`.
        let pcs = unsafe { self.pcs(cpu) };
        let stats = &self.cpu_stats[cpu];
        stats.add(Stat::AllocSlowpath, 1);
        let main = *pcs.main;
        // SAFETY: `main` is always a valid sheaf, and we are pinned to this CPU.
        unsafe {
            if (*main).capacity == 0 {
                let mut one = [ptr::null_mut()];
                return (self.alloc_from_slabs(pcs.node, gfp, &mut one, caller) == 1)
                    .then_some(one[0]);
            }
            let spare = *pcs.spare;
            if !spare.is_null() && (*spare).size != 0 {
                *pcs.spare = main;
                *pcs.main = spare;
            } else {
                match self.barns[pcs.node].replace_empty_sheaf(NonNull::new_unchecked(main)) {
                    Ok((full, extra)) => {
                        stats.add(Stat::BarnGet, 1);
                        *pcs.main = full.as_ptr();
                        if let Some(e) = extra {
                            if (*pcs.spare).is_null() {
                                *pcs.spare = e.as_ptr();
                            } else {
                                self.free_sheaf(e);
                            }
                        }
                    }
                    Err(_) => {
                        stats.add(Stat::BarnGetFail, 1);
                        let cap = (*main).capacity as usize;
                        if self.refill_from_slabs(main, cap, pcs.node, gfp) == 0 {
                            return None;
                        }
                    }
                }
            }
            let main = *pcs.main;
            (*main).size -= 1;
            Some(*Sheaf::objects(main).add((*main).size as usize))
        }
    }

    /// Free slow path: `main` of `slot` (from [`Platform::pin_fast`]) is full (or absent),
    /// the cache is on a multi-node machine (remote-node test), or `slot` is 0 and the CPU
    /// still has to be asked for with [`Platform::pin`].
    #[cold]
    #[inline(never)]
    pub(crate) fn free_slow(
        &self,
        slot: usize,
        obj: *mut u8,
        caller: usize,
    ) -> Result<(), SlabReport> {
        if slot != 0 {
            return self.free_flush(slot_cpu(slot), obj, caller);
        }
        let (_guard, cpu) = self.platform.pin();
        self.free_flush(cpu, obj, caller)
    }

    /// Free with the object remote or `main` full, pinned to `cpu` (also takes the defensive
    /// case of a local object and room in `main`).
    ///
    /// No spare: get an empty sheaf (barn, else a new one) and make main the spare. Spare not
    /// full: swap. Both full: hand main to the barn for an empty sheaf; if the barn refuses,
    /// flush the spare to the slabs and swap it in.
    fn free_flush(&self, cpu: usize, obj: *mut u8, caller: usize) -> Result<(), SlabReport> {
        // SAFETY: the caller is pinned to `cpu`.
        let pcs = unsafe { self.pcs(cpu) };
        let stats = &self.cpu_stats[cpu];
        let main = *pcs.main;
        // SAFETY: `main` is always valid, we are pinned, and the caller passes an object of
        // this cache that is no longer used (checked at the slab for slab-bound objects).
        unsafe {
            let remote = self.multi_node && self.platform.page_node(obj as usize) != pcs.node;
            if !remote && (*main).size < (*main).capacity {
                // What the fast path does, for a local object of a multi-node cache or when
                // the fast path could not tell the CPU.
                self.push(main, obj);
                #[cfg(feature = "fastpath-stats")]
                stats.add(Stat::FreeFastpath, 1);
                return Ok(());
            }
            stats.add(Stat::FreeSlowpath, 1);
            if (*main).capacity == 0 || remote {
                if remote {
                    stats.add(Stat::FreeRemoteNode, 1);
                }
                return self
                    .free_to_slabs(&[obj], caller)
                    .map_err(|kind| self.make_report(obj as usize, kind));
            }
            let spare = *pcs.spare;
            if spare.is_null() {
                let empty = match self.barns[pcs.node].get_empty_sheaf() {
                    Some(e) => {
                        stats.add(Stat::BarnGet, 1);
                        Some(e)
                    }
                    None => {
                        stats.add(Stat::BarnGetFail, 1);
                        self.alloc_empty_sheaf(pcs.node, Gfp::ATOMIC)
                    }
                };
                match empty {
                    Some(e) => {
                        *pcs.spare = main;
                        *pcs.main = e.as_ptr();
                    }
                    None => {
                        return self
                            .free_to_slabs(&[obj], caller)
                            .map_err(|k| self.make_report(obj as usize, k));
                    }
                }
            } else if (*spare).size < (*spare).capacity {
                *pcs.spare = main;
                *pcs.main = spare;
            } else {
                let barn = &self.barns[pcs.node];
                let swapped = match barn.replace_full_sheaf(NonNull::new_unchecked(main)) {
                    Ok(empty) => {
                        *pcs.main = empty.as_ptr();
                        true
                    }
                    Err(ReplaceFull::Refused(_)) => false,
                    Err(ReplaceFull::NoEmpty(_)) => {
                        match self.alloc_empty_sheaf(pcs.node, Gfp::ATOMIC) {
                            Some(e) => match barn.put_full_sheaf(NonNull::new_unchecked(main)) {
                                Ok(()) => {
                                    *pcs.main = e.as_ptr();
                                    true
                                }
                                Err(_) => {
                                    // Another CPU filled the barn meanwhile.
                                    self.free_sheaf(e);
                                    false
                                }
                            },
                            None => false,
                        }
                    }
                };
                stats.add(
                    if swapped {
                        Stat::BarnPut
                    } else {
                        Stat::BarnPutFail
                    },
                    1,
                );
                if !swapped {
                    self.sheaf_flush(spare);
                    *pcs.spare = main;
                    *pcs.main = spare;
                }
            }
            self.push(*pcs.main, obj);
        }
        Ok(())
    }

    /// Pushes `obj` on a sheaf known to have room.
    ///
    /// # Safety
    /// `s` is a real sheaf owned by the current CPU with `size < capacity`.
    #[inline(always)]
    unsafe fn push(&self, s: *mut Sheaf, obj: *mut u8) {
        // SAFETY: caller contract.
        unsafe {
            let size = (*s).size;
            *Sheaf::objects(s).add(size as usize) = obj;
            (*s).size = size + 1;
        }
    }

    /// Flushes one CPU's main and spare sheaves to the slabs and frees the spare
    /// (`pcs_flush_all`). With `release_main`, main is freed too and replaced by the static
    /// empty sheaf (cache destruction).
    ///
    /// # Safety
    /// Either `cpu` is the current pinned CPU, or no other context uses this cache at all.
    pub(crate) unsafe fn pcs_flush(&self, cpu: usize, release_main: bool) {
        // SAFETY: caller contract: nobody else touches this CPU's sheaves.
        unsafe {
            let pcs = self.pcs(cpu);
            let main = *pcs.main;
            if (*main).capacity != 0 {
                self.sheaf_flush(main);
                if release_main {
                    *pcs.main = empty_sheaf();
                    self.free_sheaf(NonNull::new_unchecked(main));
                }
            }
            if let Some(spare) = NonNull::new(*pcs.spare) {
                *pcs.spare = ptr::null_mut();
                self.sheaf_flush(spare.as_ptr());
                self.free_sheaf(spare);
            }
        }
    }

    /// Empties every barn: full sheaves are flushed to slabs, all sheaves are freed.
    pub(crate) fn barns_shrink(&self) {
        for barn in self.barns.iter() {
            barn.shrink(|s| {
                // SAFETY: sheaves taken out of the barn belong to us now.
                unsafe {
                    self.sheaf_flush(s.as_ptr());
                    self.free_sheaf(s);
                }
            });
        }
    }
}
