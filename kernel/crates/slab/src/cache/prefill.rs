//! Prefilled sheaves (`kmem_cache_prefill_sheaf` and friends): a reserve of objects a caller
//! takes before entering a section that must not fail.
//!
//! Safe code: a [`PrefilledSheaf`] wraps a [`SheafBox`](crate::sheaf::SheafBox).

// No unsafe code: the raw pointers are behind the types this file uses (see `lib.rs`).
#![deny(unsafe_code)]

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::KmemCache;
use crate::base::Gfp;
use crate::layout::MAX_SHEAF_CAPACITY;
use crate::platform::{Pinned, Platform};
use crate::report::SlabErrorKind;
use crate::sheaf::{PrefilledSheaf, RefillError};
use crate::stats::Stat;

impl<P: Platform> KmemCache<P> {
    /// This cache's identity in a [`PrefilledSheaf`]: its serial number, never reused.
    fn sheaf_owner(&self) -> (u64, crate::CacheName) {
        (self.serial, self.cache_name())
    }

    /// Whether `sheaf` belongs to this cache; if not, the misuse is reported.
    fn own_sheaf(&self, sheaf: &PrefilledSheaf) -> bool {
        if sheaf.cache.0 == self.serial {
            return true;
        }
        let at = core::ptr::from_ref(sheaf) as usize;
        self.report(
            at,
            SlabErrorKind::WrongCache {
                owner: sheaf.cache.1.clone(),
            },
        );
        false
    }

    /// Returns a sheaf holding at least `count` objects, for allocations that must not fail
    /// (`kmem_cache_prefill_sheaf`). `count` above the cache's sheaf capacity gives an oversize
    /// sheaf allocated for the occasion. `None` when memory is short, or when `count` is over
    /// [`MAX_SHEAF_CAPACITY`] (no sheaf can hold that many).
    #[doc(alias = "kmem_cache_prefill_sheaf")]
    pub fn prefill_sheaf(&self, gfp: Gfp, count: usize) -> Option<PrefilledSheaf> {
        if let Some(p) = self.alias_of() {
            return p.prefill_sheaf(gfp, count);
        }
        if count > MAX_SHEAF_CAPACITY {
            return None;
        }
        let pin = Pinned::new(&self.platform);
        let node = self.platform.cpu_to_node(pin.cpu());
        let sheaf = if count > self.sheaf_capacity || self.sheaf_capacity == 0 {
            self.stat_add(Stat::SheafPrefillOversize, 1);
            self.alloc_oversize_sheaf(count.max(1), node, gfp)?
        } else {
            let spare = pin
                .on_cpu()
                .and_then(|on| self.pcs(on).spare.take_if(|spare| spare.len() >= count));
            match spare {
                Some(spare) => {
                    self.stat_add(Stat::SheafPrefillFast, 1);
                    spare
                }
                None => {
                    self.stat_add(Stat::SheafPrefillSlow, 1);
                    match self.barns[node].get_full_sheaf() {
                        Some(full) => {
                            self.stat_add(Stat::BarnGet, 1);
                            full
                        }
                        None => {
                            self.stat_add(Stat::BarnGetFail, 1);
                            self.alloc_empty_sheaf(node, gfp)?
                        }
                    }
                }
            }
        };
        let mut p = PrefilledSheaf {
            sheaf,
            cache: self.sheaf_owner(),
        };
        // Out until `return_sheaf` takes it back: destroy refuses meanwhile.
        self.prefilled.fetch_add(1, Ordering::Relaxed);
        if self.refill_sheaf(gfp, &mut p, count).is_err() {
            let returned = self.return_sheaf(p);
            debug_assert!(returned.is_ok(), "a sheaf this cache just made is its own");
            return None;
        }
        Some(p)
    }

