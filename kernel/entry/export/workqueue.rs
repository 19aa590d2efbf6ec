//! Workqueues for modules: `schedule_work`, `queue_work`, `queue_work_on`,
//! `queue_delayed_work`, `flush_work`, `cancel_work_sync`, `cancel_delayed_work_sync`,
//! `alloc_workqueue`, `destroy_workqueue`, and the variable `system_wq`.
//!
//! **`struct work_struct`** ([`CWork`]) is the module's function and a reserved word, in the
//! module's memory (`INIT_WORK` is a header macro that sets them); `struct delayed_work`
//! ([`CDelayedWork`]) is a `work_struct`. The kernel's item is a Rust object (`WorkRef`, an
//! `Arc` from the `work_struct` cache) that cannot live in module memory, so the kernel keeps
//! one per C item *while the C item is in use*, in [`ATTACHED`] (keyed by the C address):
//!
//! - a queueing call attaches one if none is (allocating: it may fail, and then the call
//!   returns false with a message), and queues it, under [`ATTACHED`]'s lock;
//! - it is detached (and freed once the workqueues drop it) when the item is idle again: by
//!   the kernel's function after the module's function returned and nobody queued it anew,
//!   and by `cancel_work_sync`, `cancel_delayed_work_sync` and `flush_work`.
//!
//! So the rule is Linux's: a C item must be idle (its function returned and not queued again,
//! or after `cancel_*_sync`/`flush_work`) before its memory is freed, reused or re-`INIT_WORK`ed,
//! and before the module unloads; then nothing of it is left in the kernel. (A canceled
//! delayed item's timer, already armed, holds the kernel object until it would have fired,
//! then frees it; it runs nothing.)
//!
//! **`struct workqueue_struct *`** is the address of a slot of [`SLOTS`]: slot 0 is
//! `system_wq` (exported as a variable, as Linux's), the others are handed out by
//! `alloc_workqueue` (at most [`MAX_MODULE_WQS`] queues of modules at once). A pointer that is
//! not a live slot is refused with a message. A slot remembers the queue last destroyed in it
//! and `alloc_workqueue` makes it new again in place (`workqueue::reuse_workqueue`), so
//! creating and destroying queues does not grow the kernel's table (`WQ_MEM_RECLAIM` queues
//! excepted: their slot in the table stays). Names are interned: one allocation per distinct
//! name, kept.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{CStr, c_char, c_int, c_uint, c_ulong};
use core::fmt::Write;

use kcore::module::{KernelSymbol, SymbolAddress};
use kcore::sync::{IrqSpinLock, Mutex};
use kcore::workqueue::{self as wq, WorkRef, Workqueue, WqFlags};

/// This file's exports (`alloc_workqueue` GPL-only, as Linux's).
pub(super) static SYMBOLS: [KernelSymbol; 11] = [
    export_symbol!(schedule_work),
    export_symbol!(queue_work),
    export_symbol!(queue_work_on),
    export_symbol!(queue_delayed_work),
    export_symbol!(flush_work),
    export_symbol!(cancel_work_sync),
    export_symbol!(cancel_delayed_work_sync),
    export_symbol_gpl!(alloc_workqueue),
    export_symbol!(destroy_workqueue),
    KernelSymbol {
        name: "system_wq",
        address: SymbolAddress(&raw const system_wq as *const ()),
        gpl_only: false,
    },
    KernelSymbol {
        name: "system_unbound_wq",
        address: SymbolAddress(&raw const system_unbound_wq as *const ()),
        gpl_only: false,
    },
];

/// A module's `void (*)(struct work_struct *)`.
pub type CWorkFunc = unsafe extern "C" fn(*mut CWork);

/// C's `struct work_struct`.
#[repr(C)]
pub struct CWork {
    func: Option<CWorkFunc>,
    /// Zero (`INIT_WORK`); reserved.
    reserved: usize,
}

/// C's `struct delayed_work`.
#[repr(C)]
pub struct CDelayedWork {
    work: CWork,
}

/// The kernel item of each C item in use, by the C item's address.
static ATTACHED: IrqSpinLock<BTreeMap<usize, WorkRef>> = IrqSpinLock::new(BTreeMap::new());

/// What a slot of [`SLOTS`] holds.
#[derive(Clone, Copy)]
enum Slot {
    /// Free; the queue last destroyed in it, if any, to be made new again.
    Free(Option<Workqueue>),
    /// Being set up or torn down.
    Busy,
    /// A module's live queue.
    Live(Workqueue),
    /// `system_wq`.
    System,
    /// `system_unbound_wq`.
    SystemUnbound,
}

