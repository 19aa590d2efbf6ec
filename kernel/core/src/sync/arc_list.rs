//! An intrusive list of `Arc`s: the link is a field of the item, so pushing never allocates.
//!
//! Linux's work items are queued through the `list_head` inside them (`work_struct::entry`);
//! [`ArcList`] is that, for items shared through `Arc`. An item embeds a [`ListLink`] and says
//! where it is ([`Linked`]); a list holds one strong reference of every item on it (taken at
//! push, given back at pop or remove). The workqueues keep their pools' lists here,
//! which makes `queue_work` allocation-free.
//!
//! The rule that makes one link per item enough: **an item is on at most one list of a link at
//! a time** (the workqueue crate guarantees it for work items). Each list has a unique id,
//! written into the links of its items, so that `remove` can tell whether an item is on *this*
//! list. The rule is enforced, not assumed: a push claims the link with an atomic
//! compare-and-swap of that id (a second list's push of the same item panics, whatever locks
//! the callers hold), and only the list whose id the link holds reads or writes the rest of it.
//! The link also records the item it was claimed for, and every later use checks it: a
//! [`Linked`] implementation that hands out another item's link, or a different link each
//! time, makes the list panic instead of corrupting it. So no safe caller can break a list.
//!
//! A list is given back the references it holds as `Arc<T, A>` made with `A::default()`: the
//! allocator must be zero-sized (checked at compile time), so any value of it is the one the
//! item was allocated with.
//!
//! An item that must be on two lists at once (a work item on a worklist while a stale timer of
//! it still waits on the timer list, as Linux's `delayed_work` has a `list_head` and a
//! `timer_list`) embeds one link per list kind, told apart by a marker type `M`:
//! `ListLink<T, M>`, `Linked<M>`, `ArcList<T, M>` (`M = ()` by default). Lists of one marker
//! use only the links of that marker, so lists of different markers never touch the same
//! memory.
//!
//! A list is used by one owner at a time (`&mut self`). For the item-moving code to be *correct*
//! (not panic), all the lists of one marker that an item can move between are used under one
//! lock (the workqueue crate keeps every list behind
//! its one lock; the kernel's timer list has a lock of its own): a list reads the link of an
//! item on another list only to see that it is not its own. Lists with a lock each are fine
//! too where an item moves only in an order those locks make visible: it is taken off one list
//! under that list's lock before anything puts it on another, and whoever does takes that
//! lock after the first (the scheduler's run queues, where a thread stays on its CPU's; the
//! wait queues, where a sleeping thread is on the one it sleeps on, and takes itself off it,
//! under its lock, before it returns).
//!
//! [`ArcList::new`] makes an empty list in a `static` (it takes its id at its first push).
//!
//! Items may live in memory of any zero-sized, `Default` allocator `A` (`Arc<T, A>`, e.g. a
//! thread from its static cache, [`crate::memory::cache_alloc`]); `A = Global` is kmalloc.

use alloc::alloc::Global;
use alloc::sync::Arc;
use core::alloc::Allocator;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

/// The link an item embeds to be on an [`ArcList`] of marker `M` (one link per marker).
pub struct ListLink<T, M = ()> {
    /// The id of the list the item is on; 0 when on none. Claimed by compare-and-swap: the
    /// list whose id this holds owns `inner`.
    list: AtomicU64,
    inner: UnsafeCell<Links<T>>,
    /// Which lists may use this link (no data: `fn() -> M` keeps `Send`/`Sync` independent of `M`).
    _marker: PhantomData<fn() -> M>,
}

struct Links<T> {
    next: *const T,
    prev: *const T,
    /// The item the link was claimed for (null when on no list).
    owner: *const T,
}

// SAFETY: `inner` is read and written only by the `ArcList` whose id `list` holds (claimed by
// compare-and-swap, released with a release store), through `&mut ArcList` (one owner at a
// time), or read through `&ArcList` when no `&mut` exists; `list` is atomic.
unsafe impl<T: Send + Sync, M> Send for ListLink<T, M> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync, M> Sync for ListLink<T, M> {}

