//! On-target tests of the core's threads and scheduler that need the services (sleeping).

use core::sync::atomic::Ordering;

use crate::sched::{JoinHandle, SpawnError, spawn, spawn_on, yield_now};

#[crate::ktest]
fn a_thread_spawned_on_each_cpu_runs_there() {
    use alloc::vec::Vec;
    let handles: Vec<_> = crate::cpu::all()
        .map(|c| {
            let target = c.id;
            spawn_on(target, "pinned-test", move || {
                // Stay put across yields and a sleep: pinned threads never migrate.
                let mut seen = Vec::new();
                for _ in 0..5 {
                    seen.push(crate::cpu::current_id());
                    yield_now();
                }
                crate::time::sleep_ticks(1);
                seen.push(crate::cpu::current_id());
                (target, seen)
            })
            .expect("spawn")
        })
        .collect();
    for handle in handles {
        let (target, seen) = handle.join();
        assert!(
            seen.iter().all(|&c| c == target),
            "pinned to {target}, ran on {seen:?}"
        );
    }
    assert_eq!(
        spawn_on(crate::cpu::MAX_CPUS - 1, "nowhere", || ()).err(),
        Some(SpawnError::NoSuchCpu)
    );
}

#[crate::ktest]
fn preemption_takes_a_busy_thread_off_the_cpu() {
    use alloc::sync::Arc;
    use core::sync::atomic::AtomicBool;

    // Two threads on one CPU that never yield: the first spins until the second has run. Only
    // the timer tick can give the second one the CPU.
    let cpu = crate::cpu::count() - 1;
    let second_ran = Arc::new(AtomicBool::new(false));
    let flag = second_ran.clone();
    let first = spawn_on(cpu, "busy-1", move || {
        let deadline = crate::time::uptime_us() + 10_000_000;
        while !flag.load(Ordering::Acquire) {
            assert!(
                crate::time::uptime_us() < deadline,
                "never preempted in 10 s"
            );
            core::hint::spin_loop();
        }
    })
    .expect("spawn");
    let flag = second_ran.clone();
    let second =
        spawn_on(cpu, "busy-2", move || flag.store(true, Ordering::Release)).expect("spawn");
    second.join();
    first.join();
    assert!(second_ran.load(Ordering::Acquire));
}

#[crate::ktest]
fn joined_threads_return_their_values_and_their_stacks_are_reused() {
    use alloc::vec::Vec;
    for round in 0..3u64 {
        let handles: Vec<_> = (0..16u64)
            .map(|i| spawn("worker", move || i * round).expect("spawn"))
            .collect();
        let sum: u64 = handles.into_iter().map(JoinHandle::join).sum();
        assert_eq!(sum, (0..16).sum::<u64>() * round);
    }
    // Stacks are cached for reuse: another round of threads maps no new stack. (A CPU drops
    // its last reference to an exited thread just after waking the joiner: give it a tick.)
    crate::time::sleep_ticks(2);
    let slots = crate::memory::stack::slots_mapped();
    let handles: Vec<_> = (0..16)
        .map(|_| spawn("again", || ()).expect("spawn"))
        .collect();
    handles.into_iter().for_each(JoinHandle::join);
    assert_eq!(
        crate::memory::stack::slots_mapped(),
        slots,
        "exited threads' stacks are reused"
    );
}
