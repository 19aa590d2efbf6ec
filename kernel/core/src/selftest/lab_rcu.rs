//! The RCU lab's graded tests (`cargo lab grade rcu`, docs/labs/03-rcu.md): grace-period
//! detection (`kernel/crates/rcu/src/gp.rs`: `Rcu::report_qs` and `start_gp_if_needed`) and
//! the slab allocator's asynchronous destroy (`async_destroy_workfn` in
//! `kernel/crates/slab/src/registry/owned.rs`). `cargo lab grade rcu` runs these with its own
//! pristine copy of this file.
//!
//! The first three tests drive a private [`rcu::Rcu`] of four CPUs by hand, as the crate's
//! model does on the host: which CPU reports when is chosen by the test, so the numbers are
//! exact. The others use the kernel's RCU (quiescent states from the scheduler and the tick,
//! callbacks run by `rcuc/N`) and the kernel's slab allocator. No test waits without bound:
//! where the kernel would wait for a grace period, a helper thread waits and the test gives up
//! after a few seconds, saying what it was waiting for.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use rcu::Rcu;
use slab::{Gfp, KmemCacheArgs, SlabFlags};

use super::kfree_rcu::kfree_rcu_on_every_cpu;
use crate::memory::kmalloc::slab;
use crate::sync::rcu::{call_rcu, counters, read_lock, synchronize_rcu};

/// Where the grace-period code is.
const GP: &str = "kernel/crates/rcu/src/gp.rs";
/// Where the destroy work is.
const OWNED: &str = "kernel/crates/slab/src/registry/owned.rs";

/// How long a test waits for the kernel's RCU before it gives up, in microseconds: grace
/// periods take a tick or two (10 ms each), so 5 s is hundreds of them.
const PATIENCE_US: u64 = 5_000_000;

/// A private RCU of 4 CPUs, CPUs 0 to `online - 1` online.
fn private_rcu(online: usize) -> Rcu {
    let rcu = Rcu::new(4);
    for cpu in 0..online {
        rcu.cpu_online(cpu);
    }
    rcu
}

/// A callback that counts its runs in `ran`.
fn counting(ran: &Arc<AtomicUsize>) -> rcu::Callback {
    let ran = ran.clone();
    alloc::boxed::Box::new(move || {
        ran.fetch_add(1, Ordering::SeqCst);
    })
}

/// The state of a private RCU, in one line for messages.
fn state(rcu: &Rcu) -> String {
    let owed: Vec<usize> = (0..rcu.nr_cpus()).filter(|&c| rcu.qs_needed(c)).collect();
    format!(
        "gp_seq = {}, CPUs owing a QS (qs_needed) = {owed:?}, ready callbacks on CPU 0 = {}",
        rcu.gp_seq(),
        rcu.ready_callbacks(0)
    )
}

