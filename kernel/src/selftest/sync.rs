//! On-target tests of the core's locks and completions, run across CPUs and interrupt handlers.

use crate::sync::{Completion, IrqSpinLock, Mutex};

#[crate::ktest]
fn mutex_keeps_a_shared_counter_exact_across_cpus() {
    use alloc::sync::Arc;
    use alloc::vec::Vec;

    const PER_THREAD: u64 = 25_000;
    let counter = Arc::new(Mutex::new(0u64));
    let cpus = crate::cpu::count().min(4);
    let handles: Vec<_> = (0..cpus)
        .map(|cpu| {
            let counter = counter.clone();
            crate::sched::spawn_on(cpu, "mutex-test", move || {
                for _ in 0..PER_THREAD {
                    let mut value = counter.lock();
                    // A read-modify-write split by a yield: lost updates would show if two
                    // threads were ever inside at once.
                    let seen = *value;
                    if seen.is_multiple_of(1000) {
                        crate::sched::yield_now();
                    }
                    *value = seen + 1;
                }
            })
            .expect("spawn")
        })
        .collect();
    handles.into_iter().for_each(crate::sched::JoinHandle::join);
    assert_eq!(*counter.lock(), PER_THREAD * cpus as u64);
}

#[crate::ktest]
fn irq_safe_spinlock_shared_by_an_interrupt_handler_and_a_thread() {
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicBool, Ordering};

    // A thread on CPU 1 takes the lock over and over, while CPU 0 sends CPU 1 function-call
    // IPIs whose handlers take it too. Were the lock not irq-safe, an IPI arriving while the
    // thread holds it would spin for ever on its own CPU.
    const THREAD_ROUNDS: u64 = 20_000;
    const IPIS: u64 = 200;
    let target = 1.min(crate::cpu::count() - 1);
    let lock = Arc::new(IrqSpinLock::new(0u64));
    let done = Arc::new(AtomicBool::new(false));
    let (l, d) = (lock.clone(), done.clone());
    let worker = crate::sched::spawn_on(target, "irqlock-test", move || {
        for _ in 0..THREAD_ROUNDS {
            *l.lock() += 1;
        }
        d.store(true, Ordering::Release);
    })
    .expect("spawn");
    for _ in 0..IPIS {
        let l = lock.clone();
        crate::arch::ipi::smp_call_function(target, move || *l.lock() += 1).expect("online");
    }
    worker.join();
    assert!(done.load(Ordering::Acquire));
    assert_eq!(*lock.lock(), THREAD_ROUNDS + IPIS);
}

#[crate::ktest]
fn completion_wakes_every_waiter() {
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    let event = Arc::new(Completion::new());
    let waiters: Vec<_> = (0..6)
        .map(|_| {
            let e = event.clone();
            crate::sched::spawn("waiter", move || e.wait()).expect("spawn")
        })
        .collect();
    crate::time::sleep_ticks(2);
    assert!(
        waiters
            .iter()
            .all(|w| w.thread().state() == crate::sched::State::Blocked)
    );
    event.complete();
    waiters.into_iter().for_each(crate::sched::JoinHandle::join);
    event.wait(); // already done: returns at once
}
