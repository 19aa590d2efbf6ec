//! `kfree_rcu`: freeing an object only after an RCU grace period, through sheaves.
//!
//! A reader inside an RCU read-side section may still hold a pointer to an object its writer
//! has just unpublished, so the writer must not free it at once: `kfree_rcu` frees it after a
//! grace period. Queuing one RCU callback per object would cost an allocation and a callback
//! each; like Linux (7.0), Sheaf collects such objects in a third per-CPU sheaf, `rcu_free`:
//!
//! 1. `kfree_rcu(obj)` pushes `obj` on the CPU's `rcu_free` sheaf (allocating an empty one if
//!    there is none) — a few instructions, under the CPU pin.
//! 2. When that sheaf is full, it is detached and handed to RCU as a whole (one callback).
//! 3. After the grace period the callback (`KmemCache::rcu_free_sheaf`) offers the full
//!    sheaf to the barn, where the next CPU short of objects takes it: the objects are reused
//!    without ever going back to their slabs. If the barn is full, they are flushed to the
//!    slabs and the sheaf is freed.
//!
//! Objects that cannot use a sheaf (caches without sheaves, such as debug caches, objects of
//! another node, or no memory for a sheaf) are queued to RCU one by one and then freed with the
//! ordinary `kmem_cache_free`, checks included. `kmem_cache_destroy` hands every CPU's partial
//! `rcu_free` sheaf to RCU and waits for all callbacks (`rcu_barrier`) before it looks for
//! leftover objects.

use alloc::boxed::Box;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::KmemCache;
use crate::base::Gfp;
use crate::platform::Platform;
use crate::sheaf::Sheaf;
use crate::stats::Stat;

/// What [`KmemCache::rcu_free_push`] did with an object.
enum Pushed {
    /// It waits in the CPU's `rcu_free` sheaf.
    InSheaf,
    /// It filled the sheaf, which was detached: hand it to RCU.
    Full(NonNull<Sheaf>),
    /// No sheaf could take it: queue it to RCU on its own.
    NoSheaf,
}

impl<P: Platform> KmemCache<P> {
    /// Frees `obj` after an RCU grace period (`kfree_rcu`): readers in read-side sections that
    /// began before this call may keep using it until they leave. Usable in any context that
    /// may call [`KmemCache::free`].
    ///
    /// # Safety
    /// As for [`KmemCache::free`]: `obj` is an object of this cache that its owner no longer
    /// uses (only RCU readers may still look at it), freed once.
    #[doc(alias = "kfree_rcu")]
    pub unsafe fn free_rcu(&self, obj: NonNull<u8>) {
        // Read first: after the first call the line stays shared instead of bouncing.
        if !self.rcu_used.load(Ordering::Relaxed) {
            self.rcu_used.store(true, Ordering::Relaxed);
        }
        let pushed = {
            let (_guard, cpu) = self.platform.pin();
            // SAFETY: pinned to `cpu`.
            unsafe { self.rcu_free_push(cpu, obj.as_ptr()) }
        };
        // RCU calls (and their allocations) happen unpinned: a kmalloc on the way must find
        // this CPU's sheaves in a consistent state.
        match pushed {
            Pushed::InSheaf => {}
            Pushed::Full(sheaf) => self.submit_rcu_sheaf(sheaf),
            Pushed::NoSheaf => {
                let (cache, obj) = (self as *const Self as usize, obj.as_ptr() as usize);
                self.platform.call_rcu(Box::new(move || {
                    // SAFETY: a cache outlives the callbacks queued for it (destroy waits for
                    // them with `rcu_barrier`), and `obj` is ours to free (caller contract).
                    unsafe {
                        let cache = &*(cache as *const Self);
                        // Problems are logged and reported by the cache itself.
                        let _ = cache.free(NonNull::new_unchecked(obj as *mut u8));
                    }
                }));
            }
        }
    }

