//! `kfree_rcu` entry points of a cache, and handing sheaves and lone objects to RCU on heads
//! (`call_rcu_sheaf`, `call_rcu_object`) with their callbacks, which find the cache again. The
//! sheaf policy of `kfree_rcu` is in [`super::rcu_free`].

use core::ptr::NonNull;

use super::KmemCache;
use super::rcu_free::RcuRefused;
use crate::head::{RcuHead, container_of};
use crate::platform::Platform;
use crate::report::SlabReport;
use crate::sheaf::SheafBox;
use crate::slabs::FreeObject;

impl<P: Platform> KmemCache<P> {
    /// Hands a detached `rcu_free` sheaf of this cache to RCU on the head its header turns into
    /// (Linux's `call_rcu(&sheaf->rcu_head, rcu_free_sheaf)`): nothing is allocated. After the
    /// grace period `rcu_free_sheaf_callback` gives it to [`Self::rcu_free_sheaf`].
    pub(crate) fn call_rcu_sheaf(&self, sheaf: SheafBox) {
        self.mark_rcu_used();
        assert!(
            sheaf.capacity() == self.sheaf_capacity && sheaf.oversize_order().is_none(),
            "an rcu_free sheaf is a regular sheaf of its cache"
        );
        let head = sheaf.into_rcu_head();
        // The callback only needs a live cache, and the cache outlives it: with `rcu_used`
        // set, destruction waits for RCU callbacks (`rcu_free_barrier`) before freeing it.
        // SAFETY: so; and the head is the sheaf's, which nobody uses until the callback takes
        // it back (the handle was consumed).
        unsafe {
            self.platform
                .call_rcu_head(head, rcu_free_sheaf_callback::<P>)
        };
    }

    /// Frees `obj` after a grace period on a callback record of its own: for an object that no
    /// `rcu_free` sheaf can take and whose caller gave no `rcu_head` (`kfree_rcu(ptr)`, Linux's
    /// `kvfree_rcu_mightsleep`, which allocates too). The record, a head and the object's token,
    /// is the one allocation on the RCU paths, made fallibly from the global allocator. When it
    /// fails, as Linux's `kvfree_rcu_mightsleep` does, a caller that may sleep waits for the
    /// grace period here ([`Platform::synchronize_rcu_if_sleepable`]) and the object is freed
    /// at once. A caller that may not sleep (interrupts off, an RCU read-side section or
    /// callback) leaks the object (never reused, so readers stay safe), reported as
    /// [`SlabErrorKind::KfreeRcuNoMemory`](crate::SlabErrorKind::KfreeRcuNoMemory); a destroy
    /// of the cache still completes (its work item reports the object as remaining and keeps
    /// the cache's memory for it, off every list). An object with a head of its own never comes
    /// here (the kernel's `kvfree_call_rcu` queues that head).
    pub(crate) fn call_rcu_object(&self, obj: FreeObject) {
        self.mark_rcu_used();
        let layout = core::alloc::Layout::new::<RcuObject<P>>();
        // SAFETY: the layout is not zero-sized (it holds a head).
        let record = NonNull::new(unsafe { alloc::alloc::alloc(layout) }.cast::<RcuObject<P>>());
        let Some(record) = record else {
            if self.platform.synchronize_rcu_if_sleepable() {
                // The grace period is over: no reader can still hold the object.
                // Problems are logged and reported by the cache itself.
                let _ = self.free_object(obj);
                return;
            }
            // The token is given up: the object stays allocated in its slab for good.
            let addr = obj.into_allocated().as_ptr() as usize;
            self.report(addr, crate::report::SlabErrorKind::KfreeRcuNoMemory);
            return;
        };
        let r = record.as_ptr();
        // SAFETY: `record` is a fresh allocation for an `RcuObject`; the head pointer is
        // projected from the record's, so the callback can step back to the whole record.
        let head = unsafe {
            r.write(RcuObject {
                head: RcuHead::new(),
                obj,
                cache: NonNull::from(self),
            });
            NonNull::new_unchecked(&raw mut (*r).head)
        };
        // SAFETY: the record is the callback's alone until it runs (nobody else has its
        // address); the cache outlives the callback as for `call_rcu_sheaf` (`rcu_used`).
        unsafe {
            self.platform
                .call_rcu_head(head, rcu_free_object_callback::<P>)
        };
    }

    /// Frees `obj` after an RCU grace period (`kfree_rcu`): readers in read-side sections that
    /// began before this call may keep using it until they leave. Usable in any context that
    /// may call [`KmemCache::free`]. How: [`super::rcu_free`].
    ///
    /// The pointer is checked now, whatever the boot options, as `free` checks it by
    /// default: not an object of this cache (another cache's, inside an object, not a slab
    /// page) or the object freed last (a naive double free) is reported (the cache's
    /// [`Self::reports`] and [`Platform::slab_error`]) and dropped. Objects waiting for their
    /// grace period go back to the cache without further checks at the sheaf level, so this
    /// is where a bad pointer must be stopped. A deeper double free is caught when the objects
    /// reach their slab.
    ///
    /// # Safety
    /// As for [`KmemCache::free`]: `obj` is an object of this cache that its owner no longer
    /// uses (only RCU readers may still look at it), freed once.
    #[doc(alias = "kfree_rcu")]
    pub unsafe fn free_rcu(&self, obj: NonNull<u8>) {
        // SAFETY: forwarded contract. A refusal is reported by the cache.
        let _ = unsafe { self.try_free_rcu(obj) };
    }