    /// Tops up a prefilled sheaf so it holds at least `count` objects
    /// (`kmem_cache_refill_sheaf`). A regular sheaf is filled to capacity; if `count` exceeds
    /// its capacity, the sheaf is exchanged for a bigger one. `Err` when memory is short (the
    /// sheaf keeps what it had) or when the sheaf belongs to another cache (reported).
    #[doc(alias = "kmem_cache_refill_sheaf")]
    pub fn refill_sheaf(
        &self,
        gfp: Gfp,
        sheaf: &mut PrefilledSheaf,
        count: usize,
    ) -> Result<(), RefillError> {
        if let Some(p) = self.alias_of() {
            return p.refill_sheaf(gfp, sheaf, count);
        }
        if !self.own_sheaf(sheaf) {
            return Err(RefillError::WrongCache);
        }
        let s = &sheaf.sheaf;
        let (size, cap, regular) = (s.len(), s.capacity(), s.oversize_order().is_none());
        if size >= count {
            return Ok(());
        }
        if count > cap {
            let bigger = self
                .prefill_sheaf(gfp, count)
                .ok_or(RefillError::OutOfMemory)?;
            let old = core::mem::replace(sheaf, bigger);
            let returned = self.return_sheaf(old);
            debug_assert!(returned.is_ok(), "the old sheaf was checked above");
            return Ok(());
        }
        let pin = Pinned::new(&self.platform);
        let node = self.platform.cpu_to_node(pin.cpu());
        let target = if regular { cap } else { count };
        self.refill_from_slabs(&mut sheaf.sheaf, target, node, gfp);
        if sheaf.sheaf.len() < count {
            Err(RefillError::OutOfMemory)
        } else {
            Ok(())
        }
    }

    /// Allocates from a prefilled sheaf (`kmem_cache_alloc_from_sheaf`): cannot fail while the
    /// sheaf holds objects, and returns `None` (no fallback to the cache) once it is empty, or
    /// (reported) when the sheaf belongs to another cache.
    #[doc(alias = "kmem_cache_alloc_from_sheaf")]
    pub fn alloc_from_sheaf(&self, gfp: Gfp, sheaf: &mut PrefilledSheaf) -> Option<NonNull<u8>> {
        if let Some(p) = self.alias_of() {
            return p.alloc_from_sheaf(gfp, sheaf);
        }
        if !self.own_sheaf(sheaf) {
            return None;
        }
        let obj = sheaf.sheaf.pop()?;
        // Served from a sheaf: a fast-path allocation (every allocation counts once).
        let (guard, cpu) = self.platform.pin();
        self.cpu_stats[cpu].add(Stat::AllocFastpath, 1);
        if self.multi_node {
            // The sheaf may have been filled on another node's CPU.
            let cpu_node = self.cpu_sheaves[cpu + 1].node;
            self.cross_node(cpu_node, self.platform.page_node(obj.as_ptr() as usize), 1);
        }
        drop(guard);
        Some(self.hand_out(obj, gfp))
    }

    /// Number of objects left in a prefilled sheaf (`kmem_cache_sheaf_size`).
    #[doc(alias = "kmem_cache_sheaf_size")]
    pub fn sheaf_size(&self, sheaf: &PrefilledSheaf) -> usize {
        sheaf.sheaf.len()
    }

    /// Gives a prefilled sheaf back (`kmem_cache_return_sheaf`): it becomes this CPU's spare if
    /// there is none; else it is refilled and put in the barn if the barn has room; else its
    /// objects are flushed to the slabs and it is freed. Oversize sheaves are always flushed
    /// and freed. A sheaf of another cache is reported and given back (`Err`): its objects
    /// must not enter this cache.
    #[doc(alias = "kmem_cache_return_sheaf")]
    pub fn return_sheaf(&self, sheaf: PrefilledSheaf) -> Result<(), PrefilledSheaf> {
        if let Some(p) = self.alias_of() {
            return p.return_sheaf(sheaf);
        }
        if !self.own_sheaf(&sheaf) {
            return Err(sheaf);
        }
        let mut s = sheaf.sheaf;
        self.prefilled.fetch_sub(1, Ordering::Relaxed);
        if s.oversize_order().is_none() {
            let pin = Pinned::new(&self.platform);
            let node = match pin.on_cpu() {
                Some(on) => {
                    let pcs = self.pcs(on);
                    if pcs.spare.is_none() {
                        *pcs.spare = Some(s);
                        self.cpu_stats[on.cpu()].add(Stat::SheafReturnFast, 1);
                        return Ok(());
                    }
                    pcs.node
                }
                None => self.platform.cpu_to_node(pin.cpu()),
            };
            self.stat_add(Stat::SheafReturnSlow, 1);
            let cap = s.capacity();
            self.refill_from_slabs(&mut s, cap, node, Gfp::ATOMIC);
            if s.len() == cap {
                match self.barns[node].put_full_sheaf(s) {
                    Ok(()) => {
                        self.stat_add(Stat::BarnPut, 1);
                        return Ok(());
                    }
                    Err(back) => {
                        self.stat_add(Stat::BarnPutFail, 1);
                        s = back;
                    }
                }
            }
        }
        self.sheaf_flush(&mut s);
        self.free_sheaf(s);
        Ok(())
    }
}