impl<T, M> ListLink<T, M> {
    /// A link on no list.
    pub const fn new() -> Self {
        Self {
            list: AtomicU64::new(0),
            inner: UnsafeCell::new(Links {
                next: ptr::null(),
                prev: ptr::null(),
                owner: ptr::null(),
            }),
            _marker: PhantomData,
        }
    }
}

impl<T, M> Default for ListLink<T, M> {
    fn default() -> Self {
        Self::new()
    }
}

/// An item that can be on an [`ArcList`] of marker `M`: where its link for those lists is.
pub trait Linked<M = ()>: Sized {
    /// The item's link for the lists of marker `M`: a field of `self`, the same one every time
    /// (a list that finds otherwise panics; see the module docs).
    fn link(&self) -> &ListLink<Self, M>;
}

/// A FIFO list of `Arc<T, A>` linked through the items' links of marker `M`.
pub struct ArcList<T: Linked<M>, M = (), A: Allocator + Default = Global> {
    first: *const T,
    last: *const T,
    len: usize,
    id: u64,
    /// The list holds `Arc<T, A>`s (as raw pointers); `A` is a zero-sized value made anew
    /// with `Default` when one is given back.
    _marker: PhantomData<fn() -> (M, A)>,
}

// SAFETY: the list owns one strong reference of each item (an `Arc<T>` it could give to any
// thread), and `T: Send + Sync` makes sending those fine; `M` is only a marker.
unsafe impl<T: Linked<M> + Send + Sync, M, A: Allocator + Default> Send for ArcList<T, M, A> {}

/// Ids of lists: unique, never 0.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl<T: Linked<M>, M, A: Allocator + Default> Default for ArcList<T, M, A> {
    fn default() -> Self {
        Self {
            first: ptr::null(),
            last: ptr::null(),
            len: 0,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            _marker: PhantomData,
        }
    }
}

impl<T: Linked<M>, M, A: Allocator + Default> ArcList<T, M, A> {
    /// An empty list, usable in a `static` (the kernel's wait queues): it takes its id when
    /// the first item is pushed.
    pub const fn new() -> Self {
        Self {
            first: ptr::null(),
            last: ptr::null(),
            len: 0,
            id: 0,
            _marker: PhantomData,
        }
    }

    /// The list's id, taken now if it has none yet ([`new`](Self::new)).
    fn id(&mut self) -> u64 {
        if self.id == 0 {
            self.id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        }
        self.id
    }

    /// The link of the item at `p`, checked to be this list's and claimed for `p`.
    ///
    /// # Safety
    /// `p` points at a live item (one this list holds, or one the caller holds a reference to).
    ///
    /// # Panics
    /// If the link is not on this list or was claimed for another item (a [`Linked`] that
    /// does not return the item's own link every time).
    unsafe fn links<'a>(&self, p: *const T) -> &'a mut Links<T> {
        // SAFETY: `p` is live (caller contract).
        let link = <T as Linked<M>>::link(unsafe { &*p });
        assert_eq!(
            link.list.load(Ordering::Acquire),
            self.id,
            "an item's link is not on the list that holds the item"
        );
        // SAFETY: the link holds this list's id, so this list owns `inner`; every caller holds
        // `&mut self` (or `&self` with no `&mut` possible), so this is the only access.
        let links = unsafe { &mut *link.inner.get() };
        assert!(
            ptr::eq(links.owner, p),
            "a Linked implementation returned another item's link"
        );
        links
    }

    /// Claims `item`'s link for this list and takes the reference.
    ///
    /// # Panics
    /// If `item` is on a list already.
    fn claim(&mut self, item: Arc<T, A>, next: *const T, prev: *const T) -> *const T {
        const {
            assert!(
                core::mem::size_of::<A>() == 0,
                "the allocator is zero-sized: any value of it is the item's"
            )
        };
        let id = self.id();
        let p = Arc::into_raw_with_allocator(item).0;
        // SAFETY: we hold the reference `p` came from.
        let link = <T as Linked<M>>::link(unsafe { &*p });
        if link
            .list
            .compare_exchange(0, id, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: the reference taken above, given back before the panic.
            drop(unsafe { Arc::from_raw_in(p, A::default()) });
            panic!("an item on two lists");
        }
        // SAFETY: the compare-and-swap made this list the link's owner; `&mut self`.
        unsafe {
            *link.inner.get() = Links {
                next,
                prev,
                owner: p,
            }
        };
        p
    }

