//! Giving memory back: `kmem_cache_shrink`, and the shutdown of a cache being destroyed.
//!
//! Safe code: a CPU's sheaves are reached under a pin ([`Pinned`]) or, at destruction, with
//! the cache to ourselves ([`Exclusive`]).

// No unsafe code: the raw pointers are behind the types this file uses (see `lib.rs`).
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

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
        if let Some(p) = self.alias_of() {
            return p.shrink();
        }
        self.on_each_cpu(&|| {
            // `on_each_cpu` runs this in process context, where no fast path is interrupted;
            // if one ever were, its CPU's sheaves would stay (until they drain or the next
            // shrink) rather than be taken from under it.
            let rcu_free = {
                let pin = Pinned::new(&self.platform);
                pin.on_cpu().and_then(|on| {
                    let mut pcs = self.pcs(on);
                    self.pcs_flush(&mut pcs, false);
                    pcs.rcu_free.take()
                })
            };
            self.submit_partial_rcu_sheaf(rcu_free);
        });
        self.barns_shrink();
        let freed = self.discard_empty_slabs();
        if let Some(sc) = &self.sheaf_cache {
            sc.discard_empty_slabs();
        }
        freed
    }

    /// Gives back what can be given back from any context (the memory-pressure path, Linux's
    /// shrinker idea without sleeping): flushes every barn's sheaves to the slabs, frees the
    /// barns' sheaves, and frees every empty slab (of the cache and of its private sheaf
    /// cache). The CPUs' own sheaves stay: another CPU's can only be reached by running code
    /// there (which sleeps), and this CPU's may be the very ones the caller is refilling.
    ///
    /// Never sleeps and never allocates; safe with interrupts off, in an interrupt handler and
    /// from inside the slab allocator's own slow paths (a page allocation that fails there):
    /// it runs pinned (interrupts off in the kernel), so no lock this CPU holds can be
    /// released meanwhile, and it first looks at every lock it would take (the barns' and the
    /// node lists', its own and its sheaf cache's). If one is held, it may be held by this
    /// very CPU (an allocation made under it), and taking it would never return: the cache is
    /// left alone and `None` returned. A lock held by another CPU is skipped too (it would be
    /// released, but a skip costs nothing: the next pressure tries again). Debug caches are
    /// left alone (their checks, run on every slab freed, report through a lock that
    /// allocates), as are aliases (their primary is reached on its own).
    ///
    /// Returns the number of the cache's slabs freed (its sheaf cache's not counted), `None`
    /// when the cache was skipped.
    pub fn reclaim(&self) -> Option<usize> {
        if self.alias_of().is_some() || self.is_debug() {
            return None;
        }
        // The node-list and barn locks spin: checked and taken pinned (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
        let sc_nodes = self.sheaf_cache.iter().flat_map(|sc| sc.nodes.iter());
        let busy = self.barns.iter().any(|b| b.is_locked())
            || self
                .nodes
                .iter()
                .chain(sc_nodes)
                .any(|n| n.list_lock.is_locked());
        if busy {
            return None;
        }
        // Counted from the lists: flushing the barns already frees the slabs that empty
        // beyond `min_partial` (the free path's rule), before the discard frees the rest.
        let before = self.nr_slabs();
        self.barns_shrink();
        self.discard_empty_slabs();
        if let Some(sc) = &self.sheaf_cache {
            sc.discard_empty_slabs();
        }
        Some(before.saturating_sub(self.nr_slabs()))
    }

    /// Slabs on every node's lists (taken pinned by the caller).
    fn nr_slabs(&self) -> usize {
        self.nodes.iter().map(|n| n.list_lock.lock().nr_slabs).sum()
    }

    /// Hands every CPU's partly filled `rcu_free` sheaf to RCU, as a full one is (the cache's
    /// part of `kvfree_rcu_barrier`, Linux's `flush_all_rcu_sheaves`): after the next grace
    /// period every object freed with `kfree_rcu` before this call is back in the cache. Does
    /// not wait (the allocator's [`crate::SlabAllocator::kvfree_rcu_barrier`] does).
    pub fn flush_rcu_sheaves(&self) {
        self.on_each_cpu(&|| {
            let rcu_free = {
                let pin = Pinned::new(&self.platform);
                pin.on_cpu().and_then(|on| self.pcs(on).rcu_free.take())
            };
            self.submit_partial_rcu_sheaf(rcu_free);
        });
    }

    /// Hands a partly filled `rcu_free` sheaf taken off its CPU to RCU (unpinned: a platform
    /// without RCU runs the callback at once, and it pins).
    fn submit_partial_rcu_sheaf(&self, sheaf: Option<crate::sheaf::SheafBox>) {
        if let Some(sheaf) = sheaf {
            self.submit_rcu_sheaf(sheaf);
        }
    }

    /// Runs `f` on every CPU, each on its CPU ([`Platform::on_each_cpu`]), or only on the
    /// calling CPU where the platform cannot run code on the others (the host).
    fn on_each_cpu(&self, f: &(dyn Fn() + Sync)) {
        if !self.platform.on_each_cpu(f) {
            f();
        }
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

    /// The first, quiet try of an asynchronous destroy: hands every CPU's partly filled
    /// `rcu_free` sheaf to RCU (without waiting), flushes every sheaf and frees the empty
    /// slabs. `Ok` when nothing is left; `Err(n)` when `n` objects are still allocated, which
    /// is not reported yet: they may be in `kfree_rcu` flight (the destroy work waits for RCU
    /// and tries again with [`Self::shutdown`]).
    pub(crate) fn try_shutdown(ex: &Exclusive<'_, P>) -> Result<(), usize> {
        let s = ex.cache();
        for cpu in 0..s.platform.nr_cpus() {
            let rcu_free = ex.pcs(cpu).rcu_free.take();
            s.submit_partial_rcu_sheaf(rcu_free);
            s.pcs_flush(&mut ex.pcs(cpu), true);
        }
        s.barns_shrink();
        s.discard_empty_slabs();
        // Counted from the slabs' counters, not listed: this try allocates nothing, so a cache
        // can be destroyed when memory is exhausted.
        match s.slabinfo().active_objs + s.sheaves_out() {
            0 => {
                // The sheaves went back to the private sheaf cache above: its slabs go too, or
                // they would outlive the cache, never freed (as `shutdown_slabs` does).
                s.discard_sheaf_cache_slabs();
                Ok(())
            }
            n => Err(n),
        }
    }

    /// Prefilled sheaves handed out and not returned: their objects are allocated, and a
    /// regular one is itself an object of the cache's sheaf cache, which goes with the cache.
    /// Destroy keeps a cache with any (Linux: objects remain).
    fn sheaves_out(&self) -> usize {
        self.prefilled.load(Ordering::Relaxed)
    }

    /// The slab part of [`Self::shutdown`], with the sheaves flushed.
    fn shutdown_slabs(&self) -> Result<(), Vec<usize>> {
        self.barns_shrink();
        self.discard_empty_slabs();
        let mut live = self.allocated_objects();
        for &o in &live {
            self.report(o, SlabErrorKind::ObjectRemaining);
        }
        self.discard_sheaf_cache_slabs();
        if let Some(sc) = &self.sheaf_cache {
            // What is left in the sheaf cache is prefilled sheaves still out (every other
            // sheaf was flushed and freed above): listed too, so their pages stay accounted
            // for with the cache that is kept.
            let sheaves = sc.allocated_objects();
            for &o in &sheaves {
                self.report(o, SlabErrorKind::ObjectRemaining);
            }
            live.extend(sheaves);
        }
        if live.is_empty() && self.sheaves_out() == 0 {
            Ok(())
        } else {
            Err(live)
        }
    }

    /// Frees the empty slabs of the private cache the sheaves come from (every slab, once the
    /// sheaves are all freed, as on a cache's way out).
    fn discard_sheaf_cache_slabs(&self) {
        if let Some(sc) = &self.sheaf_cache {
            sc.discard_empty_slabs();
        }
    }
}
