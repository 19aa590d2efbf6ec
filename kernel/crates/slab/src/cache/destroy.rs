//! The caches whose destruction is pending: a list linked through the caches themselves
//! (Linux's `slab_caches_to_rcu_destroy`, through the `list_head` every `kmem_cache` has), so
//! that putting a cache on it, like queueing the cache's `async_destroy_work`, allocates
//! nothing.
//!
//! A destroy that finds objects in `kfree_rcu` flight puts the cache on its allocator's
//! [`DestroyList`] and queues the cache's work item (`registry/owned.rs`); the work item takes
//! the cache off with [`DestroyList::leave`] before it frees it. Meanwhile the list answers
//! `slabinfo -d` ([`DestroyList::for_each`]) and recognises a second destroy of the same cache
//! ([`DestroyList::contains`]).
//!
//! Unsafe code: the list follows raw pointers between caches, valid because a listed cache is
//! alive (the contract of [`DestroyList::push_back`]).

use alloc::sync::Arc;
use core::cell::Cell;
use core::ptr;

use super::KmemCache;
use crate::platform::Platform;
use crate::sync::Mutex;

/// A cache's link on a [`DestroyList`] (in [`KmemCache`], beside its `async_destroy_work`).
pub(crate) struct DestroyLink<P: Platform> {
    /// The next cache on the list (null: the last); read and written under the list's lock.
    next: Cell<*const KmemCache<P>>,
    /// The list the cache is on, while it is: how the work item finds it to leave it. A strong
    /// reference, so the list outlives every cache on it whatever happens to the allocator.
    list: Mutex<Option<Arc<DestroyList<P>>>>,
}

impl<P: Platform> DestroyLink<P> {
    /// The link of a cache on no list.
    pub(crate) fn new() -> Self {
        Self {
            next: Cell::new(ptr::null()),
            list: Mutex::new(None),
        }
    }
}

/// The first and last caches of a [`DestroyList`], and how many there are.
struct Ends<P: Platform> {
    first: *const KmemCache<P>,
    last: *const KmemCache<P>,
    len: usize,
}

// SAFETY: the pointers name caches, which are shared between CPUs by design (`KmemCache` is
// `Sync`); they are only followed under the list's lock.
unsafe impl<P: Platform> Send for Ends<P> {}

/// The caches of one allocator whose destruction is pending, oldest first, linked through their
/// [`DestroyLink`]s.
pub(crate) struct DestroyList<P: Platform> {
    ends: Mutex<Ends<P>>,
}

impl<P: Platform> DestroyList<P> {
    /// An empty list.
    pub(crate) fn new() -> Self {
        Self {
            ends: Mutex::new(Ends {
                first: ptr::null(),
                last: ptr::null(),
                len: 0,
            }),
        }
    }

    /// Appends `cache`, which is on no list.
    ///
    /// # Safety
    /// `cache` stays valid until it has left the list ([`DestroyList::leave`]).
    pub(crate) unsafe fn push_back(self: &Arc<Self>, cache: &KmemCache<P>) {
        let mut list = cache.destroy_link.list.lock();
        assert!(list.is_none(), "a cache is destroyed once");
        *list = Some(self.clone());
        drop(list);
        let mut ends = self.ends.lock();
        cache.destroy_link.next.set(ptr::null());
        if ends.last.is_null() {
            ends.first = cache;
        } else {
            // SAFETY: `last` is on the list, so alive (the contract of `push_back`); its link
            // is ours under the lock.
            unsafe { (*ends.last).destroy_link.next.set(cache) };
        }
        ends.last = cache;
        ends.len += 1;
    }

    /// Takes `cache` off the list it is on, if any; returns whether it was on one.
    pub(crate) fn leave(cache: &KmemCache<P>) -> bool {
        let Some(list) = cache.destroy_link.list.lock().take() else {
            return false;
        };
        let mut ends = list.ends.lock();
        let mut prev: *const KmemCache<P> = ptr::null();
        let mut cur = ends.first;
        while !cur.is_null() && !ptr::eq(cur, cache) {
            prev = cur;
            // SAFETY: a listed cache is alive (the contract of `push_back`).
            cur = unsafe { (*cur).destroy_link.next.get() };
        }
        assert!(!cur.is_null(), "a cache is on the list it names");
        let next = cache.destroy_link.next.replace(ptr::null());
        if prev.is_null() {
            ends.first = next;
        } else {
            // SAFETY: as above; its link is ours under the lock.
            unsafe { (*prev).destroy_link.next.set(next) };
        }
        if ptr::eq(ends.last, cache) {
            ends.last = prev;
        }
        ends.len -= 1;
        true
    }

    /// Whether a cache at address `addr` is on the list.
    pub(crate) fn contains_addr(&self, addr: usize) -> bool {
        let mut found = false;
        self.for_each(|c| found |= ptr::from_ref(c) as usize == addr);
        found
    }

    /// Whether `cache` is on the list (a second destroy of a cache still pending).
    pub(crate) fn contains(&self, cache: &KmemCache<P>) -> bool {
        self.contains_addr(ptr::from_ref(cache) as usize)
    }

    /// Calls `f` on every cache of the list, oldest first, under the list's lock (`f` must
    /// not destroy caches).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&KmemCache<P>)) {
        let ends = self.ends.lock();
        let mut cur = ends.first;
        while !cur.is_null() {
            // SAFETY: a listed cache is alive (the contract of `push_back`), and stays on the
            // list (so alive) while we hold the lock.
            let cache = unsafe { &*cur };
            f(cache);
            cur = cache.destroy_link.next.get();
        }
    }

    /// Number of caches on the list.
    pub(crate) fn len(&self) -> usize {
        self.ends.lock().len
    }
}