    /// Appends `item`.
    ///
    /// # Panics
    /// If `item` is on a list already.
    pub fn push_back(&mut self, item: Arc<T, A>) {
        let last = self.last;
        let p = self.claim(item, ptr::null(), last);
        if last.is_null() {
            self.first = p;
        } else {
            // SAFETY: the last item is on this list.
            unsafe { self.links(last).next = p };
        }
        self.last = p;
        self.len += 1;
    }

    /// Puts `item` first.
    ///
    /// # Panics
    /// If `item` is on a list already.
    pub fn push_front(&mut self, item: Arc<T, A>) {
        let first = self.first;
        let p = self.claim(item, first, ptr::null());
        if first.is_null() {
            self.last = p;
        } else {
            // SAFETY: the first item is on this list.
            unsafe { self.links(first).prev = p };
        }
        self.first = p;
        self.len += 1;
    }

    /// Unlinks the item at `p`, which is on this list, and returns its reference.
    ///
    /// # Safety
    /// `p` is on this list.
    unsafe fn unlink(&mut self, p: *const T) -> Arc<T, A> {
        // SAFETY: `p` and its neighbours are on this list (caller contract).
        unsafe {
            let Links { next, prev, .. } = *self.links(p);
            if prev.is_null() {
                self.first = next;
            } else {
                self.links(prev).next = next;
            }
            if next.is_null() {
                self.last = prev;
            } else {
                self.links(next).prev = prev;
            }
            *self.links(p) = Links {
                next: ptr::null(),
                prev: ptr::null(),
                owner: ptr::null(),
            };
            // The link is free: another list may claim it from now on.
            <T as Linked<M>>::link(&*p).list.store(0, Ordering::Release);
            self.len -= 1;
            // The reference `push_*` took; its allocator is a zero-sized `Default` value.
            Arc::from_raw_in(p, A::default())
        }
    }

    /// Removes and returns the first item.
    pub fn pop_front(&mut self) -> Option<Arc<T, A>> {
        let p = self.first;
        // SAFETY: the first item is on this list.
        (!p.is_null()).then(|| unsafe { self.unlink(p) })
    }

    /// Whether `item` is on this list.
    pub fn contains(&self, item: &T) -> bool {
        // A list without an id yet ([`new`](Self::new)) has never held an item.
        self.id != 0 && <T as Linked<M>>::link(item).list.load(Ordering::Acquire) == self.id
    }

    /// Removes `item` if it is on this list.
    pub fn remove(&mut self, item: &T) -> Option<Arc<T, A>> {
        let p = ptr::from_ref(item);
        // SAFETY: it is on this list (the id says so).
        self.contains(item).then(|| unsafe { self.unlink(p) })
    }

    /// The item after `p`.
    ///
    /// # Safety
    /// `p` is on this list.
    unsafe fn next_of(&self, p: *const T) -> *const T {
        // SAFETY: caller contract.
        unsafe { self.links(p).next }
    }

    /// Removes and returns the first item for which `pred` is true.
    pub fn take_first(&mut self, mut pred: impl FnMut(&Arc<T, A>) -> bool) -> Option<Arc<T, A>> {
        let mut p = self.first;
        while !p.is_null() {
            // SAFETY: `p` is on this list: a live `Arc` we hold, lent to `pred` without
            // changing its count (`ManuallyDrop`: not dropped here).
            let (hit, next) = unsafe {
                let arc = ManuallyDrop::new(Arc::from_raw_in(p, A::default()));
                (pred(&arc), self.next_of(p))
            };
            if hit {
                // SAFETY: `p` is on this list.
                return Some(unsafe { self.unlink(p) });
            }
            p = next;
        }
        None
    }

