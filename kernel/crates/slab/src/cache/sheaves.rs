//! The sheaf slow paths of a cache: what happens when a CPU's `main` sheaf is empty
//! (allocation) or full (free): swap with the spare, trade at the barn, refill from or flush to
//! the slabs. Also the flushing of a CPU's sheaves and of the barns (shrink, destroy).
//!
//! Safe code: sheaves are [`SheafBox`]es, objects `FreeObject`s, and a CPU's sheaves are
//! borrowed with `KmemCache::pcs` under a pin (`OnCpu`). The `#[cold]` entry points that
//! turn the fast paths' slot into a pin are in `cache.rs`.

// No unsafe code: the raw pointers are behind the types this file uses (see `lib.rs`).
#![deny(unsafe_code)]

use super::KmemCache;
use crate::barn::ReplaceFull;
use crate::base::Gfp;
use crate::flags::SlabFlags;
use crate::platform::{OnCpu, Pinned, Platform};
use crate::report::{SlabErrorKind, SlabReport};
use crate::sheaf::{PerCpuSheaves, SHEAF_FLUSH_BATCH, SheafBox};
use crate::slabs::FreeObject;
use crate::stats::Stat;

impl<P: Platform> KmemCache<P> {
    /// Fills `sheaf` from the slabs of `node` up to `target` objects (at most its capacity;
    /// `refill_sheaf`); returns how many were added.
    pub(crate) fn refill_from_slabs(
        &self,
        sheaf: &mut SheafBox,
        target: usize,
        node: usize,
        gfp: Gfp,
    ) -> usize {
        if sheaf.len() >= target {
            return 0;
        }
        let got = sheaf.fill(target, |slots| {
            self.alloc_from_slabs(node, gfp, slots, 0);
        });
        self.stat_add(Stat::SheafRefill, got as u64);
        got
    }

    /// Returns every object of `sheaf` to the slabs, [`SHEAF_FLUSH_BATCH`] at a time
    /// (`sheaf_flush_unused`): each batch is taken out of the sheaf first, so the slab locks
    /// are taken with the sheaf already consistent.
    pub(crate) fn sheaf_flush(&self, sheaf: &mut SheafBox) {
        let mut batch = [const { None }; SHEAF_FLUSH_BATCH];
        loop {
            let n = sheaf.take_batch(&mut batch);
            if n == 0 {
                return;
            }
            let _ = self.free_to_slabs(batch[..n].iter_mut().filter_map(Option::take), 0);
            self.stat_add(Stat::SheafFlush, n as u64);
        }
    }

    /// Allocation with the CPU asked for by [`Platform::pin`]: the fast path once more, then
    /// [`Self::alloc_refill`].
    pub(crate) fn alloc_pinned(
        &self,
        on: OnCpu<'_>,
        gfp: Gfp,
        caller: usize,
    ) -> Option<FreeObject> {
        if let Some(obj) = self.pcs(on).main.get().and_then(SheafBox::pop) {
            // The fast path's work, done here: counted as it (every allocation counts once).
            self.cpu_stats[on.cpu()].add(Stat::AllocFastpath, 1);
            return Some(obj);
        }
        self.alloc_refill(on, gfp, caller)
    }

    /// Allocation with `main` empty, pinned to `on`'s CPU.
    ///
    /// Swap with a non-empty spare; else trade the empty main for a full sheaf from the barn;
    /// else refill main from the slabs. A cache without sheaves takes one object from the slabs.
    pub(crate) fn alloc_refill(
        &self,
        on: OnCpu<'_>,
        gfp: Gfp,
        caller: usize,
    ) -> Option<FreeObject> {
        let stats = &self.cpu_stats[on.cpu()];
        stats.add(Stat::AllocSlowpath, 1);
        let pcs = self.pcs(on);
        let node = pcs.node;
        let Some(main) = pcs.main.get() else {
            let mut one = [None];
            self.alloc_from_slabs(node, gfp, &mut one, caller);
            return one[0].take();
        };
        // LAB(sheaves) BEGIN
        // LAB-HINT: main is empty. In this order: swap with a non-empty spare; else trade the
        // LAB-HINT: empty main at the barn for a full sheaf (`Barn::replace_empty_sheaf`,
        // LAB-HINT: count `BarnGet`; an extra empty sheaf it hands back becomes the spare if
        // LAB-HINT: there is none, else is freed); else (count `BarnGetFail`) refill main from
        // LAB-HINT: the slabs (`refill_from_slabs`, a whole sheaf: `capacity()` objects) and put
        // LAB-HINT: it back. Then pop main (`None` if the refill got nothing: out of memory).
        // LAB-HINT: `pcs.main.take()` / `pcs.main.put(..)` move a real sheaf out and in.
        // LAB-STUB: // Until then: one object straight from the slabs, main stays empty.
        // LAB-STUB: let _ = (main, stats);
        // LAB-STUB: let mut one = [None];
        // LAB-STUB: self.alloc_from_slabs(node, gfp, &mut one, caller);
        // LAB-STUB: one[0].take()
        match pcs.spare.as_mut() {
            Some(spare) if !spare.is_empty() => core::mem::swap(main, spare),
            _ => {
                let empty = pcs.main.take().expect("a real main sheaf");
                match self.barns[node].replace_empty_sheaf(empty) {
                    Ok((full, extra)) => {
                        stats.add(Stat::BarnGet, 1);
                        pcs.main.put(full);
                        if let Some(e) = extra {
                            if pcs.spare.is_none() {
                                *pcs.spare = Some(e);
                            } else {
                                self.free_sheaf(e);
                            }
                        }
                    }
                    Err(mut empty) => {
                        stats.add(Stat::BarnGetFail, 1);
                        let cap = empty.capacity();
                        let got = self.refill_from_slabs(&mut empty, cap, node, gfp);
                        pcs.main.put(empty);
                        if got == 0 {
                            return None;
                        }
                    }
                }
            }
        }
        pcs.main.get().and_then(SheafBox::pop)
        // LAB(sheaves) END
    }

