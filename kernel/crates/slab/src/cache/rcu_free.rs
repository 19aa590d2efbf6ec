//! `kfree_rcu`: freeing an object only after an RCU grace period, through sheaves.
//!
//! A reader inside an RCU read-side section may still hold a pointer to an object its writer
//! has just unpublished, so the writer must not free it at once: `kfree_rcu` frees it after a
//! grace period. Queuing one RCU callback per object would cost an allocation and a callback
//! each; like Linux (7.0), Sheaf collects such objects in a third per-CPU sheaf, `rcu_free`:
//!
//! 1. `kfree_rcu(obj)` pushes `obj` on the CPU's `rcu_free` sheaf (allocating an empty one if
//!    there is none) — a few instructions, under the CPU pin.
//! 2. When that sheaf is full, it is detached and handed to RCU as a whole (one callback), on
//!    the `rcu_head` its own header turns into (Linux's `call_rcu(&sheaf->rcu_head, ...)`):
//!    nothing is allocated, so this works when memory is exhausted.
//! 3. After the grace period the callback (`KmemCache::rcu_free_sheaf`) offers the full
//!    sheaf to the barn, where the next CPU short of objects takes it: the objects are reused
//!    without ever going back to their slabs. If the barn is full, they are flushed to the
//!    slabs and the sheaf is freed.
//!
//! Objects that cannot use a sheaf (caches without sheaves, such as debug caches, objects of
//! another node, or no memory for a sheaf) are queued to RCU one by one and then freed with the
//! ordinary `kmem_cache_free`, checks included: on the caller's `rcu_head` inside the object
//! where there is one (the kernel's `kvfree_call_rcu`, through
//! [`crate::SlabAllocator::kvfree_rcu_sheaf`]), else on a small record allocated for it
//! (`KmemCache::call_rcu_object`; `kfree_rcu` without a head, like Linux's
//! `kvfree_rcu_mightsleep`, is the one RCU path that needs memory). `kmem_cache_shrink` hands the partly filled
//! `rcu_free` sheaf of every CPU it flushes to RCU (without waiting: the objects are back in
//! their slabs after the grace period); `kmem_cache_destroy` hands every CPU's partial
//! `rcu_free` sheaf to RCU and waits for all callbacks (`rcu_barrier`) before it looks for
//! leftover objects.

//!
//! Safe code: the objects are `FreeObject`s and the sheaves [`SheafBox`]es, which the RCU
//! callbacks own; the public entry point, `unsafe` like every free, is
//! [`KmemCache::free_rcu`] in `cache.rs`, and `KmemCache::call_rcu_sheaf` and
//! `KmemCache::call_rcu_object` (also there) queue the heads and find the cache again in the
//! callbacks.

// No unsafe code: the raw pointers are behind the types this file uses (see `lib.rs`).
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;

use super::{Exclusive, KmemCache};
use crate::base::Gfp;
use crate::platform::{OnCpu, Pinned, Platform};
use crate::report::{SlabErrorKind, SlabReport};
use crate::sheaf::SheafBox;
use crate::slabs::FreeObject;
use crate::stats::Stat;

/// What [`KmemCache::rcu_free_push`] did with an object.
enum Pushed {
    /// It waits in the CPU's `rcu_free` sheaf.
    InSheaf,
    /// It filled the sheaf, which was detached: hand it to RCU.
    Full(SheafBox),
    /// No sheaf could take it: queue it to RCU on its own.
    NoSheaf(FreeObject),
    /// It is the object freed last, on top of the sheaf (the naive double free): reported and
    /// dropped.
    DoubleFree(SlabReport),
}

/// Why [`KmemCache::free_rcu_to_sheaf`] did not take an object.
pub(crate) enum RcuRefused {
    /// No sheaf can take it (the object is given back): the caller queues it on its own.
    NoSheaf(FreeObject),
    /// A double free, reported: the object must not be queued.
    Report(SlabReport),
}

impl<P: Platform> KmemCache<P> {
    /// [`KmemCache::free_rcu`] of an object whose token the allocator holds (the pointer was
    /// checked): `Err` for a naive double free, reported and dropped.
    pub(crate) fn free_rcu_object(&self, obj: FreeObject) -> Result<(), SlabReport> {
        match self.free_rcu_to_sheaf(obj) {
            Ok(()) => Ok(()),
            Err(RcuRefused::NoSheaf(obj)) => {
                self.call_rcu_object(obj);
                Ok(())
            }
            Err(RcuRefused::Report(r)) => Err(r),
        }
    }

