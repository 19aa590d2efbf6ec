//! Bulk allocation and free (`kmem_cache_alloc_bulk`, `kmem_cache_free_bulk`).

use core::ptr::{self, NonNull};

use super::KmemCache;
use crate::base::Gfp;
use crate::platform::{Pinned, Platform};
use crate::report::SlabReport;
use crate::slabs::FreeObject;
use crate::stats::Stat;

impl<P: Platform> KmemCache<P> {
    /// Allocates `out.len()` objects at once (`kmem_cache_alloc_bulk`): first from the main
    /// sheaf, then straight from the slabs. All or nothing: returns `false` (and allocates
    /// nothing) when memory is short.
    #[doc(alias = "kmem_cache_alloc_bulk")]
    pub fn alloc_bulk(&self, gfp: Gfp, out: &mut [*mut u8]) -> bool {
        if let Some(p) = self.alias_of() {
            return p.alloc_bulk(gfp, out);
        }
        out.fill(ptr::null_mut());
        // SAFETY: `Option<FreeObject>` has the layout of a nullable pointer, and every entry is
        // null (`None`); the tokens written become the caller's pointers.
        let slots = unsafe { &mut *(ptr::from_mut(out) as *mut [Option<FreeObject>]) };
        let mut got = 0;
        {
            let pin = Pinned::new(&self.platform);
            let stats = &self.cpu_stats[pin.cpu()];
            // From the CPU's main sheaf first, unless a fast path this context interrupted
            // holds it.
            let node = match pin.on_cpu() {
                Some(on) => {
                    let pcs = self.pcs(on);
                    if let Some(main) = pcs.main.get() {
                        got += main.take_batch(slots);
                    }
                    pcs.node
                }
                None => self.platform.cpu_to_node(pin.cpu()),
            };
            // Every object counts once, from the sheaf (fast) or the slabs (slow); the
            // objects given back on failure count as frees.
            stats.add(Stat::AllocFastpath, got as u64);
            if got < slots.len() {
                let slow = self.alloc_from_slabs(node, gfp, &mut slots[got..], 0);
                stats.add(Stat::AllocSlowpath, slow as u64);
                got += slow;
            }
        }
        if got < slots.len() {
            for obj in slots[..got].iter_mut().filter_map(Option::take) {
                let _ = self.free_object(obj);
            }
            return false;
        }
        if gfp.contains(Gfp::ZERO) {
            for &o in out.iter() {
                // SAFETY: each object is ours.
                unsafe { o.write_bytes(0, self.object_size()) };
            }
        }
        true
    }

    /// Frees many objects (`kmem_cache_free_bulk`). Returns the last problem found, if any.
    ///
    /// # Safety
    /// As for [`Self::free`], for every object.
    #[doc(alias = "kmem_cache_free_bulk")]
    pub unsafe fn free_bulk(&self, objs: &[*mut u8]) -> Result<(), SlabReport> {
        if let Some(p) = self.alias_of() {
            // SAFETY: forwarded contract; the objects are the primary's.
            return unsafe { p.free_bulk(objs) };
        }
        let mut r = Ok(());
        for &o in objs {
            match NonNull::new(o) {
                Some(o) => {
                    // SAFETY: forwarded contract.
                    if let Err(e) = unsafe { self.free(o) } {
                        r = Err(e);
                    }
                }
                None => continue,
            }
        }
        r
    }
}
