//! Prefilled sheaves (`kmem_cache_prefill_sheaf` and friends): a reserve of objects a caller
//! takes before entering a section that must not fail.
//!
//! Safe code: a [`PrefilledSheaf`] wraps a [`SheafBox`](crate::sheaf::SheafBox).

// No unsafe code: the raw pointers are behind the types this file uses (see `lib.rs`).
#![deny(unsafe_code)]

use core::ptr::NonNull;

use super::KmemCache;
use crate::base::Gfp;
use crate::platform::{Pinned, Platform};
use crate::sheaf::{OutOfMemory, PrefilledSheaf};
use crate::stats::Stat;

impl<P: Platform> KmemCache<P> {
    /// Returns a sheaf holding at least `count` objects, for allocations that must not fail
    /// (`kmem_cache_prefill_sheaf`). `count` above the cache's sheaf capacity gives an oversize
    /// sheaf allocated for the occasion. `None` when memory is short.
    #[doc(alias = "kmem_cache_prefill_sheaf")]
    pub fn prefill_sheaf(&self, gfp: Gfp, count: usize) -> Option<PrefilledSheaf> {
        let pin = Pinned::new(&self.platform);
        let node = self.platform.cpu_to_node(pin.cpu());
        self.stat_add(Stat::SheafPrefill, 1);
        let sheaf = if count > self.sheaf_capacity || self.sheaf_capacity == 0 {
            self.alloc_oversize_sheaf(count.max(1), node, gfp)?
        } else {
            let spare = self
                .pcs(pin.on_cpu())
                .spare
                .take_if(|spare| spare.len() >= count);
            match spare {
                Some(spare) => spare,
                None => match self.barns[node].get_full_sheaf() {
                    Some(full) => full,
                    None => self.alloc_empty_sheaf(node, gfp)?,
                },
            }
        };
        let mut p = PrefilledSheaf { sheaf };
        if self.refill_sheaf(gfp, &mut p, count).is_err() {
            self.return_sheaf(p);
            return None;
        }
        Some(p)
    }

    /// Tops up a prefilled sheaf so it holds at least `count` objects
    /// (`kmem_cache_refill_sheaf`). A regular sheaf is filled to capacity; if `count` exceeds
    /// its capacity, the sheaf is exchanged for a bigger one. `Err` when memory is short (the
    /// sheaf keeps what it had).
    #[doc(alias = "kmem_cache_refill_sheaf")]
    pub fn refill_sheaf(
        &self,
        gfp: Gfp,
        sheaf: &mut PrefilledSheaf,
        count: usize,
    ) -> Result<(), OutOfMemory> {
        let s = &sheaf.sheaf;
        let (size, cap, regular) = (s.len(), s.capacity(), s.oversize_order().is_none());
        if size >= count {
            return Ok(());
        }
        if count > cap {
            let bigger = self.prefill_sheaf(gfp, count).ok_or(OutOfMemory)?;
            let old = core::mem::replace(sheaf, bigger);
            self.return_sheaf(old);
            return Ok(());
        }
        let pin = Pinned::new(&self.platform);
        let node = self.platform.cpu_to_node(pin.cpu());
        let target = if regular { cap } else { count };
        self.refill_from_slabs(&mut sheaf.sheaf, target, node, gfp);
        if sheaf.sheaf.len() < count {
            Err(OutOfMemory)
        } else {
            Ok(())
        }
    }

    /// Allocates from a prefilled sheaf (`kmem_cache_alloc_from_sheaf`): cannot fail while the
    /// sheaf holds objects, and returns `None` (no fallback to the cache) once it is empty.
    #[doc(alias = "kmem_cache_alloc_from_sheaf")]
    pub fn alloc_from_sheaf(&self, gfp: Gfp, sheaf: &mut PrefilledSheaf) -> Option<NonNull<u8>> {
        let obj = sheaf.sheaf.pop()?;
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
    /// and freed.
    #[doc(alias = "kmem_cache_return_sheaf")]
    pub fn return_sheaf(&self, sheaf: PrefilledSheaf) {
        let mut s = sheaf.sheaf;
        self.stat_add(Stat::SheafReturn, 1);
        if s.oversize_order().is_none() {
            let pin = Pinned::new(&self.platform);
            let node = {
                let pcs = self.pcs(pin.on_cpu());
                if pcs.spare.is_none() {
                    *pcs.spare = Some(s);
                    return;
                }
                pcs.node
            };
            let cap = s.capacity();
            self.refill_from_slabs(&mut s, cap, node, Gfp::ATOMIC);
            if s.len() == cap {
                match self.barns[node].put_full_sheaf(s) {
                    Ok(()) => return,
                    Err(back) => s = back,
                }
            }
        }
        self.sheaf_flush(&mut s);
        self.free_sheaf(s);
    }
}
