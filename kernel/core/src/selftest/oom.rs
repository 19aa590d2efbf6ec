//! On-target tests of threads while memory is exhausted: a thread sleeps on a wait queue and is
//! woken without allocating (its wait link is in its `Thread`), and `spawn` answers
//! `OutOfMemory` instead of panicking, leaving nothing behind.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{exhaust_all_cpus, quiesce};
use crate::memory::stack::stacks_in_use;
use crate::sched::{self, SpawnError, State};
use crate::sync::WaitQueue;

/// Yields until `cond` holds, for at most 10 s. Polls: sleeping on a timer may allocate.
fn spin_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = crate::time::uptime_us() + 10_000_000;
    while !cond() {
        assert!(
            crate::time::uptime_us() < deadline,
            "{what}: not within 10 s"
        );
        sched::yield_now();
    }
}

#[crate::ktest]
fn threads_sleep_on_a_wait_queue_and_are_woken_while_memory_is_exhausted() {
    /// Used by this test only, and first while memory is exhausted.
    static QUEUE: WaitQueue = WaitQueue::new();
    static GO: AtomicBool = AtomicBool::new(false);
    static ROUND: AtomicUsize = AtomicUsize::new(0);
    static WOKEN: AtomicUsize = AtomicUsize::new(0);
    const SLEEPERS: usize = 3;
    const ROUNDS: usize = 6;
    quiesce();
    // On this CPU, whose sheaves `exhaust` empties itself: nothing is left for them to take.
    let cpu = crate::cpu::current_id();
    let sleepers: Vec<_> = (0..SLEEPERS)
        .map(|_| {
            sched::spawn_on(cpu, "ktest-oom-sleeper", || {
                while !GO.load(Ordering::Acquire) {
                    sched::yield_now();
                }
                for round in 1..=ROUNDS {
                    QUEUE.wait_until(|| (ROUND.load(Ordering::Acquire) >= round).then_some(()));
                    WOKEN.fetch_add(1, Ordering::AcqRel);
                }
            })
            .expect("memory for the sleepers")
        })
        .collect();
    let exhausted = exhaust_all_cpus();
    GO.store(true, Ordering::Release);
    for round in 1..=ROUNDS {
        // Every sleeper is asleep on the queue (blocked inside `wait_until`, linked under its
        // lock together with the state change).
        spin_until("the sleepers went to sleep", || {
            sleepers
                .iter()
                .all(|h| h.thread().state() == State::Blocked)
        });
        assert_eq!(WOKEN.load(Ordering::Acquire), SLEEPERS * (round - 1));
        assert!(!QUEUE.is_empty());
        ROUND.store(round, Ordering::Release);
        if round % 2 == 1 {
            QUEUE.wake_all();
        } else {
            for _ in 0..SLEEPERS {
                assert!(QUEUE.wake_one(), "a sleeper to wake");
            }
        }
        spin_until("the sleepers woke", || {
            WOKEN.load(Ordering::Acquire) == SLEEPERS * round
        });
    }
    // The sleepers exit: joining sleeps on their completions, still allocating nothing.
    for h in sleepers {
        h.join();
    }
    assert!(QUEUE.is_empty(), "every sleeper took itself off the queue");
    exhausted.give_back();
}

#[crate::ktest]
fn spawn_answers_out_of_memory_while_memory_is_exhausted_and_leaves_nothing_behind() {
    quiesce();
    let (threads, stacks) = (sched::registered_threads(), stacks_in_use());
    let exhausted = exhaust_all_cpus();
    let any = sched::spawn("ktest-oom-spawn", || 1u32).map(|_| ());
    let pinned = sched::spawn_on(0, "ktest-oom-spawn-on", || 2u32).map(|_| ());
    let (threads_then, stacks_then) = (sched::registered_threads(), stacks_in_use());
    exhausted.give_back();
    let again = sched::spawn("ktest-oom-spawn", || 3u32).expect("memory is back");
    assert_eq!(again.join(), 3);
    assert_eq!(any, Err(SpawnError::OutOfMemory));
    assert_eq!(pinned, Err(SpawnError::OutOfMemory));
    assert!(
        threads_then <= threads && stacks_then <= stacks,
        "failed spawns left {threads_then} threads registered (were {threads}) and \
         {stacks_then} stacks in use (were {stacks})"
    );
}