/// The most workqueues modules may have at once.
pub const MAX_MODULE_WQS: usize = 64;

/// C's `struct workqueue_struct`: a slot.
pub struct WqSlot(IrqSpinLock<Slot>);

/// The slots: 0 `system_wq`, 1 `system_unbound_wq`, then the modules' queues.
static SLOTS: [WqSlot; MAX_MODULE_WQS + 2] = {
    let mut slots = [const { WqSlot(IrqSpinLock::new(Slot::Free(None))) }; MAX_MODULE_WQS + 2];
    slots[0] = WqSlot(IrqSpinLock::new(Slot::System));
    slots[1] = WqSlot(IrqSpinLock::new(Slot::SystemUnbound));
    slots
};

/// A C pointer to a slot, as an exported variable.
#[repr(transparent)]
pub struct WqPtr(*const WqSlot);

// SAFETY: an address that is never written and only compared by the kernel.
unsafe impl Sync for WqPtr {}

/// Linux's `system_wq`: `struct workqueue_struct *`.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static system_wq: WqPtr = WqPtr(&raw const SLOTS[0]);

/// Linux's `system_unbound_wq`.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static system_unbound_wq: WqPtr = WqPtr(&raw const SLOTS[1]);

/// The slot index of a C pointer, if it is one.
fn slot_index(p: *const WqSlot) -> Option<usize> {
    let base = SLOTS.as_ptr() as usize;
    let off = (p as usize).checked_sub(base)?;
    let i = off / size_of::<WqSlot>();
    (off % size_of::<WqSlot>() == 0 && i < SLOTS.len()).then_some(i)
}

/// The workqueue behind a C pointer, or a message naming `what`.
fn workqueue_of(p: *const WqSlot, what: &str) -> Option<Workqueue> {
    let found = slot_index(p).and_then(|i| match *SLOTS[i].0.lock() {
        Slot::Live(q) => Some(q),
        Slot::System => Some(wq::system_wq()),
        Slot::SystemUnbound => Some(wq::system_unbound_wq()),
        Slot::Free(_) | Slot::Busy => None,
    });
    if found.is_none() {
        log::error!("{what}: {p:p} is not a live workqueue: refused");
    }
    found
}

/// The kernel's function of every C item: calls the module's, then detaches the kernel item
/// if nobody queued the C item again meanwhile.
fn run_c_work(addr: usize, me: &WorkRef) {
    let c = addr as *mut CWork;
    // SAFETY: the C item is attached, so in use: its module keeps it valid (the file's rule).
    let func = unsafe { (*c).func };
    match func {
        // SAFETY: the module's function with the item it queued.
        Some(f) => unsafe { f(c) },
        None => log::error!("work {c:p}: no function (INIT_WORK with NULL?)"),
    }
    let gone = {
        let mut attached = ATTACHED.lock();
        match attached.get(&addr) {
            Some(w) if core::ptr::eq(w.as_ptr(), me.as_ptr()) && !w.is_pending() => {
                attached.remove(&addr)
            }
            _ => None,
        }
    };
    drop(gone);
}

/// Attaches a kernel item to `work` if needed and calls `queue` with it, under
/// [`ATTACHED`]'s lock; detaches a new item that `queue` did not queue.
fn queue_c(work: *mut CWork, what: &str, queue: impl FnOnce(&WorkRef) -> bool) -> bool {
    if work.is_null() {
        log::error!("{what}: NULL work: refused");
        return false;
    }
    // SAFETY: a non-null `work_struct` of the caller (each queueing call's contract).
    if unsafe { (*work).func }.is_none() {
        log::error!("{what}({work:p}): no function (INIT_WORK first): refused");
        return false;
    }
    let addr = work as usize;
    let mut attached = ATTACHED.lock();
    let (w, new) = match attached.get(&addr) {
        Some(w) => (w.clone(), false),
        None => {
            let w = WorkRef::new("module work", move |me| run_c_work(addr, me));
            attached.insert(addr, w.clone());
            (w, true)
        }
    };
    let queued = queue(&w);
    let gone = if !queued && new {
        attached.remove(&addr)
    } else {
        None
    };
    drop(attached);
    drop(gone);
    queued
}

/// After a cancel or flush of `w`: detaches it from `addr` if still attached and idle.
fn detach_if_idle(addr: usize, w: &WorkRef) {
    let gone = {
        let mut attached = ATTACHED.lock();
        match attached.get(&addr) {
            Some(a) if core::ptr::eq(a.as_ptr(), w.as_ptr()) && !a.is_pending() => {
                attached.remove(&addr)
            }
            _ => None,
        }
    };
    drop(gone);
}

