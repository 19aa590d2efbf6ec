//! Grace-period sequence numbers, as Linux's `rcu_seq_*` helpers (kernel/rcu/rcu.h).
//!
//! A sequence number counts grace-period *transitions*: the low bit says whether a grace
//! period is in progress (odd) or not (even), and the rest counts grace periods.
//!
//! ```text
//!   gp_seq:   0      1      2      3      4
//!           idle -> GP 1 -> idle -> GP 2 -> idle
//!              start   end    start   end
//! ```
//!
//! A callback queued when the counter reads `s` must wait for a *whole* grace period that
//! starts after the queuing, so for the counter to reach [`rcu_seq_snap(s)`](rcu_seq_snap):
//! `s + 2` if `s` is even (the next grace period, starting now or later, is enough), `s + 3` if
//! `s` is odd (the grace period in progress began before the callback was queued, so it may not
//! wait for the readers the callback cares about: wait for it to end, `s + 1`, and then for one
//! more, `s + 3`). Both cases are `(s + 3) & !1`.
//!
//! The counter is a `u64` that gains 2 per grace period: at a million grace periods a second
//! it would wrap after about 290,000 years, so plain comparisons are used (Linux uses
//! wrap-safe `ULONG_CMP_GE` because its counter is an `unsigned long`, 32 bits on some CPUs).

/// The number of low bits that hold the grace-period state (`RCU_SEQ_CTR_SHIFT` in Linux is 2
/// because Linux keeps more states; one bit is enough here: idle or in progress).
pub const RCU_SEQ_STATE_MASK: u64 = 1;

/// The value `gp_seq` must reach before a callback queued when it read `s` may run: the end
/// of the first grace period that starts after `s` was read (`(s + 3) & !1`).
///
/// ```
/// assert_eq!(rcu::rcu_seq_snap(0), 2); // idle: the next GP is enough
/// assert_eq!(rcu::rcu_seq_snap(1), 4); // GP in progress: it ends at 2, then one more to 4
/// ```
pub const fn rcu_seq_snap(s: u64) -> u64 {
    (s + 2 * RCU_SEQ_STATE_MASK + 1) & !RCU_SEQ_STATE_MASK
}

/// Is a grace period in progress when the counter reads `s` (is `s` odd)?
pub const fn rcu_seq_state(s: u64) -> bool {
    s & RCU_SEQ_STATE_MASK != 0
}

/// Has the counter, now reading `s`, reached `snap` (a value from [`rcu_seq_snap`])?
pub const fn rcu_seq_done(s: u64, snap: u64) -> bool {
    s >= snap
}

/// The number of grace periods completed when the counter reads `s`.
pub const fn rcu_seq_completed(s: u64) -> u64 {
    s >> 1
}

/// The counter after a grace period starts at `s` (`s` must be even).
pub(crate) const fn rcu_seq_start(s: u64) -> u64 {
    debug_assert!(!rcu_seq_state(s));
    s + 1
}

/// The counter after the grace period in progress at `s` ends (`s` must be odd).
pub(crate) const fn rcu_seq_end(s: u64) -> u64 {
    debug_assert!(rcu_seq_state(s));
    s + 1
}

#[cfg(test)]
mod tests;