    /// The free checks on by default (`SLAB_HARDENED_FREE`, off under `slab_nohardened`):
    /// [`Self::check_free_pointer`]. The slow path's part: the fast path only tells good frees from
    /// the rest, which come here to be named.
    #[inline(always)]
    fn check_hardened_free(&self, obj: &FreeObject) -> Result<(), SlabReport> {
        if self.flags.contains(SlabFlags::SLAB_HARDENED_FREE) {
            return self.check_free_pointer(obj.into());
        }
        Ok(())
    }

    /// Whether `obj` is an object of this cache at an object boundary (Linux's
    /// `cache_from_obj`, plus the boundary); if not, the problem (`WrongCache` naming the
    /// owner, `NotObjectBoundary`, `NotSlabPage`) is reported and returned.
    pub(crate) fn check_free_pointer(&self, obj: core::ptr::NonNull<u8>) -> Result<(), SlabReport> {
        let addr = obj.as_ptr() as usize;
        self.obj_to_slab(addr).map(|_| ()).map_err(|kind| {
            self.report(addr, kind.clone());
            self.make_report(addr, kind)
        })
    }

    /// A free that must leave its CPU's sheaves alone (it interrupted a fast path that holds
    /// them): the object goes straight back to its slab, pinned to `cpu`.
    pub(crate) fn free_without_sheaves(
        &self,
        cpu: usize,
        obj: FreeObject,
        caller: usize,
    ) -> Result<(), SlabReport> {
        self.check_hardened_free(&obj)?;
        self.cpu_stats[cpu].add(Stat::FreeSlowpath, 1);
        self.free_one_to_slabs(obj, caller)
    }

    /// Frees one object to its slab, turning a problem into a report.
    fn free_one_to_slabs(&self, obj: FreeObject, caller: usize) -> Result<(), SlabReport> {
        let addr = obj.as_ptr() as usize;
        self.free_to_slabs([obj], caller)
            .map_err(|kind| self.make_report(addr, kind))
    }

    /// Free with the object remote or `main` full, pinned to `on`'s CPU (also takes the
    /// defensive case of a local object and room in `main`).
    ///
    /// No spare: get an empty sheaf (barn, else a new one) and make main the spare. Spare not
    /// full: swap. Both full: hand main to the barn for an empty sheaf; if the barn refuses,
    /// flush the spare to the slabs and swap it in.
    pub(crate) fn free_flush(
        &self,
        on: OnCpu<'_>,
        obj: FreeObject,
        caller: usize,
    ) -> Result<(), SlabReport> {
        let stats = &self.cpu_stats[on.cpu()];
        let mut pcs = self.pcs(on);
        let node = pcs.node;
        self.check_hardened_free(&obj)?;
        // The naive double free: the object is the one freed last, on top of the main sheaf
        // (the fast path sends it here for this check). It is reported and not pushed again.
        if pcs.main.get().is_some_and(|main| main.top_is(obj.as_ptr())) {
            let addr = obj.as_ptr() as usize;
            self.report(addr, SlabErrorKind::DoubleFree);
            return Err(self.make_report(addr, SlabErrorKind::DoubleFree));
        }
        let remote = self.multi_node && self.platform.page_node(obj.as_ptr() as usize) != node;
        let obj = match pcs.main.get() {
            // What the fast path does, for a local object of a multi-node cache or when the
            // fast path could not tell the CPU.
            Some(main) if !remote => match main.push(obj) {
                Ok(()) => {
                    stats.add(Stat::FreeFastpath, 1);
                    return Ok(());
                }
                Err(obj) => obj,
            },
            _ => obj,
        };
        stats.add(Stat::FreeSlowpath, 1);
        if remote || pcs.main.get().is_none() {
            if remote {
                stats.add(Stat::FreeRemoteNode, 1);
                self.cross_node(node, self.platform.page_node(obj.as_ptr() as usize), -1);
            }
            return self.free_one_to_slabs(obj, caller);
        }
        // LAB(sheaves) BEGIN
        // LAB-HINT: main is full (the object is local, main real). No spare: get an empty
        // LAB-HINT: sheaf (`Barn::get_empty_sheaf`, count `BarnGet`; else count `BarnGetFail`
        // LAB-HINT: and `alloc_empty_sheaf(node, Gfp::ATOMIC)`; none at all: free the object to
        // LAB-HINT: the slabs), make main the spare and the empty one main. A spare that is not
        // LAB-HINT: full: swap them. Both full: `free_both_full`. Then push the object on main.
        // LAB-STUB: // Until then: every free with main full goes to the slabs.
        // LAB-STUB: let _ = (&mut pcs, Self::free_both_full);
        // LAB-STUB: self.free_one_to_slabs(obj, caller)
        match pcs.spare.as_mut() {
            None => {
                let empty = match self.barns[node].get_empty_sheaf() {
                    Some(e) => {
                        stats.add(Stat::BarnGet, 1);
                        Some(e)
                    }
                    None => {
                        stats.add(Stat::BarnGetFail, 1);
                        self.alloc_empty_sheaf(node, Gfp::ATOMIC)
                    }
                };
                let Some(e) = empty else {
                    return self.free_one_to_slabs(obj, caller);
                };
                *pcs.spare = pcs.main.take();
                pcs.main.put(e);
            }
            Some(spare) if !spare.is_full() => {
                core::mem::swap(pcs.main.get().expect("a real main sheaf"), spare);
            }
            Some(_) => self.free_both_full(&mut pcs, on.cpu()),
        }
        match pcs.main.get().expect("a real main sheaf").push(obj) {
            Ok(()) => Ok(()),
            // Not reached: main was just made an empty or non-full sheaf.
            Err(obj) => self.free_one_to_slabs(obj, caller),
        }
        // LAB(sheaves) END
    }