    /// Pushes `obj` on `cpu`'s `rcu_free` sheaf (`__kfree_rcu_sheaf`).
    ///
    /// # Safety
    /// Pinned to `cpu` (or nobody else uses the cache); `obj` as for [`Self::free_rcu`].
    unsafe fn rcu_free_push(&self, cpu: usize, obj: *mut u8) -> Pushed {
        // SAFETY: caller contract: the CPU's sheaves are ours.
        let pcs = unsafe { self.pcs(cpu) };
        let stats = &self.cpu_stats[cpu];
        let remote = self.multi_node && self.platform.page_node(obj as usize) != pcs.node;
        if self.sheaf_capacity == 0 || remote {
            stats.add(Stat::FreeRcuSheafFail, 1);
            return Pushed::NoSheaf;
        }
        if pcs.rcu_free.is_null() {
            match self.alloc_empty_sheaf(pcs.node, Gfp::ATOMIC) {
                Some(s) => *pcs.rcu_free = s.as_ptr(),
                None => {
                    stats.add(Stat::FreeRcuSheafFail, 1);
                    return Pushed::NoSheaf;
                }
            }
        }
        stats.add(Stat::FreeRcuSheaf, 1);
        let s = *pcs.rcu_free;
        // SAFETY: `s` is this CPU's real `rcu_free` sheaf, never left full, so it has room.
        unsafe {
            *Sheaf::objects(s).add((*s).size as usize) = obj;
            (*s).size += 1;
            if (*s).size < (*s).capacity {
                return Pushed::InSheaf;
            }
        }
        *pcs.rcu_free = core::ptr::null_mut();
        // SAFETY: `s` is non-null (checked above).
        Pushed::Full(unsafe { NonNull::new_unchecked(s) })
    }

    /// Hands a detached `rcu_free` sheaf to RCU; [`Self::rcu_free_sheaf`] takes it back after
    /// the grace period.
    fn submit_rcu_sheaf(&self, sheaf: NonNull<Sheaf>) {
        let (cache, sheaf) = (self as *const Self as usize, sheaf.as_ptr() as usize);
        self.platform.call_rcu(Box::new(move || {
            // SAFETY: the cache outlives its callbacks (destroy waits for them), and the sheaf
            // was detached for this callback alone.
            unsafe {
                let cache = &*(cache as *const Self);
                cache.rcu_free_sheaf(NonNull::new_unchecked(sheaf as *mut Sheaf));
            }
        }));
    }

    /// After the grace period of an `rcu_free` sheaf (`rcu_free_sheaf`): a full sheaf goes to
    /// its node's barn, ready for reuse; otherwise (the barn is full, or the sheaf was handed
    /// in partly filled by destroy) its objects go back to their slabs and the sheaf is freed.
    ///
    /// # Safety
    /// `sheaf` is a detached `rcu_free` sheaf of this cache whose grace period has elapsed.
    unsafe fn rcu_free_sheaf(&self, sheaf: NonNull<Sheaf>) {
        // SAFETY: caller contract: the sheaf and its objects are ours now.
        unsafe {
            let s = sheaf.as_ptr();
            if (*s).size == (*s).capacity
                && self.barns[(*s).node as usize].put_full_sheaf(sheaf).is_ok()
            {
                return;
            }
            self.sheaf_flush(s);
            self.free_sheaf(sheaf);
        }
    }

    /// Hands every CPU's partly filled `rcu_free` sheaf to RCU and waits until all RCU
    /// callbacks queued so far have run, those of this cache included (`kvfree_rcu_barrier`
    /// for one cache): afterwards no object of the cache waits for a grace period.
    ///
    /// # Safety
    /// No other context uses the cache (cache destruction).
    pub(crate) unsafe fn rcu_free_barrier(&self) {
        // A cache never given to `kfree_rcu` has nothing in flight (whoever called it last
        // made that visible to the caller of destroy, as for any other use of the cache).
        if !self.rcu_used.load(Ordering::Relaxed) {
            return;
        }
        for cpu in 0..self.platform.nr_cpus() {
            // SAFETY: nobody else uses the cache (caller contract).
            let rcu_free = unsafe { self.pcs(cpu).rcu_free };
            if let Some(s) = NonNull::new(core::mem::replace(rcu_free, core::ptr::null_mut())) {
                self.submit_rcu_sheaf(s);
            }
        }
        self.platform.rcu_barrier();
    }
}
