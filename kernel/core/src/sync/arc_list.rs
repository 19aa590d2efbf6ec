//! An intrusive list of `Arc`s: the link is a field of the item, so pushing never allocates.
//!
//! Linux's work items are queued through the `list_head` inside them (`work_struct::entry`);
//! [`ArcList`] is that, for items shared through `Arc`. An item embeds a [`ListLink`] and says
//! where it is ([`Linked`]); a list holds one strong reference of every item on it (taken at
//! push, given back at pop or remove). The services' workqueues keep their pools' lists here,
//! which makes `queue_work` allocation-free.
//!
//! The rule that makes one link per item enough: **an item is on at most one list of a link at
//! a time** (the workqueue crate guarantees it for work items). Each list has a unique id,
//! written into the links of its items, so that `remove` can tell whether an item is on *this*
//! list.
//!
//! An item that must be on two lists at once (a work item on a worklist while a stale timer of
//! it still waits on the timer list, as Linux's `delayed_work` has a `list_head` and a
//! `timer_list`) embeds one link per list kind, told apart by a marker type `M`:
//! `ListLink<T, M>`, `Linked<M>`, `ArcList<T, M>` (`M = ()` by default). Lists of one marker
//! use only the links of that marker, so lists of different markers never touch the same
//! memory.
//!
//! A list is used by one owner at a time (`&mut self`), and all the lists of one marker that an
//! item can move between are used under one lock (the workqueue crate keeps every list behind
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
    inner: UnsafeCell<Links<T>>,
    /// Which lists may use this link (no data: `fn() -> M` keeps `Send`/`Sync` independent of `M`).
    _marker: PhantomData<fn() -> M>,
}

struct Links<T> {
    next: *const T,
    prev: *const T,
    /// The id of the list the item is on; 0 when on none.
    list: u64,
}

// SAFETY: the links are read and written only by the `ArcList` the item is on, through
// `&mut ArcList` (one owner at a time); an item on no list is never touched through them.
unsafe impl<T: Send + Sync, M> Send for ListLink<T, M> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync, M> Sync for ListLink<T, M> {}

impl<T, M> ListLink<T, M> {
    /// A link on no list.
    pub const fn new() -> Self {
        Self {
            inner: UnsafeCell::new(Links {
                next: ptr::null(),
                prev: ptr::null(),
                list: 0,
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
    /// The item's link for the lists of marker `M`.
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

    /// The links of the item at `p`.
    ///
    /// # Safety
    /// `p` is an item this list holds (a pointer from `Arc::into_raw`, alive while held), or
    /// the caller owns a reference to it.
    unsafe fn links<'a>(p: *const T) -> &'a mut Links<T> {
        // SAFETY: caller contract; `&mut self` of the list (every caller holds it) makes this
        // the only access to the links of its items.
        unsafe { &mut *<T as Linked<M>>::link(&*p).inner.get() }
    }

    /// Appends `item`.
    ///
    /// # Panics
    /// If `item` is on a list already.
    pub fn push_back(&mut self, item: Arc<T, A>) {
        let id = self.id();
        let p = Arc::into_raw_with_allocator(item).0;
        // SAFETY: we now hold the reference `p` came from; the last item is ours.
        unsafe {
            let l = Self::links(p);
            assert_eq!(l.list, 0, "an item on two lists");
            *l = Links {
                next: ptr::null(),
                prev: self.last,
                list: id,
            };
            if self.last.is_null() {
                self.first = p;
            } else {
                Self::links(self.last).next = p;
            }
        }
        self.last = p;
        self.len += 1;
    }

    /// Puts `item` first.
    ///
    /// # Panics
    /// If `item` is on a list already.
    pub fn push_front(&mut self, item: Arc<T, A>) {
        let id = self.id();
        let p = Arc::into_raw_with_allocator(item).0;
        // SAFETY: as in `push_back`.
        unsafe {
            let l = Self::links(p);
            assert_eq!(l.list, 0, "an item on two lists");
            *l = Links {
                next: self.first,
                prev: ptr::null(),
                list: id,
            };
            if self.first.is_null() {
                self.last = p;
            } else {
                Self::links(self.first).prev = p;
            }
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
            let Links { next, prev, .. } = *Self::links(p);
            if prev.is_null() {
                self.first = next;
            } else {
                Self::links(prev).next = next;
            }
            if next.is_null() {
                self.last = prev;
            } else {
                Self::links(next).prev = prev;
            }
            *Self::links(p) = Links {
                next: ptr::null(),
                prev: ptr::null(),
                list: 0,
            };
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
        if self.id == 0 {
            return false;
        }
        // SAFETY: the caller holds a reference to `item`, and its links of this marker are
        // written only under the lock all the lists of the marker share, or in an order that
        // lock hand-overs make visible (module docs).
        unsafe { (*<T as Linked<M>>::link(item).inner.get()).list == self.id }
    }

    /// Removes `item` if it is on this list.
    pub fn remove(&mut self, item: &T) -> Option<Arc<T, A>> {
        let p = ptr::from_ref(item);
        // SAFETY: it is on this list (the id says so).
        self.contains(item).then(|| unsafe { self.unlink(p) })
    }

    /// The item after `p` (read through the raw link, without a `&mut`).
    ///
    /// # Safety
    /// `p` is on this list.
    unsafe fn next_of(p: *const T) -> *const T {
        // SAFETY: caller contract: a live item whose links only this list writes.
        unsafe { (*<T as Linked<M>>::link(&*p).inner.get()).next }
    }

    /// Removes and returns the first item for which `pred` is true.
    pub fn take_first(&mut self, mut pred: impl FnMut(&Arc<T, A>) -> bool) -> Option<Arc<T, A>> {
        let mut p = self.first;
        while !p.is_null() {
            // SAFETY: `p` is on this list: a live `Arc` we hold, lent to `pred` without
            // changing its count (`ManuallyDrop`: not dropped here).
            let (hit, next) = unsafe {
                let arc = ManuallyDrop::new(Arc::from_raw_in(p, A::default()));
                (pred(&arc), Self::next_of(p))
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
                p = Self::next_of(p);
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