/// The kernel item attached to `work`, for a waiting call named `what` (refused where it may
/// not sleep).
fn attached_for_wait(work: *mut CWork, what: &str) -> Option<WorkRef> {
    if work.is_null() {
        log::error!("{what}: NULL work: refused");
        return None;
    }
    if !kcore::sync::rcu::may_sleep() {
        log::error!("{what}({work:p}): called where it may not sleep: refused");
        return None;
    }
    ATTACHED.lock().get(&(work as usize)).cloned()
}

/// Queues `work` on `wq` (Linux's `queue_work`): false if it was pending already, or refused
/// (a message: NULL, no function, not a live queue, no memory for the kernel item).
///
/// # Safety
/// `work` is null or an `INIT_WORK`ed item that stays valid until idle again (the file's rule);
/// `wq` is null or a `struct workqueue_struct *` the kernel gave.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn queue_work(wq: *const WqSlot, work: *mut CWork) -> bool {
    let Some(q) = workqueue_of(wq, "queue_work") else {
        return false;
    };
    queue_c(work, "queue_work", |w| wq::queue_work(q, w))
}

/// Queues `work` on the system workqueue (Linux's `schedule_work`).
///
/// # Safety
/// As for [`queue_work`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn schedule_work(work: *mut CWork) -> bool {
    queue_c(work, "schedule_work", wq::schedule_work)
}

/// Queues `work` on `wq` to run on CPU `cpu` (Linux's `queue_work_on`). A CPU that is not
/// online is refused with a message.
///
/// # Safety
/// As for [`queue_work`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn queue_work_on(cpu: c_int, wq: *const WqSlot, work: *mut CWork) -> bool {
    let online = usize::try_from(cpu)
        .ok()
        .filter(|&c| kcore::cpu::cpu(c).is_some_and(|c| c.is_online()));
    let Some(cpu) = online else {
        log::error!("queue_work_on: CPU {cpu} is not online: refused");
        return false;
    };
    let Some(q) = workqueue_of(wq, "queue_work_on") else {
        return false;
    };
    queue_c(work, "queue_work_on", |w| wq::queue_work_on(cpu, q, w))
}

/// Queues `dwork` on `wq` after `delay` jiffies (Linux's `queue_delayed_work`): false if it
/// was pending already, or refused as [`queue_work`].
///
/// # Safety
/// As for [`queue_work`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn queue_delayed_work(
    wq: *const WqSlot,
    dwork: *mut CDelayedWork,
    delay: c_ulong,
) -> bool {
    let Some(q) = workqueue_of(wq, "queue_delayed_work") else {
        return false;
    };
    queue_c(dwork.cast(), "queue_delayed_work", |w| {
        wq::queue_delayed_work(q, w, delay)
    })
}

/// Waits for `work`'s last queueing to finish (Linux's `flush_work`): true if it waited. Must
/// not be called by the item itself; refused where sleeping is not allowed.
///
/// # Safety
/// `work` is null or an `INIT_WORK`ed item.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flush_work(work: *mut CWork) -> bool {
    let Some(w) = attached_for_wait(work, "flush_work") else {
        return false;
    };
    let waited = wq::flush_work(&w);
    detach_if_idle(work as usize, &w);
    waited
}

/// Cancels `work` and waits for a running instance (Linux's `cancel_work_sync`): true if it
/// was pending. Afterwards it is idle and nothing of it is left in the kernel.
///
/// # Safety
/// `work` is null or an `INIT_WORK`ed item.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cancel_work_sync(work: *mut CWork) -> bool {
    let Some(w) = attached_for_wait(work, "cancel_work_sync") else {
        return false;
    };
    let was = wq::cancel_work_sync(&w);
    detach_if_idle(work as usize, &w);
    was
}

/// [`cancel_work_sync`] for a delayed item (Linux's `cancel_delayed_work_sync`).
///
/// # Safety
/// `dwork` is null or an `INIT_DELAYED_WORK`ed item.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cancel_delayed_work_sync(dwork: *mut CDelayedWork) -> bool {
    let Some(w) = attached_for_wait(dwork.cast(), "cancel_delayed_work_sync") else {
        return false;
    };
    let was = wq::cancel_delayed_work_sync(&w);
    detach_if_idle(dwork as usize, &w);
    was
}

/// The longest workqueue name (Linux's `WQ_NAME_LEN` less its NUL); longer ones are cut.
const WQ_NAME_LEN: usize = 31;

/// The interned names of the modules' queues: one allocation per distinct name, kept (the
/// workqueues keep `&'static str` names).
static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn intern(name: &str) -> &'static str {
    let mut names = NAMES.lock();
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let n: &'static str = String::from(name).leak();
    names.push(n);
    n
}

