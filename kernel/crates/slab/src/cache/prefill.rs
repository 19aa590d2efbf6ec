//! Prefilled sheaves (`kmem_cache_prefill_sheaf` and friends): a reserve of objects a caller
//! takes before entering a section that must not fail.

use core::ptr::{self, NonNull};

use super::KmemCache;
use crate::base::Gfp;
use crate::platform::Platform;
use crate::sheaf::{NOT_OVERSIZE, OutOfMemory, PrefilledSheaf, Sheaf};
use crate::stats::Stat;

impl<P: Platform> KmemCache<P> {
    /// Returns a sheaf holding at least `count` objects, for allocations that must not fail
    /// (`kmem_cache_prefill_sheaf`). `count` above the cache's sheaf capacity gives an oversize
    /// sheaf allocated for the occasion. `None` when memory is short.
    #[doc(alias = "kmem_cache_prefill_sheaf")]
    pub fn prefill_sheaf(&self, gfp: Gfp, count: usize) -> Option<PrefilledSheaf> {
        let (_guard, cpu) = self.platform.pin();
        let node = self.platform.cpu_to_node(cpu);
        self.stat_add(Stat::SheafPrefill, 1);
        let sheaf = if count > self.sheaf_capacity || self.sheaf_capacity == 0 {
            self.alloc_oversize_sheaf(count.max(1), node, gfp)?
        } else {
            // SAFETY: pinned to `cpu`: its sheaves are ours.
            let pcs = unsafe { self.pcs(cpu) };
            let spare = *pcs.spare;
            // SAFETY: the spare, when present, is a valid sheaf of this CPU.
            if !spare.is_null() && unsafe { (*spare).size } as usize >= count {
                *pcs.spare = ptr::null_mut();
                // SAFETY: checked non-null.
                unsafe { NonNull::new_unchecked(spare) }
            } else if let Some(full) = self.barns[node].get_full_sheaf() {
                full
            } else {
                self.alloc_empty_sheaf(node, gfp)?
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
        let s = sheaf.sheaf.as_ptr();
        // SAFETY: the caller owns the prefilled sheaf.
        let (size, cap, regular) = unsafe {
            (
                (*s).size as usize,
                (*s).capacity as usize,
                (*s).oversize_order == NOT_OVERSIZE,
            )
        };
        if size >= count {
            return Ok(());
        }
        if count > cap {
            let bigger = self.prefill_sheaf(gfp, count).ok_or(OutOfMemory)?;
            let old = core::mem::replace(sheaf, bigger);
            self.return_sheaf(old);
            return Ok(());
        }
        let (_guard, cpu) = self.platform.pin();
        let node = self.platform.cpu_to_node(cpu);
        let target = if regular { cap } else { count };
        // SAFETY: the caller owns the sheaf and `target <= capacity`.
        unsafe { self.refill_from_slabs(s, target, node, gfp) };
        // SAFETY: as above.
        if (unsafe { (*s).size } as usize) < count {
            Err(OutOfMemory)
        } else {
            Ok(())
        }
    }

    /// Allocates from a prefilled sheaf (`kmem_cache_alloc_from_sheaf`): cannot fail while the
    /// sheaf holds objects, and returns `None` (no fallback to the cache) once it is empty.
    #[doc(alias = "kmem_cache_alloc_from_sheaf")]
    pub fn alloc_from_sheaf(&self, gfp: Gfp, sheaf: &mut PrefilledSheaf) -> Option<NonNull<u8>> {
        let s = sheaf.sheaf.as_ptr();
        // SAFETY: the caller owns the sheaf; popping stays within `size`.
        let obj = unsafe {
            if (*s).size == 0 {
                return None;
            }
            (*s).size -= 1;
            NonNull::new_unchecked(*Sheaf::objects(s).add((*s).size as usize))
        };
        if gfp.contains(Gfp::ZERO) {
            // SAFETY: the object is ours and `object_size` bytes long.
            unsafe { obj.as_ptr().write_bytes(0, self.object_size()) };
        }
        Some(obj)
    }

    /// Number of objects left in a prefilled sheaf (`kmem_cache_sheaf_size`).
    #[doc(alias = "kmem_cache_sheaf_size")]
    pub fn sheaf_size(&self, sheaf: &PrefilledSheaf) -> usize {
        // SAFETY: the caller owns the sheaf.
        unsafe { sheaf.sheaf.as_ref().size as usize }
    }

    /// Gives a prefilled sheaf back (`kmem_cache_return_sheaf`): it becomes this CPU's spare if
    /// there is none; else it is refilled and put in the barn if the barn has room; else its
    /// objects are flushed to the slabs and it is freed. Oversize sheaves are always flushed
    /// and freed.
    #[doc(alias = "kmem_cache_return_sheaf")]
    pub fn return_sheaf(&self, sheaf: PrefilledSheaf) {
        let s = sheaf.sheaf;
        self.stat_add(Stat::SheafReturn, 1);
        // SAFETY: the caller gave us the sheaf.
        let regular = unsafe { s.as_ref().oversize_order == NOT_OVERSIZE };
        if regular {
            let (_guard, cpu) = self.platform.pin();
            // SAFETY: pinned to `cpu`.
            let pcs = unsafe { self.pcs(cpu) };
            if (*pcs.spare).is_null() {
                *pcs.spare = s.as_ptr();
                return;
            }
            // SAFETY: we own the sheaf.
            unsafe {
                let cap = s.as_ref().capacity as usize;
                self.refill_from_slabs(s.as_ptr(), cap, pcs.node, Gfp::ATOMIC);
                if s.as_ref().size as usize == cap && self.barns[pcs.node].put_full_sheaf(s).is_ok()
                {
                    return;
                }
            }
        }
        // SAFETY: we own the sheaf.
        unsafe {
            self.sheaf_flush(s.as_ptr());
            self.free_sheaf(s);
        }
    }
}
