//! Time since boot, from the CPU's time-stamp counter (TSC) calibrated against the PIT.
//!
//! The TSC ticks at a constant rate on every CPU QEMU offers, but the rate is not announced, so
//! boot measures it: count TSC cycles across 10 ms of the PIT's known 1.193182 MHz clock.
//! (Per-CPU timer ticks and sleeping arrive with the local APIC timer.)

use core::sync::atomic::{AtomicU64, Ordering};

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// TSC cycles per microsecond; 0 until calibrated.
static TSC_PER_US: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Marks the moment the kernel started: uptime counts from here. Called first thing at boot.
pub fn mark_boot() {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
}

/// Calibrates the TSC against the PIT (takes 10 ms) and starts the uptime clock.
pub fn init() {
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