    /// [`Self::free_rcu`], saying what was wrong with a refused pointer (`kfree_rcu`'s
    /// result).
    ///
    /// # Safety
    /// As for [`Self::free_rcu`].
    pub(crate) unsafe fn try_free_rcu(&self, obj: NonNull<u8>) -> Result<(), SlabReport> {
        if let Some(p) = self.alias_of() {
            // SAFETY: forwarded contract; the object is the primary's.
            return unsafe { p.try_free_rcu(obj) };
        }
        self.check_free_pointer(obj)?;
        // SAFETY: the caller gives the object up (contract), an object of this cache (checked
        // above); until the grace period ends it waits in an `rcu_free` sheaf or an RCU
        // callback, where nothing writes to it.
        self.free_rcu_object(unsafe { FreeObject::new(obj) })
    }

    /// [`KmemCache::free_rcu`] through the `rcu_free` sheaves only: `Err(obj)`, the object
    /// untouched and still the caller's, when no sheaf can take it (see
    /// [`crate::SlabAllocator::kvfree_rcu_sheaf`]). A naive double free is reported and
    /// dropped (`Ok`: the caller must not queue it again).
    ///
    /// # Safety
    /// As for [`KmemCache::free_rcu`] when it returns `Ok`.
    pub unsafe fn free_rcu_sheaf(&self, obj: NonNull<u8>) -> Result<(), NonNull<u8>> {
        if let Some(p) = self.alias_of() {
            // SAFETY: forwarded contract; the object is the primary's.
            return unsafe { p.free_rcu_sheaf(obj) };
        }
        if self.check_free_pointer(obj).is_err() {
            return Ok(());
        }
        // SAFETY: the caller gives the object up (contract), an object of this cache (checked
        // above); on `NoSheaf` it is given back.
        let obj = unsafe { FreeObject::new(obj) };
        match self.free_rcu_to_sheaf(obj) {
            Ok(()) | Err(RcuRefused::Report(_)) => Ok(()),
            Err(RcuRefused::NoSheaf(obj)) => Err(obj.into_allocated()),
        }
    }
}

/// The RCU callback of an `rcu_free` sheaf (Linux's `rcu_free_sheaf`): takes the sheaf back
/// from its head and gives it to its cache.
///
/// # Safety
/// `head` was queued by [`KmemCache::call_rcu_sheaf`] of a `KmemCache<P>` and its grace period
/// is over.
unsafe fn rcu_free_sheaf_callback<P: Platform>(head: NonNull<RcuHead>) {
    // SAFETY: the head is that of a sheaf in RCU's hands (caller contract), whose `cache` word
    // is the address of its live cache: destruction waits for this callback (`rcu_used`).
    let cache = unsafe { &*(SheafBox::rcu_head_cache(head) as *const KmemCache<P>) };
    let capacity = cache.sheaf_capacity;
    // SAFETY: the sheaf is a regular one of `capacity` pointers (`call_rcu_sheaf` checked) and
    // this callback is its owner now; the head is not used again.
    let sheaf = unsafe { SheafBox::from_rcu_head(head, capacity, cache.push_limit(capacity)) };
    cache.rcu_free_sheaf(sheaf);
}

/// An object waiting for its grace period on a record of its own ([`KmemCache::call_rcu_object`]).
#[repr(C)]
struct RcuObject<P: Platform> {
    /// What RCU links.
    head: RcuHead,
    /// The object to free.
    obj: FreeObject,
    /// Its cache.
    cache: NonNull<KmemCache<P>>,
}

/// The RCU callback of an [`RcuObject`]: frees the record, then the object (checks included).
///
/// # Safety
/// `head` was queued by [`KmemCache::call_rcu_object`] for a `KmemCache<P>` and its grace
/// period is over.
unsafe fn rcu_free_object_callback<P: Platform>(head: NonNull<RcuHead>) {
    let layout = core::alloc::Layout::new::<RcuObject<P>>();
    // SAFETY: the head is the `head` field of a record that `call_rcu_object` allocated with
    // `layout` and projected the head from; the callback owns the record and reads it once
    // before freeing it.
    let RcuObject { obj, cache, .. } = unsafe {
        let record = container_of::<RcuObject<P>>(head, core::mem::offset_of!(RcuObject<P>, head));
        let value = record.as_ptr().read();
        alloc::alloc::dealloc(record.as_ptr().cast(), layout);
        value
    };
    // SAFETY: the cache outlives the callbacks queued for it (`rcu_used`).
    let cache = unsafe { cache.as_ref() };
    // Problems are logged and reported by the cache itself.
    let _ = cache.free_object(obj);
}
