//! Giving memory back: `kmem_cache_shrink`, and the shutdown of a cache being destroyed.
//!
//! Safe code: a CPU's sheaves are reached under a pin ([`Pinned`]) or, at destruction, with
//! the cache to ourselves ([`Exclusive`]).

// No unsafe code: the raw pointers are behind the types this file uses (see `lib.rs`).
#![deny(unsafe_code)]

use alloc::vec::Vec;

use super::{Exclusive, KmemCache};
use crate::platform::{Pinned, Platform};
use crate::report::SlabErrorKind;

impl<P: Platform> KmemCache<P> {
    /// Gives memory back (`kmem_cache_shrink`): flushes every CPU's sheaves and every barn to
    /// the slabs and frees all empty slabs. Returns the number of slabs freed.
    ///
    /// Like Linux, it flushes each CPU's sheaves on that CPU ([`Platform::on_each_cpu`]); a
    /// platform that cannot run code on other CPUs (the host) has only the calling CPU's
    /// sheaves flushed, the others' stay until they drain or the cache is destroyed. As in
    /// Linux, the caller may have to sleep (the kernel waits for a thread on each CPU): call it
    /// from process context, not with interrupts off.
    ///
    /// Each CPU's partly filled `rcu_free` sheaf is handed to RCU, as a full one is (Linux's
    /// `pcs_flush_all`): its objects go back to their slabs after the grace period, so a
    /// later shrink can free the slabs they were keeping. This shrink does not wait for it.
    #[doc(alias = "kmem_cache_shrink")]
    pub fn shrink(&self) -> usize {
        let flush_local = || {
            let rcu_free = {
                let pin = Pinned::new(&self.platform);
                let mut pcs = self.pcs(pin.on_cpu());
                self.pcs_flush(&mut pcs, false);
                pcs.rcu_free.take()
            };
            // Unpinned: RCU may allocate (see `free_rcu_object`).
            if let Some(sheaf) = rcu_free {
                self.submit_rcu_sheaf(sheaf);
            }
        };
        if !self.platform.on_each_cpu(&flush_local) {
            flush_local();
        }
        self.barns_shrink();
        let freed = self.discard_empty_slabs();
        if let Some(sc) = &self.sheaf_cache {
            sc.discard_empty_slabs();
        }
        freed
    }

    /// Flushes everything and checks for leftovers (`__kmem_cache_shutdown`). `Err` lists the
    /// objects still allocated; the cache then stays usable (without sheaves).
    pub(crate) fn shutdown(ex: &Exclusive<'_, P>) -> Result<(), Vec<usize>> {
        let s = ex.cache();
        // Objects freed with `kfree_rcu` are still allocated until their grace period ends.
        Self::rcu_free_barrier(ex);
        for cpu in 0..s.platform.nr_cpus() {
            s.pcs_flush(&mut ex.pcs(cpu), true);
        }
        s.shutdown_slabs()
    }

    /// The slab part of [`Self::shutdown`], with the sheaves flushed.
    fn shutdown_slabs(&self) -> Result<(), Vec<usize>> {
        self.barns_shrink();
        self.discard_empty_slabs();
        let live = self.allocated_objects();
        for &o in &live {
            self.report(o, SlabErrorKind::ObjectRemaining);
        }
        if let Some(sc) = &self.sheaf_cache {
            sc.discard_empty_slabs();
        }
        if live.is_empty() { Ok(()) } else { Err(live) }
    }
}
