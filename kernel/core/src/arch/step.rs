//! Counting the instructions a piece of kernel code executes, by single-stepping it: the
//! kernel build's own fast-path count (`slabbench`), next to the host build's callgrind count.
//!
//! Setting the trap flag (`TF`, bit 8 of `RFLAGS`) makes the CPU raise a debug exception (#DB,
//! vector 1) after every instruction; the handler counts it and returns with `TF` still set in
//! the saved flags, so the next instruction traps too. An interrupt or exception clears `TF`
//! on entry and its `iretq` restores it, so handlers that run meanwhile are not counted.
//! Preemption is off while counting: the stepped thread stays on this CPU, whose counter the
//! handler adds to.
//!
//! The count includes a fixed overhead (the call of the closure and the instruction that
//! clears `TF` again); [`count_instructions`] subtracts it, measured on an empty closure.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::cpu::MAX_CPUS;

/// Whether each CPU is counting (a #DB on a CPU that is not is fatal, as before).
static ACTIVE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Each CPU's count while it is counting.
static STEPS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The #DB handler's part: counts a single-step trap of this CPU if it is counting, and says
/// whether it did (else the exception is not ours).
pub(super) fn single_step_trap() -> bool {
    let cpu = crate::cpu::current_id();
    if !ACTIVE[cpu].load(Ordering::Relaxed) {
        return false;
    }
    STEPS[cpu].fetch_add(1, Ordering::Relaxed);
    true
}

/// Runs `f` single-stepped and returns the instructions it executed, without a constant
/// overhead, which is measured on an empty closure and subtracted.
pub fn count_instructions(f: impl FnOnce()) -> u64 {
    let raw = count_raw(f);
    raw.saturating_sub(count_raw(|| ()))
}

/// Runs `f` with the trap flag set and returns the number of single-step traps.
#[inline(never)]
fn count_raw(f: impl FnOnce()) -> u64 {
    crate::cpu::preempt_disable();
    let cpu = crate::cpu::current_id();
    STEPS[cpu].store(0, Ordering::Relaxed);
    ACTIVE[cpu].store(true, Ordering::Relaxed);
    set_trap_flag();
    core::hint::black_box(f)();
    clear_trap_flag();
    ACTIVE[cpu].store(false, Ordering::Relaxed);
    let steps = STEPS[cpu].load(Ordering::Relaxed);
    crate::cpu::preempt_enable();
    steps
}

/// Sets `TF`: the instruction after the `popfq` is the first to trap.
#[inline(always)]
fn set_trap_flag() {
    // SAFETY: only RFLAGS.TF changes; the #DB handler counts the traps of this CPU (it is
    // marked active) and returns; the stack is balanced (push then pop).
    unsafe {
        core::arch::asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq");
    }
}

/// Clears `TF` (the `popfq` that clears it is still counted: part of the fixed overhead).
#[inline(always)]
fn clear_trap_flag() {
    // SAFETY: only RFLAGS.TF changes; the stack is balanced.
    unsafe {
        core::arch::asm!("pushfq", "and qword ptr [rsp], -257", "popfq");
    }
}

#[crate::ktest]
fn single_stepping_counts_exactly_the_instructions_run() {
    /// `N` `nop`s in a row, whatever the optimisation level (a Rust loop of one `nop` each
    /// would count its increment and branch too, unless the compiler unrolls it).
    #[inline(never)]
    fn nops<const N: usize>() {
        // SAFETY: `nop`s do nothing.
        unsafe {
            core::arch::asm!(
                ".rept {n}",
                "nop",
                ".endr",
                n = const N,
                options(nomem, nostack, preserves_flags)
            )
        };
    }
    let ten = count_instructions(nops::<10>);
    let twenty = count_instructions(nops::<20>);
    assert!(
        ten >= 10,
        "{ten} instructions counted for 10 nops and a call"
    );
    // The call and return are the same for both: the difference is the nops, and whatever
    // counts a `nop` more than once (or misses one) changes it.
    assert_eq!(twenty - ten, 10, "{ten} for 10 nops, {twenty} for 20");
}