    /// Calls `f` on every item, first to last.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<T, A>)) {
        let mut p = self.first;
        while !p.is_null() {
            // SAFETY: as in `take_first`.
            unsafe {
                let arc = ManuallyDrop::new(Arc::from_raw_in(p, A::default()));
                f(&arc);
                p = self.next_of(p);
            }
        }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Linked<M>, M, A: Allocator + Default> Drop for ArcList<T, M, A> {
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

#[crate::ktest]
fn arc_list_keeps_order_and_references_and_knows_its_items() {
    use alloc::vec::Vec;
    struct Item {
        n: u32,
        link: ListLink<Item>,
    }
    impl Linked for Item {
        fn link(&self) -> &ListLink<Item> {
            &self.link
        }
    }
    let items: Vec<Arc<Item>> = (0..5)
        .map(|n| {
            Arc::new(Item {
                n,
                link: ListLink::new(),
            })
        })
        .collect();
    let mut a = ArcList::default();
    let mut b = ArcList::default();
    a.push_back(items[1].clone());
    a.push_back(items[2].clone());
    a.push_front(items[0].clone());
    b.push_back(items[3].clone());
    assert_eq!(
        Arc::strong_count(&items[0]),
        2,
        "the list holds a reference"
    );
    let mut seen = Vec::new();
    a.for_each(|i| seen.push(i.n));
    assert_eq!(seen, [0, 1, 2]);
    assert!(
        a.remove(&items[3]).is_none(),
        "on another list: not ours to remove"
    );
    assert!(a.remove(&items[4]).is_none(), "on no list");
    assert_eq!(a.remove(&items[1]).map(|i| i.n), Some(1));
    assert_eq!(a.take_first(|i| i.n == 2).map(|i| i.n), Some(2));
    assert_eq!(a.len(), 1);
    // An item taken off one list may go on another.
    b.push_back(items[1].clone());
    assert_eq!(b.pop_front().map(|i| i.n), Some(3));
    assert_eq!(b.pop_front().map(|i| i.n), Some(1));
    assert!(b.is_empty());
    drop(a); // gives its references back
    assert!(items.iter().all(|i| Arc::strong_count(i) == 1));
}

#[crate::ktest]
fn arc_list_items_with_two_links_are_on_a_list_of_each_marker_at_once() {
    use alloc::vec::Vec;
    /// The marker of the second link.
    struct Second;
    struct Item {
        n: u32,
        first: ListLink<Item>,
        second: ListLink<Item, Second>,
    }
    impl Linked for Item {
        fn link(&self) -> &ListLink<Item> {
            &self.first
        }
    }
    impl Linked<Second> for Item {
        fn link(&self) -> &ListLink<Item, Second> {
            &self.second
        }
    }
    let items: Vec<Arc<Item>> = (0..4)
        .map(|n| {
            Arc::new(Item {
                n,
                first: ListLink::new(),
                second: ListLink::new(),
            })
        })
        .collect();
    let mut a: ArcList<Item> = ArcList::default();
    let mut b: ArcList<Item> = ArcList::default();
    let mut s: ArcList<Item, Second> = ArcList::default();
    for i in &items {
        a.push_back(i.clone());
        s.push_front(i.clone());
    }
    assert_eq!(Arc::strong_count(&items[0]), 3, "a reference per list");
    assert!(a.contains(&items[2]) && s.contains(&items[2]) && !b.contains(&items[2]));
    // Taking an item off one marker's list leaves it on the other's.
    assert_eq!(s.remove(&items[2]).map(|i| i.n), Some(2));
    assert!(a.contains(&items[2]) && !s.contains(&items[2]));
    assert!(s.remove(&items[2]).is_none(), "not on it any more");
    let mut order = Vec::new();
    a.for_each(|i| order.push(i.n));
    assert_eq!(order, [0, 1, 2, 3], "the first links are untouched");
    order.clear();
    s.for_each(|i| order.push(i.n));
    assert_eq!(order, [3, 1, 0], "the second links are untouched");
    // Moving between two lists of the first marker while on the second marker's list.
    let one = a.remove(&items[1]).expect("on a");
    b.push_back(one);
    assert!(!a.contains(&items[1]) && b.contains(&items[1]) && s.contains(&items[1]));
    assert_eq!(s.take_first(|i| i.n == 1).map(|i| i.n), Some(1));
    drop((a, b, s));
    assert!(items.iter().all(|i| Arc::strong_count(i) == 1));
}
