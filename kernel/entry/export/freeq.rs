//! The deferred free queue for modules (the 2019 RFC's `kmem_free_q`): queue objects while a
//! lock is held, free them after it is dropped. `kmem_free_q_init`, `kmem_free_q_add`,
//! `kmem_free_up_q`.
//!
//! **`struct kmem_free_q_head`** is the slab crate's [`KmemFreeQHead`] itself: C sees opaque
//! storage of its size and alignment (`include/generated/module_abi.h`), made empty by
//! `kmem_free_q_init` or `DEFINE_KMEM_FREE_Q` (all zero bytes: two null pointers and a zero
//! length, the state `KmemFreeQHead::new` makes). The head belongs to its user, who serialises
//! its calls on it (typically the lock the objects are queued under).

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;

use kcore::memory::kmalloc::{KernelPlatform, slab};
use kcore::module::KernelSymbol;
use slab::{KmemCache, KmemFreeQHead};

/// This file's exports (GPL-only, as the RFC's).
pub(super) static SYMBOLS: [KernelSymbol; 3] = [
    export_symbol_gpl!(kmem_free_q_init),
    export_symbol_gpl!(kmem_free_q_add),
    export_symbol_gpl!(kmem_free_up_q),
];

/// C's `struct kmem_free_q_head`.
pub type CFreeQHead = KmemFreeQHead<'static, KernelPlatform>;

/// `-EINVAL`.
const EINVAL: c_int = 22;

/// Makes `head` an empty queue (the RFC's `kmem_free_q_init`). Null is refused with a message.
///
/// # Safety
/// `head` is null or points at writable storage for a `struct kmem_free_q_head` that holds no
/// queued object (what it held is forgotten).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_free_q_init(head: *mut CFreeQHead) {
    if head.is_null() {
        log::error!("kmem_free_q_init: NULL head");
        return;
    }
    // SAFETY: writable storage of the head's size and alignment (caller contract, and the
    // generated header's checks); nothing is dropped (an old value is forgotten).
    unsafe { head.write(KmemFreeQHead::new()) };
}

/// Queues `obj` on `head`, to be freed by `kmem_free_up_q` (the RFC's `kmem_free_q_add`):
/// `s` is its cache, null for an object from `kmalloc`. Writes into the object's first 16
/// bytes; allocates nothing, takes no lock. Returns 0, or `-EINVAL` with a message when the
/// object is refused (null head, too small, a cache with a constructor, not an allocation,
/// already queued), in which case it is still the caller's (one queued already stays queued
/// once). The RFC's returns `void`; callers may ignore the result as they would there.
///
/// # Safety
/// `head` is an initialised queue; `s` is null or a live cache; `obj` is null or an object of
/// `s` (or from `kmalloc` for null) that the caller gives up unless refused; the objects stay
/// unused, and `s` alive, until `kmem_free_up_q`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_free_q_add(
    head: *mut CFreeQHead,
    s: *mut c_void,
    obj: *mut c_void,
) -> c_int {
    if head.is_null() {
        log::error!("kmem_free_q_add({obj:p}): NULL head");
        return -EINVAL;
    }
    let Some(obj) = NonNull::new(obj.cast::<u8>()) else {
        return 0;
    };
    let cache = if s.is_null() {
        None
    } else {
        // SAFETY: a live cache (caller contract).
        Some(unsafe { &*s.cast::<KmemCache<KernelPlatform>>() })
    };
    // SAFETY: an initialised head the caller serialises (contract).
    let head = unsafe { &mut *head };
    // SAFETY: the object is given up to the queue (contract); the allocator checks the
    // pointer, and refuses without writing anything.
    match unsafe { slab().kmem_free_q_add(head, cache, obj) } {
        Ok(()) => 0,
        Err(report) => {
            log::error!("kmem_free_q_add refused: {report}");
            -EINVAL
        }
    }
}

/// Frees every object queued on `head`, in the order queued, and leaves it empty (the RFC's
/// `kmem_free_up_q`). Call it after dropping the lock. Bad objects (a wrong cache, a double
/// free) are reported by the free checks; null `head` is refused with a message.
///
/// # Safety
/// `head` is null or an initialised queue whose objects were not used or freed since queued.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_free_up_q(head: *mut CFreeQHead) {
    if head.is_null() {
        log::error!("kmem_free_up_q: NULL head");
        return;
    }
    // SAFETY: an initialised head the caller serialises (contract).
    let head = unsafe { &mut *head };
    let result = slab().kmem_free_up_q(head);
    for report in &result.reports {
        log::error!("kmem_free_up_q: {report}");
    }
}