#[crate::ktest]
fn call_rcu_starts_a_grace_period_that_every_online_cpu_owes_a_qs_to() {
    let rcu = private_rcu(3);
    let ran = Arc::new(AtomicUsize::new(0));
    assert!(
        !rcu.report_qs(0),
        "with no grace period in progress, report_qs(0) should say the QS did not count; \
         {}; look at Rcu::report_qs in {GP}",
        state(&rcu)
    );
    rcu.call_rcu(0, counting(&ran));
    assert!(
        rcu.gp_seq() == 1 && (0..3).all(|c| rcu.qs_needed(c)) && !rcu.qs_needed(3),
        "after the first call_rcu on an idle RCU with CPUs 0, 1, 2 online, a grace period \
         should be in progress (gp_seq 0 -> 1, rcu_seq_start) and CPUs 0, 1, 2 (not the \
         offline CPU 3) should owe a QS; seen: {}; look at start_gp_if_needed in {GP}",
        state(&rcu)
    );
    // No CPU online: nobody can be reading, the grace period ends at once.
    let idle = private_rcu(0);
    idle.call_rcu(0, counting(&ran));
    assert!(
        idle.gp_seq() == 2 && idle.ready_callbacks(0) == 1,
        "with no CPU online, call_rcu should start a grace period that ends at once \
         (gp_seq 0 -> 2) and leave the callback ready; seen: {}; look at start_gp_if_needed \
         in {GP} (a GP with qsmask 0 ends: end_gp)",
        state(&idle)
    );
    for cb in idle.take_ready_callbacks(0) {
        cb();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the ready callback ran");
}

#[crate::ktest]
fn a_grace_period_ends_only_when_every_online_cpu_has_reported() {
    let rcu = private_rcu(3);
    let ran = Arc::new(AtomicUsize::new(0));
    rcu.call_rcu(0, counting(&ran));
    let started = rcu.gp_seq();
    assert_eq!(
        started,
        1,
        "call_rcu should start a grace period (gp_seq 0 -> 1); seen: {}; look at \
         start_gp_if_needed in {GP}",
        state(&rcu)
    );
    let counted = [rcu.report_qs(0), rcu.report_qs(0), rcu.report_qs(3)];
    assert_eq!(
        counted,
        [true, false, false],
        "report_qs(0) owed a QS and should count (true); a second report_qs(0) owes nothing \
         more (false); CPU 3 is offline and owes nothing (false); look at Rcu::report_qs in \
         {GP}; now: {}",
        state(&rcu)
    );
    assert!(
        rcu.report_qs(1),
        "report_qs(1) owed a QS and should count; look at Rcu::report_qs in {GP}"
    );
    assert!(
        rcu.gp_seq() == 1 && rcu.ready_callbacks(0) == 0 && rcu.qs_needed(2),
        "CPUs 0 and 1 reported but CPU 2 did not: the grace period must still be in progress \
         (gp_seq 1), its callback not ready, CPU 2 still owing its QS; seen: {}; look at \
         Rcu::report_qs in {GP} (only the report that empties qsmask ends the GP)",
        state(&rcu)
    );
    assert!(
        rcu.report_qs(2),
        "report_qs(2) owed a QS and should count; look at Rcu::report_qs in {GP}"
    );
    assert!(
        rcu.gp_seq() == 2 && rcu.ready_callbacks(0) == 1 && !rcu.gp_in_progress(),
        "the last online CPU reported: the grace period should have ended (gp_seq 1 -> 2, \
         end_gp) and no new one started (no callback needs one), the callback ready; seen: \
         {}; look at Rcu::report_qs in {GP}",
        state(&rcu)
    );
    for cb in rcu.take_ready_callbacks(0) {
        cb();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the ready callback ran");
}

#[crate::ktest]
fn a_callback_queued_during_a_grace_period_waits_for_the_next_one() {
    let rcu = private_rcu(2);
    let ran = Arc::new(AtomicUsize::new(0));
    rcu.call_rcu(0, counting(&ran));
    // CPU 0 reports; then a second callback comes, during the grace period: a reader that
    // began before it may be on CPU 0 again, so it needs a whole grace period of its own.
    let first = rcu.report_qs(0);
    rcu.call_rcu(1, counting(&ran));
    let second = rcu.report_qs(1);
    assert!(
        first && second && rcu.gp_seq() == 3 && rcu.ready_callbacks(0) == 1,
        "one callback queued, CPU 0 reported, a second callback queued on CPU 1, CPU 1 \
         reported: the first grace period should have ended (its callback ready) and the \
         second callback's grace period started at once (gp_seq 0 -> 1 -> 2 -> 3); seen: \
         reports counted {first}/{second}, {}, ready on CPU 1 = {}; look at Rcu::report_qs \
         (the report that ends a GP starts the next one if callbacks need it) and \
         start_gp_if_needed in {GP}",
        state(&rcu),
        rcu.ready_callbacks(1)
    );
    assert_eq!(
        rcu.ready_callbacks(1),
        0,
        "the second callback must wait for the second grace period; look at Rcu::report_qs in \
         {GP}"
    );
    let again = [rcu.report_qs(1), rcu.report_qs(0)];
    assert!(
        again == [true, true] && rcu.gp_seq() == 4 && rcu.ready_callbacks(1) == 1,
        "both CPUs reported to the second grace period: it should have ended (gp_seq 4) and \
         the second callback be ready; seen: reports counted {again:?}, {}, ready on CPU 1 = \
         {}; look at Rcu::report_qs in {GP}",
        state(&rcu),
        rcu.ready_callbacks(1)
    );
}

/// Runs `wait` in a thread on this CPU and waits for it to return, for at most
/// [`PATIENCE_US`]; `Err` with the kernel's RCU counters if it did not.
fn within_patience(wait: impl FnOnce() + Send + 'static) -> Result<(), String> {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let before = counters();
    // Not joined if it never returns: the failing test ends the boot.
    let _waiter = crate::sched::spawn_on(crate::cpu::current_id(), "lab-rcu-wait", move || {
        wait();
        d.store(true, Ordering::SeqCst);
    })
    .expect("a thread for the test");
    let deadline = crate::time::uptime_us() + PATIENCE_US;
    while !done.load(Ordering::SeqCst) {
        if crate::time::uptime_us() > deadline {
            let (gp_seq, completed) = counters();
            return Err(format!(
                "still waiting after {} s; the kernel's gp_seq went from {} to {gp_seq} \
                 (grace periods completed: {completed}; the shell's `rcu` shows these)",
                PATIENCE_US / 1_000_000,
                before.0
            ));
        }
        crate::sched::yield_now();
    }
    Ok(())
}

#[crate::ktest]
fn synchronize_rcu_waits_for_a_reader_on_another_cpu() {
    let other = crate::cpu::other_online_ids()
        .next()
        .expect("the test needs two CPUs");
    // 0: not yet reading, 1: inside the read-side section, 2: left it.
    let phase = Arc::new(AtomicU32::new(0));
    let p = phase.clone();
    let reader = crate::sched::spawn_on(other, "lab-rcu-reader", move || {
        let guard = read_lock();
        p.store(1, Ordering::SeqCst);
        // Several ticks inside: their interrupts must not count as quiescent states.
        crate::time::delay_us(60_000);
        p.store(2, Ordering::SeqCst);
        drop(guard);
    })
    .expect("a thread for the reader");
    while phase.load(Ordering::SeqCst) == 0 {
        core::hint::spin_loop();
    }
    let seen = Arc::new(AtomicU32::new(0));
    let s = seen.clone();
    let ph = phase.clone();
    if let Err(why) = within_patience(move || {
        synchronize_rcu();
        s.store(ph.load(Ordering::SeqCst), Ordering::SeqCst);
    }) {
        panic!(
            "synchronize_rcu() never returned: no grace period ended; {why}; look at \
             start_gp_if_needed (does call_rcu start a GP?) and Rcu::report_qs (does the last \
             report end it?) in {GP}"
        );
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "synchronize_rcu() returned while a reader on CPU {other}, inside rcu_read_lock() since \
         before the call, was still inside: the grace period ended without CPU {other}'s \
         quiescent state; look at Rcu::report_qs and start_gp_if_needed in {GP} (every \
         online CPU must owe, and report, a QS)"
    );
    reader.join();
}

#[crate::ktest]
fn call_rcu_callbacks_run_after_their_grace_period_on_every_cpu() {
    const PER_CPU: usize = 20;
    let ran = Arc::new(AtomicUsize::new(0));
    let early = Arc::new(AtomicUsize::new(0));
    let before = counters().1;
    let threads: Vec<_> = crate::cpu::online()
        .map(|c| {
            let (ran, early) = (ran.clone(), early.clone());
            crate::sched::spawn_on(c.id, "lab-rcu-call", move || {
                for _ in 0..PER_CPU {
                    let (ran, early) = (ran.clone(), early.clone());
                    // The grace period this callback waits for: one that starts after now.
                    let needed = rcu::rcu_seq_snap(counters().0);
                    call_rcu(move || {
                        if counters().0 < needed {
                            early.fetch_add(1, Ordering::SeqCst);
                        }
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
            .expect("a thread for the test")
        })
        .collect();
    let queued = PER_CPU * threads.len();
    for t in threads {
        t.join();
    }
    let r = ran.clone();
    if let Err(why) = within_patience(move || {
        while r.load(Ordering::SeqCst) < queued {
            crate::sched::yield_now();
        }
    }) {
        panic!(
            "{} of {queued} call_rcu callbacks (queued on every CPU) ran: {why}; look at \
             start_gp_if_needed and Rcu::report_qs in {GP}",
            ran.load(Ordering::SeqCst)
        );
    }
    assert_eq!(
        early.load(Ordering::SeqCst),
        0,
        "callbacks ran before the grace period they waited for had ended (gp_seq was below \
         their rcu_seq_snap): look at Rcu::report_qs and end_gp in {GP}"
    );
    assert!(
        counters().1 > before,
        "the callbacks ran but no grace period was counted as completed (gp_seq / 2)"
    );
    if let Err(why) = within_patience(crate::sync::rcu::rcu_barrier) {
        panic!("rcu_barrier() never returned: {why}; look at {GP}");
    }
}

/// How many of `objs` lie in a slab of the cache at address `cache` (compared by address:
/// the cache may be gone; the page-owner lookup accepts any address).
fn in_slabs_of(cache: usize, objs: &[usize]) -> usize {
    objs.iter()
        .filter_map(|&a| core::ptr::NonNull::new(a as *mut u8))
        .filter(|&a| {
            slab()
                .cache_of(a)
                .is_some_and(|c| core::ptr::from_ref(c) as usize == cache)
        })
        .count()
}

/// Whether a cache called `name` waits on the pending-destroy list (`slabinfo -d`).
fn pending(name: &str) -> bool {
    slab()
        .destroy_pending()
        .iter()
        .any(|(n, _)| n.as_str() == name)
}

#[crate::ktest]
fn a_cache_destroyed_with_kfree_rcu_objects_in_flight_goes_at_once_and_is_freed_later() {
    const NAME: &str = "lab-rcu-async";
    let handle = slab()
        .kmem_cache_create(NAME, 64, KmemCacheArgs::default(), SlabFlags::SLAB_NO_MERGE)
        .expect("the lab's cache");
    // SAFETY: the threads are joined before the cache is destroyed.
    let cache = unsafe { handle.as_ref_unchecked() };
    let objs = kfree_rcu_on_every_cpu(cache, cache.sheaf_capacity() * 2 + 3);
    // Its address only, from now on: the cache may be freed at any time.
    let old = core::ptr::from_ref(cache) as usize;
    assert_eq!(
        in_slabs_of(old, &objs),
        objs.len(),
        "the objects in kfree_rcu flight are in the cache's slabs"
    );
    // SAFETY: nobody uses the cache afterwards.
    unsafe { slab().kmem_cache_destroy(handle) }
        .expect("kmem_cache_destroy with objects in kfree_rcu flight returns Ok at once");
    assert!(
        slab().find_cache(NAME).is_none(),
        "the destroyed cache should be off the list of caches at once"
    );
    // The same name, at once, while the old cache may still wait for its grace period.
    let again = slab()
        .kmem_cache_create(NAME, 64, KmemCacheArgs::default(), SlabFlags::SLAB_NO_MERGE)
        .expect("the name of a cache whose destroy is pending is free again at once");
    let deadline = crate::time::uptime_us() + PATIENCE_US;
    while pending(NAME) {
        if crate::time::uptime_us() > deadline {
            let (gp_seq, completed) = counters();
            panic!(
                "the destroyed cache {NAME} is still on the pending-destroy list (`slabinfo \
                 -d`) {} s later: its destroy work item should wait for RCU (rcu_barrier), \
                 shut it down and take it off the list; look at async_destroy_workfn in \
                 {OWNED} (and, if grace periods do not end, at {GP}: gp_seq = {gp_seq}, \
                 grace periods completed = {completed})",
                PATIENCE_US / 1_000_000
            );
        }
        crate::sched::yield_now();
    }
    // Whether its pages went back to the page allocator (or on to another cache) is what the
    // page owners say, not a count of pages in use: the rest of the kernel allocates meanwhile.
    let kept = in_slabs_of(old, &objs);
    assert_eq!(
        kept,
        0,
        "the destroy work took {NAME} off the pending list, but {kept} of the {} objects that \
         were in kfree_rcu flight still lie in its slabs: once rcu_barrier has brought them \
         back, KmemCache::shutdown frees the slabs and release_after_shutdown the cache; look \
         at async_destroy_workfn in {OWNED}",
        objs.len()
    );
    // SAFETY: nobody uses it.
    unsafe { slab().kmem_cache_destroy(again) }.expect("an empty cache");
}

#[crate::ktest]
fn the_destroy_work_keeps_a_cache_whose_objects_are_still_allocated() {
    const NAME: &str = "lab-rcu-async-leak";
    const PATTERN: u8 = 0x5e;
    let handle = slab()
        .kmem_cache_create(NAME, 64, KmemCacheArgs::default(), SlabFlags::SLAB_NO_MERGE)
        .expect("the lab's cache");
    // SAFETY: the cache is kept (leaked) by its destroy, so the reference stays valid.
    let cache = unsafe { handle.as_ref_unchecked() };
    let leaked: Vec<usize> = (0..3)
        .map(|_| {
            let p = cache.alloc(Gfp::KERNEL).expect("memory").as_ptr();
            // SAFETY: a fresh object of 64 bytes, ours.
            unsafe { p.write_bytes(PATTERN, 64) };
            p as usize
        })
        .collect();
    kfree_rcu_on_every_cpu(cache, 10);
    // SAFETY: nobody uses the cache afterwards but through its leaked objects, which stay
    // valid as long as the destroy keeps the cache.
    unsafe { slab().kmem_cache_destroy(handle) }.expect("returns at once");
    let deadline = crate::time::uptime_us() + PATIENCE_US;
    while pending(NAME) {
        if crate::time::uptime_us() > deadline {
            panic!(
                "the destroyed cache {NAME} (3 objects still allocated, others in kfree_rcu \
                 flight) is still on the pending-destroy list {} s later: the work item should \
                 wait for RCU, shut it down (reporting the 3 objects) and leave the list, \
                 keeping the cache; look at async_destroy_workfn in {OWNED}",
                PATIENCE_US / 1_000_000
            );
        }
        crate::sched::yield_now();
    }
    let (reports, total) = cache.reports();
    assert_eq!(
        total,
        leaked.len(),
        "the destroy work's shutdown should report each of the {} objects still allocated \
         (KmemCache::shutdown), and nothing else; seen {total} reports: {reports:?}; look at \
         async_destroy_workfn in {OWNED}",
        leaked.len()
    );
    for &o in &leaked {
        // SAFETY: the object was never freed, and its cache is kept (the destroy leaked it).
        let byte = unsafe { (o as *const u8).read_volatile() };
        assert_eq!(
            byte, PATTERN,
            "the still-allocated object {o:#x} changed after the destroy: the cache must be \
             kept (leaked) when objects remain, never released; look at async_destroy_workfn \
             in {OWNED}"
        );
    }
}
