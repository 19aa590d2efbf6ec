//! RCU for modules: `call_rcu`, `synchronize_rcu`, `rcu_barrier`, `rcu_read_lock`,
//! `rcu_read_unlock`, `kvfree_call_rcu` (what the header's `kfree_rcu` and
//! `kfree_rcu_mightsleep` expand to) and `kvfree_rcu_barrier`.
//!
//! **`struct rcu_head`** is [`CRcuHead`]: the kernel's [`RcuHead`] (a link and a Rust
//! function) followed by the module's C function, three words (Linux's is two: its `func` is
//! the C function itself; here the kernel's function is [`run_c_callback`], which calls the
//! third word). Its size and alignment are in `include/generated/module_abi.h`.
//!
//! **The read side.** C has no guard: `rcu_read_lock` disables preemption (the kernel's RCU is
//! non-preemptible: a read-side section is a section with preemption off, which no quiescent
//! state can interrupt) and counts the CPU's C nesting; `rcu_read_unlock` undoes one level.
//! Since preemption stays off while the count is above zero, the thread cannot leave its CPU,
//! so the per-CPU count is the thread's. An unlock without a lock is refused with a message
//! instead of corrupting the preemption count.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use kcore::cpu::MAX_CPUS;
use kcore::memory::kmalloc::slab;
use kcore::module::KernelSymbol;
use kcore::sync::rcu::{self, RcuHead};

/// This file's exports (GPL-only, as Linux's).
pub(super) static SYMBOLS: [KernelSymbol; 7] = [
    export_symbol_gpl!(call_rcu),
    export_symbol_gpl!(synchronize_rcu),
    export_symbol_gpl!(rcu_barrier),
    export_symbol_gpl!(rcu_read_lock),
    export_symbol_gpl!(rcu_read_unlock),
    export_symbol_gpl!(kvfree_call_rcu),
    export_symbol_gpl!(kvfree_rcu_barrier),
];

/// A module's `void (*)(struct rcu_head *)`.
pub type CRcuFunc = unsafe extern "C" fn(*mut CRcuHead);

/// C's `struct rcu_head`: the kernel's head, then the module's function.
#[repr(C)]
pub struct CRcuHead {
    head: RcuHead,
    func: Option<CRcuFunc>,
}

/// Each CPU's C read-side nesting (`rcu_read_lock` calls not yet undone).
static NESTING: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// The kernel's function of every C head: calls the module's.
///
/// # Safety
/// `head` is the first field of a [`CRcuHead`] queued by [`call_rcu`], whose caller promised
/// it stays valid until its function has run.
unsafe fn run_c_callback(head: NonNull<RcuHead>) {
    let c = head.cast::<CRcuHead>().as_ptr();
    // SAFETY: `head` starts a live `CRcuHead` (`repr(C)`, head first), written by `call_rcu`.
    let func = unsafe { (*c).func };
    if let Some(func) = func {
        // SAFETY: the module's callback, with the head it queued (its contract).
        unsafe { func(c) };
    }
}

/// Queues `head` so that `func(head)` runs in process context after a grace period (Linux's
/// `call_rcu`). Never allocates. A null head or function is refused with a message.
///
/// # Safety
/// `head` is valid, not queued already, and untouched until `func` runs; calling `func(head)`
/// then, on any CPU in a kernel thread, is sound (the module is still loaded: a module calls
/// `rcu_barrier` before it unloads).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn call_rcu(head: *mut CRcuHead, func: Option<CRcuFunc>) {
    let Some(c) = NonNull::new(head) else {
        log::error!("call_rcu: NULL rcu_head");
        return;
    };
    let Some(func) = func else {
        log::error!("call_rcu({head:p}): NULL function");
        return;
    };
    // SAFETY: the head is the caller's to hand over (contract): its words are ours to write.
    unsafe { (*head).func = Some(func) };
    // SAFETY: the kernel head is the first field; valid until `run_c_callback` ran (contract),
    // which calls the module's function as the caller asked.
    unsafe { rcu::call_rcu_head(c.cast::<RcuHead>(), run_c_callback) };
}