    /// Free with main and spare full: trade main at the barn for an empty sheaf (allocating
    /// one when the barn has none); if the barn refuses, flush the spare and swap it in.
    fn free_both_full(&self, pcs: &mut PerCpuSheaves<'_>, cpu: usize) {
        // LAB(sheaves) BEGIN
        // LAB-HINT: `Barn::replace_full_sheaf(full main)`: `Ok(empty)` → main; `Refused(full)`
        // LAB-HINT: (the barn is full) → main back; `NoEmpty(full)` → a new empty sheaf
        // LAB-HINT: (`alloc_empty_sheaf(node, Gfp::ATOMIC)`) for main while the full one goes
        // LAB-HINT: in with `put_full_sheaf`. Count `BarnPut` or `BarnPutFail`. When main could
        // LAB-HINT: not be traded, flush the spare to the slabs (`sheaf_flush`) and swap it in.
        // LAB-STUB: let _ = (pcs, cpu, ReplaceFull::Refused);
        // LAB-STUB: todo!("lab sheaves: free_both_full")
        let stats = &self.cpu_stats[cpu];
        let barn = &self.barns[pcs.node];
        let full = pcs.main.take().expect("a real main sheaf");
        let swapped = match barn.replace_full_sheaf(full) {
            Ok(empty) => {
                pcs.main.put(empty);
                true
            }
            Err(ReplaceFull::Refused(full)) => {
                pcs.main.put(full);
                false
            }
            Err(ReplaceFull::NoEmpty(full)) => {
                match self.alloc_empty_sheaf(pcs.node, Gfp::ATOMIC) {
                    Some(e) => match barn.put_full_sheaf(full) {
                        Ok(()) => {
                            pcs.main.put(e);
                            true
                        }
                        Err(full) => {
                            // Another CPU filled the barn meanwhile.
                            pcs.main.put(full);
                            self.free_sheaf(e);
                            false
                        }
                    },
                    None => {
                        pcs.main.put(full);
                        false
                    }
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
            let spare = pcs.spare.as_mut().expect("a full spare");
            self.sheaf_flush(spare);
            core::mem::swap(pcs.main.get().expect("a real main sheaf"), spare);
        }
        // LAB(sheaves) END
    }

    /// Flushes one CPU's main and spare sheaves to the slabs and frees the spare
    /// (`pcs_flush_all`). With `release_main`, main is freed too and replaced by the static
    /// empty sheaf (cache destruction).
    pub(crate) fn pcs_flush(&self, pcs: &mut PerCpuSheaves<'_>, release_main: bool) {
        if let Some(main) = pcs.main.get() {
            self.sheaf_flush(main);
            if release_main && let Some(main) = pcs.main.take() {
                self.free_sheaf(main);
            }
        }
        if let Some(mut spare) = pcs.spare.take() {
            self.sheaf_flush(&mut spare);
            self.free_sheaf(spare);
        }
    }

    /// Empties every barn: full sheaves are flushed to slabs, all sheaves are freed.
    pub(crate) fn barns_shrink(&self) {
        // The node-list and barn locks spin: take them pinned, so that no holder is ever preempted
        // or interrupted by code that spins for them on its CPU (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
        for barn in self.barns.iter() {
            barn.shrink(|mut s| {
                self.sheaf_flush(&mut s);
                self.free_sheaf(s);
            });
        }
    }
}
