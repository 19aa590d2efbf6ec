//! Time and CPUs for modules: `msleep`, `smp_processor_id`, `num_online_cpus`, and the
//! variable `jiffies` (Linux's `extern unsigned long volatile jiffies`: the export is the
//! address of the kernel's counter, which modules only read).

use core::ffi::c_uint;
use core::time::Duration;

use kcore::module::{KernelSymbol, SymbolAddress};

/// This file's exports.
pub(super) static SYMBOLS: [KernelSymbol; 4] = [
    export_symbol!(msleep),
    export_symbol!(smp_processor_id),
    export_symbol!(num_online_cpus),
    KernelSymbol {
        name: "jiffies",
        address: SymbolAddress(kcore::time::JIFFIES_ADDRESS.cast()),
        gpl_only: false,
    },
];

/// Sleeps at least `msecs` milliseconds, rounded up to whole ticks (Linux's `msleep`). Where
/// sleeping is not allowed (preemption off: a lock or an RCU read-side section, interrupts
/// off, an interrupt handler) it is refused with a message.
#[unsafe(no_mangle)]
pub extern "C" fn msleep(msecs: c_uint) {
    if !kcore::sync::interrupts_enabled()
        || kcore::cpu::in_interrupt()
        || !kcore::cpu::preemptible()
    {
        log::error!("msleep({msecs}): called where it may not sleep: refused");
        return;
    }
    kernel::time::sleep(Duration::from_millis(u64::from(msecs)));
}

/// The CPU the caller runs on (Linux's `smp_processor_id`): stable only while preemption is
/// off (`rcu_read_lock`) or in an item queued with `queue_work_on`.
#[unsafe(no_mangle)]
pub extern "C" fn smp_processor_id() -> c_uint {
    kcore::cpu::current_id() as c_uint
}

/// The number of online CPUs (Linux's `num_online_cpus`).
#[unsafe(no_mangle)]
pub extern "C" fn num_online_cpus() -> c_uint {
    kcore::cpu::online().count() as c_uint
}