/// Whether a wait for a grace period may start here; a message naming `what` if not.
fn may_wait(what: &str) -> bool {
    if rcu::may_sleep() {
        return true;
    }
    log::error!(
        "{what}: called where it may not sleep (RCU read-side section, lock, interrupt or RCU callback): refused"
    );
    false
}

/// Waits for a grace period (Linux's `synchronize_rcu`). Sleeps; refused with a message
/// inside a read-side section or wherever sleeping is not allowed.
#[unsafe(no_mangle)]
pub extern "C" fn synchronize_rcu() {
    if may_wait("synchronize_rcu") {
        rcu::synchronize_rcu();
    }
}

/// Waits until every callback queued so far has run (Linux's `rcu_barrier`). Sleeps; refused
/// as [`synchronize_rcu`] is.
#[unsafe(no_mangle)]
pub extern "C" fn rcu_barrier() {
    if may_wait("rcu_barrier") {
        rcu::rcu_barrier();
    }
}

/// Enters a read-side critical section (Linux's `rcu_read_lock`): preemption off, nesting.
#[unsafe(no_mangle)]
pub extern "C" fn rcu_read_lock() {
    kcore::cpu::preempt_disable();
    NESTING[kcore::cpu::current_id()].fetch_add(1, Ordering::Relaxed);
}

/// Leaves a read-side critical section (Linux's `rcu_read_unlock`). One without a matching
/// `rcu_read_lock` on this CPU is refused with a message.
#[unsafe(no_mangle)]
pub extern "C" fn rcu_read_unlock() {
    // Read with preemption off (taken here), so the CPU does not change under the check.
    kcore::cpu::preempt_disable();
    let nesting = &NESTING[kcore::cpu::current_id()];
    let held = nesting.load(Ordering::Relaxed);
    if held == 0 {
        kcore::cpu::preempt_enable();
        log::error!("rcu_read_unlock without rcu_read_lock: ignored");
        return;
    }
    nesting.store(held - 1, Ordering::Relaxed);
    kcore::cpu::preempt_enable();
    // The level `rcu_read_lock` took.
    kcore::cpu::preempt_enable();
}

/// Frees `ptr` after a grace period (Linux's `kvfree_call_rcu`, what `kfree_rcu(ptr, field)`
/// and `kfree_rcu_mightsleep(ptr)` expand to). With a head (inside the object), allocates
/// nothing; without one (null), the slab allocator's headless `kfree_rcu`. Null `ptr` does
/// nothing; a `ptr` that is not the start of an allocation, or a head outside it, is refused
/// with a message.
///
/// # Safety
/// `ptr` is null or was returned by `kmalloc`/`kzalloc`/`kmem_cache_alloc` and is given up
/// (only RCU readers may still use it); `head`, if not null, lies inside it and is used for
/// nothing else until the object is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvfree_call_rcu(head: *mut CRcuHead, ptr: *mut c_void) {
    let Some(obj) = NonNull::new(ptr.cast::<u8>()) else {
        return;
    };
    if slab().object_start(ptr as usize) != Some(obj) {
        log::error!("kvfree_call_rcu({ptr:p}): not the start of an allocation: refused");
        return;
    }
    match NonNull::new(head) {
        Some(h) => {
            if slab().object_start(head as usize) != Some(obj) {
                log::error!(
                    "kvfree_call_rcu({ptr:p}): rcu_head {head:p} is not inside it: refused"
                );
                return;
            }
            // SAFETY: `ptr` starts a live allocation the caller gives up and `head` lies
            // inside it (checked above, and the caller's contract).
            unsafe { kcore::memory::kmalloc::kvfree_call_rcu(h.cast::<RcuHead>(), obj) };
        }
        None => {
            // SAFETY: an allocation the caller gives up (contract); bad pointers are reported.
            if let Err(report) = unsafe { slab().kfree_rcu(obj.as_ptr()) } {
                log::error!("kfree_rcu_mightsleep({ptr:p}) refused: {report}");
            }
        }
    }
}

/// Waits until every object given to `kvfree_call_rcu` so far is freed (Linux's
/// `kvfree_rcu_barrier`). Sleeps; refused as [`synchronize_rcu`] is.
#[unsafe(no_mangle)]
pub extern "C" fn kvfree_rcu_barrier() {
    if may_wait("kvfree_rcu_barrier") {
        slab().kvfree_rcu_barrier();
    }
}
