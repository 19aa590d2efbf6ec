//! Unit tests of the callback head and its queue.

use core::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::vec::Vec;

use super::{CallbackHead, HeadQueue, container_of};

/// A structure with a head that is not its first field.
#[repr(C)]
struct Item {
    value: usize,
    head: CallbackHead,
}

/// The sum of the values of the items run, each multiplied by its turn (so order matters).
static RUN: AtomicUsize = AtomicUsize::new(0);
static TURN: AtomicUsize = AtomicUsize::new(0);

/// Adds the item's value times its turn to `RUN`.
///
/// # Safety
/// `head` is the head of a live `Item`, projected from the item's pointer.
unsafe fn record(head: NonNull<CallbackHead>) {
    // SAFETY: caller contract.
    let item = unsafe { container_of::<Item>(head, core::mem::offset_of!(Item, head)).as_ref() };
    let turn = TURN.fetch_add(1, Ordering::Relaxed) + 1;
    RUN.fetch_add(item.value * turn, Ordering::Relaxed);
}

#[test]
fn heads_run_in_queueing_order_and_find_their_structure() {
    let mut items: Vec<Item> = (1..=3)
        .map(|value| Item {
            value,
            head: CallbackHead::new(),
        })
        .collect();
    let mut q = HeadQueue::new();
    assert!(q.is_empty());
    for item in items.iter_mut() {
        let p: *mut Item = item;
        // SAFETY: the items outlive the queue's use of them; each head is queued once, and is
        // projected from its item's pointer.
        unsafe {
            let head = NonNull::new_unchecked(&raw mut (*p).head);
            CallbackHead::set_func(head, record);
            q.push_back(head);
        }
    }
    assert_eq!(q.len(), 3);
    while let Some(head) = q.pop_front() {
        // SAFETY: popped, function set, the item is alive.
        unsafe { CallbackHead::run(head) };
    }
    assert!(q.is_empty());
    assert_eq!(q.pop_front(), None);
    // 1*1 + 2*2 + 3*3: each item found through its head, in FIFO order.
    assert_eq!(RUN.load(Ordering::Relaxed), 14);
    // A head can be queued again once it has run.
    let p: *mut Item = &mut items[0];
    // SAFETY: as above; the head is off every queue.
    unsafe {
        let head = NonNull::new_unchecked(&raw mut (*p).head);
        CallbackHead::set_func(head, record);
        q.push_back(head);
    }
    assert_eq!(q.len(), 1);
    let head = q.pop_front().unwrap();
    // SAFETY: as above.
    unsafe { CallbackHead::run(head) };
    assert_eq!(RUN.load(Ordering::Relaxed), 14 + 4);
}
