//! Time: a monotonic clock, the timer tick, and sleeping.
//!
//! Two clocks, as in Linux:
//! - **`jiffies`**: timer ticks since the tick started, [`HZ`] per second. Every CPU's local
//!   APIC timer interrupts it [`HZ`] times a second; the boot CPU's tick advances `jiffies` and
//!   wakes sleepers whose time has come. Sleeping is measured in ticks.
//! - **uptime**: the CPU's time-stamp counter (TSC), calibrated at boot against the PIT (count
//!   TSC cycles across 10 ms of its known 1.193182 MHz clock), for fine-grained real time.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use crate::sched::{self, Thread};
use crate::sync::IrqSpinLock;

/// Timer ticks per second.
pub const HZ: u32 = 100;

static JIFFIES: AtomicU64 = AtomicU64::new(0);

/// Sleeping threads by (deadline in jiffies, thread id).
static SLEEPERS: IrqSpinLock<BTreeMap<(u64, u64), Arc<Thread>>> = IrqSpinLock::new(BTreeMap::new());

/// Ticks since the timer started.
pub fn jiffies() -> u64 {
    JIFFIES.load(Ordering::Acquire)
}

/// Called by the timer interrupt on every CPU.
pub fn tick() {
    let cpu = crate::cpu::this_cpu();
    cpu.ticks.fetch_add(1, Ordering::Relaxed);
    if cpu.id == 0 {
        let now = JIFFIES.fetch_add(1, Ordering::AcqRel) + 1;
        wake_sleepers(now);
    }
    sched::tick();
    crate::rcu::tick();
}

fn wake_sleepers(now: u64) {
    loop {
        let due = {
            let mut sleepers = SLEEPERS.lock();
            match sleepers.first_entry() {
                Some(entry) if entry.key().0 <= now => entry.remove(),
                _ => return,
            }
        };
        sched::wake(&due);
    }
}

/// Sleeps for at least `ticks` timer ticks.
pub fn sleep_ticks(ticks: u64) {
    let deadline = jiffies() + ticks;
    let me = sched::current();
    loop {
        {
            let mut sleepers = SLEEPERS.lock();
            if jiffies() >= deadline {
                return;
            }
            me.mark_blocked();
            sleepers.insert((deadline, me.id), me.clone());
        }
        sched::schedule();
    }
}

/// Sleeps for at least `duration` (rounded up to whole ticks).
pub fn sleep(duration: Duration) {
    sleep_ticks(duration_to_ticks(duration));
}

/// The number of ticks that covers `duration`, rounded up.
pub fn duration_to_ticks(duration: Duration) -> u64 {
    let per_tick_ns = 1_000_000_000 / u128::from(HZ);
    duration.as_nanos().div_ceil(per_tick_ns) as u64
}

/// Busy-waits for `us` microseconds (for hardware delays; threads should [`sleep`]).
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

#[crate::ktest]
fn sleep_wakes_within_a_tick_of_the_deadline() {
    for ticks in [1u64, 3, 10] {
        let start = jiffies();
        sleep_ticks(ticks);
        let late = jiffies() - (start + ticks);
        assert!(
            late <= 1,
            "slept {ticks} ticks but woke {late} ticks after the deadline"
        );
    }
    let start = jiffies();
    sleep(Duration::from_millis(50));
    let slept = jiffies() - start;
    assert!(
        (5..=6).contains(&slept),
        "50 ms at {HZ} Hz is 5 ticks, slept {slept}"
    );
}
