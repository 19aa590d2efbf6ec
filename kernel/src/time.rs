//! Time for the services: the core's clocks ([`kcore::time`], re-exported here) and sleeping.
//!
//! The core's tick advances `jiffies` on the boot CPU and calls [`tick`] on every CPU (the
//! services register it as [`kcore::time::TICK_HOOK`]); the boot CPU's call wakes the sleepers
//! whose deadline has come. Sleeping is measured in ticks of [`HZ`] per second.

use alloc::collections::BTreeMap;
use core::time::Duration;

use kcore::sched::{self, ThreadRef};
use kcore::sync::IrqSpinLock;
pub use kcore::time::{HZ, delay_us, jiffies, rdtsc, uptime_us};

/// Sleeping threads by (deadline in jiffies, thread id).
static SLEEPERS: IrqSpinLock<BTreeMap<(u64, u64), ThreadRef>> = IrqSpinLock::new(BTreeMap::new());

/// The timers' share of the tick (interrupt context, every CPU): the boot CPU wakes the
/// sleepers whose time has come.
pub fn tick() {
    if kcore::cpu::current_id() == 0 {
        wake_sleepers(jiffies());
    }
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