    /// The sheaf part of `kfree_rcu`: puts `obj` in this CPU's `rcu_free` sheaf (handing the
    /// sheaf to RCU when it fills). `Err(NoSheaf(obj))` when no sheaf can take it (a cache
    /// without sheaves, an object of another node, no memory for a sheaf): the caller queues
    /// it to RCU on its own, through a callback record or, without allocating, through an
    /// `rcu_head` embedded in the object (Linux's `kvfree_call_rcu` fallback).
    /// `Err(Report(_))` when it is the object on top of the sheaf, freed a moment ago (the
    /// naive double free, caught as cheaply as `free` catches it; a deeper one is caught when
    /// the objects reach their slabs).
    pub(crate) fn free_rcu_to_sheaf(&self, obj: FreeObject) -> Result<(), RcuRefused> {
        self.mark_rcu_used();
        let pushed = {
            let pin = Pinned::new(&self.platform);
            match pin.on_cpu() {
                Some(on) => self.rcu_free_push(on, obj),
                // A fast path this context interrupted holds the sheaves.
                None => {
                    self.cpu_stats[pin.cpu()].add(Stat::FreeRcuSheafFail, 1);
                    Pushed::NoSheaf(obj)
                }
            }
        };
        // RCU calls happen unpinned: a platform that runs the callback at once (the default)
        // re-enters the cache's slow paths, which must find this CPU's sheaves given back.
        match pushed {
            Pushed::InSheaf => Ok(()),
            Pushed::Full(sheaf) => {
                self.submit_rcu_sheaf(sheaf);
                Ok(())
            }
            Pushed::NoSheaf(obj) => Err(RcuRefused::NoSheaf(obj)),
            Pushed::DoubleFree(r) => Err(RcuRefused::Report(r)),
        }
    }

    /// Pushes `obj` on the `rcu_free` sheaf of `on`'s CPU (`__kfree_rcu_sheaf`).
    fn rcu_free_push(&self, on: OnCpu<'_>, obj: FreeObject) -> Pushed {
        let stats = &self.cpu_stats[on.cpu()];
        let pcs = self.pcs(on);
        let remote = self.multi_node && self.platform.page_node(obj.as_ptr() as usize) != pcs.node;
        if self.sheaf_capacity == 0 || remote {
            stats.add(Stat::FreeRcuSheafFail, 1);
            return Pushed::NoSheaf(obj);
        }
        if pcs.rcu_free.is_none() {
            match self.alloc_empty_sheaf(pcs.node, Gfp::ATOMIC) {
                Some(s) => *pcs.rcu_free = Some(s),
                None => {
                    stats.add(Stat::FreeRcuSheafFail, 1);
                    return Pushed::NoSheaf(obj);
                }
            }
        }
        let s = pcs.rcu_free.as_mut().expect("set above");
        if s.top_is(obj.as_ptr()) {
            let addr = obj.as_ptr() as usize;
            self.report(addr, SlabErrorKind::DoubleFree);
            return Pushed::DoubleFree(self.make_report(addr, SlabErrorKind::DoubleFree));
        }
        // The sheaf is never left full, so it has room.
        if let Err(obj) = s.push(obj) {
            return Pushed::NoSheaf(obj);
        }
        stats.add(Stat::FreeRcuSheaf, 1);
        // The caller's free, counted now (the object comes back to the cache after the grace
        // period without going through a free path): allocations minus frees stays what
        // callers hold.
        stats.add(Stat::FreeSlowpath, 1);
        if !s.is_full() {
            return Pushed::InSheaf;
        }
        Pushed::Full(pcs.rcu_free.take().expect("set above"))
    }

    /// Hands a detached `rcu_free` sheaf, full or (from shrink and destroy) partly filled, to
    /// RCU on its own head, allocating nothing; [`Self::rcu_free_sheaf`] takes it back after
    /// the grace period.
    pub(crate) fn submit_rcu_sheaf(&self, sheaf: SheafBox) {
        self.call_rcu_sheaf(sheaf);
    }

    /// After the grace period of an `rcu_free` sheaf (`rcu_free_sheaf`): a full sheaf goes to
    /// its node's barn, ready for reuse; otherwise (the barn is full, or the sheaf was handed
    /// in partly filled by shrink or destroy: Linux's `rcu_free_sheaf_nobarn`) its objects go
    /// back to their slabs and the sheaf is freed.
    pub(crate) fn rcu_free_sheaf(&self, mut sheaf: SheafBox) {
        // The node-list and barn locks spin: take them pinned, so that no holder is ever preempted
        // or interrupted by code that spins for them on its CPU (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
        if sheaf.is_full() {
            match self.barns[sheaf.node()].put_full_sheaf(sheaf) {
                Ok(()) => return,
                Err(back) => sheaf = back,
            }
        }
        self.sheaf_flush(&mut sheaf);
        self.free_sheaf(sheaf);
    }

    /// Hands every CPU's partly filled `rcu_free` sheaf to RCU and waits until all RCU
    /// callbacks queued so far have run, those of this cache included (`kvfree_rcu_barrier`
    /// for one cache): afterwards no object of the cache waits for a grace period.
    pub(crate) fn rcu_free_barrier(ex: &Exclusive<'_, P>) {
        let cache = ex.cache();
        // A cache never given to `kfree_rcu` has nothing in flight (whoever called it last
        // made that visible to the caller of destroy, as for any other use of the cache).
        if !cache.rcu_used.load(Ordering::Relaxed) {
            return;
        }
        for cpu in 0..cache.platform.nr_cpus() {
            let rcu_free = ex.pcs(cpu).rcu_free.take();
            if let Some(s) = rcu_free {
                cache.submit_rcu_sheaf(s);
            }
        }
        cache.platform.rcu_barrier();
    }
}
