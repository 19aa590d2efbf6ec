//! Time: a monotonic clock (sleeping is the services' `timer`; the tick itself is the timer
//! interrupt's, `arch::interrupts`).
//!
//! Two clocks, as in Linux:
//! - **`jiffies`**: timer ticks since the tick started, [`HZ`] per second. Every CPU's local
//!   APIC timer interrupts it [`HZ`] times a second; the boot CPU's tick advances `jiffies`,
//!   then every CPU's tick runs the services' [`TICK_HOOK`], RCU's and the scheduler's share.
//! - **uptime**: the CPU's time-stamp counter (TSC), calibrated at boot against the PIT (count
//!   TSC cycles across 10 ms of its known 1.193182 MHz clock), for fine-grained real time.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::Hook;

/// Timer ticks per second.
pub const HZ: u32 = 100;

static JIFFIES: AtomicU64 = AtomicU64::new(0);

/// Where `jiffies` lives, for the module export table (C's `extern unsigned long volatile
/// jiffies`, read with plain aligned loads, which are atomic on x86-64). Only read through.
pub const JIFFIES_ADDRESS: *const u64 = JIFFIES.as_ptr();

/// Ticks since the timer started.
pub fn jiffies() -> u64 {
    JIFFIES.load(Ordering::Acquire)
}

/// The services' share of every timer tick (timers, the workqueues' timers), registered once at
/// start-up. It runs in the timer interrupt, on every CPU, after `jiffies` has moved, before
/// RCU's share (a quiescent state, callbacks woken) and the scheduler's.
pub static TICK_HOOK: Hook<fn()> = Hook::new();

/// Advances `jiffies` by one tick (the boot CPU's timer interrupt).
pub(crate) fn advance_jiffies() {
    JIFFIES.fetch_add(1, Ordering::AcqRel);
}

/// Busy-waits for `us` microseconds (for hardware delays; threads should sleep).
pub fn delay_us(us: u64) {
    let per_us = TSC_PER_US.load(Ordering::Relaxed).max(1);
    let end = rdtsc() + us * per_us;
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// TSC cycles per microsecond; 0 until calibrated.
static TSC_PER_US: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Marks the moment the kernel started: uptime counts from here. Called first thing at boot.
pub(crate) fn mark_boot() {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
}

/// Calibrates the TSC against the PIT (takes 10 ms) and starts the uptime clock.
pub(crate) fn init() {
    const PIT_TICKS: u16 = 11_932; // 10 ms at 1.193182 MHz
    let start = rdtsc();
    drivers::pit::wait_ticks(PIT_TICKS);
    let cycles = rdtsc() - start;
    let elapsed_us = u64::from(PIT_TICKS) * 1_000_000 / drivers::pit::FREQUENCY_HZ;
    let per_us = (cycles / elapsed_us).max(1);
    TSC_PER_US.store(per_us, Ordering::Relaxed);
    log::info!("TSC calibrated: {} MHz", per_us);
}

/// Microseconds since the machine started (0 before calibration).
pub fn uptime_us() -> u64 {
    match TSC_PER_US.load(Ordering::Relaxed) {
        0 => 0,
        per_us => (rdtsc() - BOOT_TSC.load(Ordering::Relaxed)) / per_us,
    }
}