/// A name being formatted, cut at [`WQ_NAME_LEN`] bytes.
struct Name(String);

impl Write for Name {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for ch in s.chars() {
            if self.0.len() + ch.len_utf8() > WQ_NAME_LEN {
                break;
            }
            self.0.push(ch);
        }
        Ok(())
    }
}

/// The `WQ_*` flags the kernel knows (Linux's values); `WQ_FREEZABLE`, `WQ_SYSFS` and
/// `WQ_POWER_EFFICIENT` are accepted and mean nothing here.
const WQ_IGNORED: c_uint = (1 << 2) | (1 << 6) | (1 << 7);

/// Allocates a workqueue named by `fmt` and its arguments (Linux's `alloc_workqueue`): flags
/// `WQ_UNBOUND`, `WQ_MEM_RECLAIM`, `WQ_HIGHPRI` (others refused, but for the ignored ones),
/// `max_active` 0 for the default. Null, with a message, on error (bad arguments, no slot
/// left, no memory).
///
/// # Safety
/// `fmt` is a NUL-terminated format whose conversions match the arguments (as for `printk`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn alloc_workqueue(
    fmt: *const c_char,
    flags: c_uint,
    max_active: c_int,
    mut args: ...
) -> *const WqSlot {
    if fmt.is_null() {
        log::error!("alloc_workqueue: NULL name: refused");
        return core::ptr::null();
    }
    // SAFETY: NUL-terminated (caller contract).
    let fmt = unsafe { CStr::from_ptr(fmt) }.to_bytes();
    let mut name = Name(String::new());
    printf::format(fmt, &mut super::print::VaArgs(&mut args), &mut name);
    let name = name.0;
    let Some(wq_flags) = WqFlags::from_bits(flags & !WQ_IGNORED) else {
        log::error!("alloc_workqueue({name}): unknown flags {flags:#x}: refused");
        return core::ptr::null();
    };
    let Ok(max_active) = usize::try_from(max_active) else {
        log::error!("alloc_workqueue({name}): max_active {max_active}: refused");
        return core::ptr::null();
    };
    if !kcore::sync::rcu::may_sleep() {
        log::error!("alloc_workqueue({name}): called where it may not sleep: refused");
        return core::ptr::null();
    }
    let name = intern(&name);
    // Take a free slot.
    let Some((i, prev)) = SLOTS.iter().enumerate().find_map(|(i, s)| {
        let mut slot = s.0.lock();
        match *slot {
            Slot::Free(prev) => {
                *slot = Slot::Busy;
                Some((i, prev))
            }
            _ => None,
        }
    }) else {
        log::error!("alloc_workqueue({name}): {MAX_MODULE_WQS} module workqueues already");
        return core::ptr::null();
    };
    let made = match prev {
        Some(old) if !wq_flags.contains(WqFlags::WQ_MEM_RECLAIM) => {
            wq::reuse_workqueue(old, name, wq_flags, max_active)
                .or_else(|_| wq::alloc_workqueue(name, wq_flags, max_active))
        }
        _ => wq::alloc_workqueue(name, wq_flags, max_active),
    };
    match made {
        Ok(q) => {
            *SLOTS[i].0.lock() = Slot::Live(q);
            &raw const SLOTS[i]
        }
        Err(e) => {
            *SLOTS[i].0.lock() = Slot::Free(prev);
            log::error!("alloc_workqueue({name}): {e:?}");
            core::ptr::null()
        }
    }
}

/// Destroys a workqueue `alloc_workqueue` made (Linux's `destroy_workqueue`): waits for its
/// pending items first. Null does nothing; the system queues and pointers that are not live
/// queues are refused with a message.
///
/// # Safety
/// Nobody queues on `wq` during or after the call, and delayed items queued on it were
/// canceled (as on Linux).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn destroy_workqueue(wq: *const WqSlot) {
    if wq.is_null() {
        return;
    }
    let taken = slot_index(wq).and_then(|i| {
        let mut slot = SLOTS[i].0.lock();
        match *slot {
            Slot::Live(q) => {
                *slot = Slot::Busy;
                Some((i, q))
            }
            _ => None,
        }
    });
    let Some((i, q)) = taken else {
        log::error!("destroy_workqueue({wq:p}): not a workqueue of a module: refused");
        return;
    };
    if !kcore::sync::rcu::may_sleep() {
        *SLOTS[i].0.lock() = Slot::Live(q);
        log::error!("destroy_workqueue({wq:p}): called where it may not sleep: refused");
        return;
    }
    wq::destroy_workqueue(q);
    *SLOTS[i].0.lock() = Slot::Free(Some(q));
}
