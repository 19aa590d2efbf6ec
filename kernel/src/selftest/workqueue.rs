//! On-target tests of the workqueues (`crate::workqueue`): the pending bit, CPU placement,
//! flush, cancel, delayed work (and that arming its timer does not allocate), concurrency
//! management, chained work while draining, the retirement of idle workers, waiting with
//! interrupts on, destroy and the rescuer (with worker creation failing by injection, and
//! with memory really exhausted: the reclaim queue still runs, the pool recovers, and the slab
//! allocator's destroy work runs through its queue's rescuer).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::sync::IrqSave;
use crate::time::{jiffies, sleep_ticks};
use crate::workqueue::{
    self, WorkRef, WqFlags, alloc_workqueue, cancel_delayed_work_sync, cancel_work_sync,
    destroy_workqueue, drain_workqueue, flush_work, flush_workqueue, mod_delayed_work,
    queue_delayed_work, queue_work, queue_work_on, system_wq,
};

/// Polls `cond` once a tick for at most `ticks` ticks.
fn wait_for(ticks: u64, cond: impl Fn() -> bool) -> bool {
    let end = jiffies() + ticks;
    while !cond() {
        if jiffies() > end {
            return false;
        }
        sleep_ticks(1);
    }
    true
}

/// An item that counts its runs.
fn counter(name: &'static str) -> (WorkRef, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let w = WorkRef::new(name, move |_| {
        n2.fetch_add(1, Ordering::SeqCst);
    });
    (w, n)
}

/// An item that sleeps `ticks` ticks: (item, started, finished).
fn sleeper(name: &'static str, ticks: u64) -> (WorkRef, Arc<AtomicBool>, Arc<AtomicBool>) {
    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (s, f) = (started.clone(), finished.clone());
    let w = WorkRef::new(name, move |_| {
        s.store(true, Ordering::SeqCst);
        sleep_ticks(ticks);
        f.store(true, Ordering::SeqCst);
    });
    (w, started, finished)
}

#[crate::ktest]
fn an_item_queued_twice_before_it_runs_runs_once() {
    let (w, n) = counter("twice");
    {
        // Interrupts off: this CPU's workers cannot run the item between the two calls.
        let _irq = IrqSave::new();
        let cpu = crate::cpu::current_id();
        assert!(queue_work_on(cpu, system_wq(), &w));
        assert!(
            !queue_work_on(cpu, system_wq(), &w),
            "second queueing found it pending"
        );
    }
    flush_work(&w);
    sleep_ticks(2);
    assert_eq!(n.load(Ordering::SeqCst), 1);
    // Idle again: it can be queued anew.
    assert!(queue_work(system_wq(), &w));
    flush_work(&w);
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

#[crate::ktest]
fn queue_work_on_runs_on_that_cpu() {
    for cpu in crate::cpu::online().map(|c| c.id) {
        let ran_on = Arc::new(AtomicUsize::new(usize::MAX));
        let r = ran_on.clone();
        let w = WorkRef::new("where", move |_| {
            r.store(crate::cpu::current_id(), Ordering::SeqCst);
        });
        assert!(queue_work_on(cpu, system_wq(), &w));
        assert!(flush_work(&w) || ran_on.load(Ordering::SeqCst) != usize::MAX);
        assert_eq!(ran_on.load(Ordering::SeqCst), cpu);
    }
}

#[crate::ktest]
fn flush_work_waits_for_a_running_item() {
    let (w, started, finished) = sleeper("flushed", 10);
    assert!(queue_work(system_wq(), &w));
    assert!(
        wait_for(200, || started.load(Ordering::SeqCst)),
        "never started"
    );
    assert!(flush_work(&w), "the item was running");
    assert!(
        finished.load(Ordering::SeqCst),
        "flush_work returned before the item did"
    );
    assert!(!flush_work(&w), "idle now");
}

#[crate::ktest]
fn cancel_work_sync_stops_a_pending_item_and_waits_for_a_running_one() {
    // Pending: behind a running item on a queue with max_active 1.
    let wq = alloc_workqueue("wq-test-cancel", WqFlags::empty(), 1).expect("alloc");
    let (blocker, started, _) = sleeper("blocker", 10);
    let (victim, n) = counter("victim");
    assert!(queue_work(wq, &blocker));
    assert!(queue_work(wq, &victim));
    assert!(
        wait_for(200, || started.load(Ordering::SeqCst)),
        "never started"
    );
    assert!(cancel_work_sync(&victim), "it was pending");
    assert!(!victim.is_pending());
    flush_workqueue(wq);
    sleep_ticks(2);
    assert_eq!(n.load(Ordering::SeqCst), 0, "a canceled item ran");

    // Running: cancel waits for it.
    let (w, started, finished) = sleeper("running", 10);
    assert!(queue_work(wq, &w));
    assert!(
        wait_for(200, || started.load(Ordering::SeqCst)),
        "never started"
    );
    assert!(!cancel_work_sync(&w), "it was running, not pending");
    assert!(
        finished.load(Ordering::SeqCst),
        "cancel_work_sync returned before the item did"
    );
    destroy_workqueue(wq);
}

#[crate::ktest]
fn delayed_work_runs_no_earlier_than_its_delay() {
    let ran_at = Arc::new(AtomicU64::new(0));
    let r = ran_at.clone();
    let w = WorkRef::new("delayed", move |_| r.store(jiffies(), Ordering::SeqCst));
    let start = jiffies();
    assert!(queue_delayed_work(system_wq(), &w, 10));
    assert!(!queue_delayed_work(system_wq(), &w, 10), "already pending");
    assert!(flush_work(&w));
    let at = ran_at.load(Ordering::SeqCst);
    assert!(
        at >= start + 10,
        "ran at {at}, queued at {start} with a delay of 10"
    );
    assert!(
        at <= start + 30,
        "ran at {at}, queued at {start}: far too late"
    );

    // Canceled on its timer: never runs.
    ran_at.store(0, Ordering::SeqCst);
    assert!(queue_delayed_work(system_wq(), &w, 5));
    assert!(cancel_delayed_work_sync(&w), "pending on its timer");
    sleep_ticks(10);
    assert_eq!(
        ran_at.load(Ordering::SeqCst),
        0,
        "a canceled delayed item ran"
    );
}

#[crate::ktest]
fn mod_delayed_work_moves_the_deadline() {
    let ran_at = Arc::new(AtomicU64::new(0));
    let r = ran_at.clone();
    let w = WorkRef::new("moved", move |_| r.store(jiffies(), Ordering::SeqCst));
    // Earlier.
    let start = jiffies();
    assert!(queue_delayed_work(system_wq(), &w, 1000));
    assert!(mod_delayed_work(system_wq(), &w, 5), "it was pending");
    assert!(flush_work(&w));
    let at = ran_at.load(Ordering::SeqCst);
    assert!(
        (start + 5..start + 100).contains(&at),
        "ran at {at}, start {start}"
    );
    // Later.
    let start = jiffies();
    assert!(queue_delayed_work(system_wq(), &w, 2));
    assert!(mod_delayed_work(system_wq(), &w, 30), "it was pending");
    assert!(flush_work(&w));
    let at = ran_at.load(Ordering::SeqCst);
    assert!(at >= start + 30, "ran at {at}, moved to {} ", start + 30);
    // Idle: queued.
    assert!(!mod_delayed_work(system_wq(), &w, 1), "it was idle");
    assert!(flush_work(&w));
}

#[crate::ktest]
fn a_sleeping_item_does_not_stall_the_next_one_on_its_cpu() {
    // A sleeps until B has run (at most 5 s): B can only run before that if another worker
    // of the same pool took it while A slept.
    let cpu = crate::cpu::count() - 1;
    let b_thread = Arc::new(AtomicU64::new(u64::MAX));
    let a_thread = Arc::new(AtomicU64::new(u64::MAX));
    let b_ran_first = Arc::new(AtomicBool::new(false));
    let a_done = Arc::new(AtomicBool::new(false));
    let (at, bt, ad) = (a_thread.clone(), b_thread.clone(), a_done.clone());
    let a = WorkRef::new("sleepy", move |_| {
        at.store(crate::sched::current().id, Ordering::SeqCst);
        let end = jiffies() + 500;
        while bt.load(Ordering::SeqCst) == u64::MAX && jiffies() < end {
            sleep_ticks(1);
        }
        ad.store(true, Ordering::SeqCst);
    });
    let (bt, first, at, ad) = (
        b_thread.clone(),
        b_ran_first.clone(),
        a_thread.clone(),
        a_done,
    );
    let b = WorkRef::new("next", move |_| {
        // A has started and not finished: its worker sleeps in it.
        let a_running = at.load(Ordering::SeqCst) != u64::MAX && !ad.load(Ordering::SeqCst);
        first.store(a_running, Ordering::SeqCst);
        bt.store(crate::sched::current().id, Ordering::SeqCst);
    });
    assert!(queue_work_on(cpu, system_wq(), &a));
    assert!(queue_work_on(cpu, system_wq(), &b));
    flush_work(&a);
    flush_work(&b);
    assert!(
        b_ran_first.load(Ordering::SeqCst),
        "the next item waited for the sleeping one"
    );
    assert_ne!(
        a_thread.load(Ordering::SeqCst),
        b_thread.load(Ordering::SeqCst),
        "a second worker runs the next item"
    );
}

#[crate::ktest]
fn destroy_workqueue_drains_first() {
    let wq = alloc_workqueue("wq-test-destroy", WqFlags::empty(), 0).expect("alloc");
    let n = Arc::new(AtomicUsize::new(0));
    let items: Vec<WorkRef> = (0..4)
        .map(|_| {
            let n = n.clone();
            WorkRef::new("drained", move |_| {
                sleep_ticks(3);
                n.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for (i, w) in items.iter().enumerate() {
        assert!(queue_work_on(i % crate::cpu::count(), wq, w));
    }
    destroy_workqueue(wq);
    assert_eq!(
        n.load(Ordering::SeqCst),
        4,
        "destroy returned before its items ran"
    );
    assert!(
        !queue_work(wq, &items[0]),
        "a destroyed queue takes no item"
    );
}

#[crate::ktest]
fn a_reclaim_queue_runs_its_items_when_worker_creation_fails() {
    // The high-priority pool of the last CPU: no other test uses it.
    let cpu = crate::cpu::count() - 1;
    let pool = 2 * cpu + 1;
    let hi = alloc_workqueue("wq-test-hi", WqFlags::WQ_HIGHPRI, 0).expect("alloc");
    let reclaim = alloc_workqueue(
        "wq-test-reclaim",
        WqFlags::WQ_HIGHPRI | WqFlags::WQ_MEM_RECLAIM,
        0,
    )
    .expect("alloc");
    workqueue::FAIL_WORKER_CREATION.store(true, Ordering::SeqCst);
    // Keep every existing worker of the pool busy (asleep in an item).
    let stats = workqueue::pool_stats()[pool];
    let nr_workers = stats.idle + stats.busy;
    let release = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicUsize::new(0));
    let blockers: Vec<WorkRef> = (0..nr_workers)
        .map(|_| {
            let (release, busy) = (release.clone(), busy.clone());
            WorkRef::new("blocker", move |_| {
                busy.fetch_add(1, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    sleep_ticks(1);
                }
            })
        })
        .collect();
    for b in &blockers {
        assert!(queue_work_on(cpu, hi, b));
    }
    let all_busy = wait_for(200, || busy.load(Ordering::SeqCst) == nr_workers);
    let failures = workqueue::WORKER_CREATE_FAILURES.load(Ordering::SeqCst);
    let rescued = workqueue::RESCUED.load(Ordering::SeqCst);
    let (item, n) = counter("rescued");
    assert!(queue_work_on(cpu, reclaim, &item));
    let ran = wait_for(200, || n.load(Ordering::SeqCst) == 1);
    // Clean up before asserting.
    workqueue::FAIL_WORKER_CREATION.store(false, Ordering::SeqCst);
    release.store(true, Ordering::SeqCst);
    destroy_workqueue(hi);
    destroy_workqueue(reclaim);
    assert!(all_busy, "{nr_workers} workers did not all take a blocker");
    assert!(
        ran,
        "the reclaim queue's item did not run while workers could not be created"
    );
    assert!(workqueue::WORKER_CREATE_FAILURES.load(Ordering::SeqCst) > failures);
    assert!(
        workqueue::RESCUED.load(Ordering::SeqCst) > rescued,
        "not by the rescuer"
    );
}

#[crate::ktest]
fn queue_work_from_an_interrupt_handler_runs_the_item() {
    // Interrupt handlers hand work to process context: Linux's most common use. Function-call
    // IPIs run in interrupt context on the target CPU.
    let (w, runs) = counter("ktest-irq-queue");
    let target = kcore::cpu::other_online_ids().next().unwrap_or(0);
    let queued = Arc::new(AtomicUsize::new(0));
    for round in 1..=20 {
        let (w2, q2) = (w.clone(), queued.clone());
        crate::arch::ipi::smp_call_function(target, move || {
            if queue_work(system_wq(), &w2) {
                q2.fetch_add(1, Ordering::SeqCst);
            }
        })
        .expect("the target CPU is online");
        assert!(
            wait_for(500, || runs.load(Ordering::SeqCst)
                >= queued.load(Ordering::SeqCst)
                && queued.load(Ordering::SeqCst) > 0),
            "round {round}: an item queued from an interrupt handler did not run"
        );
    }
    flush_work(&w);
    assert_eq!(
        queued.load(Ordering::SeqCst),
        20,
        "the item was idle again each time, so every queueing succeeded"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        20,
        "every queueing ran exactly once"
    );
}

#[crate::ktest]
fn arming_delayed_work_timers_does_not_allocate() {
    const N: usize = 300;
    let runs = Arc::new(AtomicUsize::new(0));
    let items: Vec<WorkRef> = (0..N)
        .map(|_| {
            let r = runs.clone();
            WorkRef::new("ktest-timer-noalloc", move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let start = jiffies();
    let allocated = {
        // Interrupts off: nothing else runs on this CPU, so its allocation count moves only
        // for what these calls allocate.
        let _irq = IrqSave::new();
        let before = crate::cpu::allocations();
        for (i, w) in items.iter().enumerate() {
            assert!(queue_delayed_work(system_wq(), w, 5 + (i % 10) as u64));
        }
        // Moving the deadline of pending items arms their timers again.
        for w in items.iter().step_by(3) {
            assert!(mod_delayed_work(system_wq(), w, 8), "pending");
        }
        crate::cpu::allocations() - before
    };
    assert_eq!(
        allocated, 0,
        "arming {N} delayed items' timers allocated {allocated} times"
    );
    for w in &items {
        flush_work(w);
    }
    assert_eq!(runs.load(Ordering::SeqCst), N, "each ran once");
    assert!(jiffies() >= start + 5, "not before the first deadline");
}

#[crate::ktest]
fn drain_workqueue_lets_an_item_chain_and_refuses_other_queueing() {
    const N: usize = 20;
    let wq = alloc_workqueue("wq-test-chain", WqFlags::empty(), 0).expect("alloc");
    let runs = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let outsider_tried = Arc::new(AtomicBool::new(false));
    let cpus = crate::cpu::count();
    let (r, f, tried) = (runs.clone(), refused.clone(), outsider_tried.clone());
    let chain = WorkRef::new("ktest-chain", move |me| {
        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            // Keep the queue busy until the outsider has tried, during the drain (at most 5 s).
            let end = jiffies() + 500;
            while !tried.load(Ordering::SeqCst) && jiffies() < end {
                sleep_ticks(1);
            }
        }
        if n < N {
            // Queue itself again, alternately on this CPU and on a given one.
            let ok = if n % 2 == 0 {
                queue_work(wq, me)
            } else {
                queue_work_on(n % cpus, wq, me)
            };
            if !ok {
                f.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let outsider = WorkRef::new("ktest-outsider", |_| {});
    let (o, tried) = (outsider.clone(), outsider_tried.clone());
    let checker = crate::sched::spawn("ktest-outsider", move || {
        let draining = wait_for(500, || workqueue::wq_stats(wq).draining);
        let queued = queue_work(wq, &o) || queue_work_on(0, wq, &o);
        tried.store(true, Ordering::SeqCst);
        (draining, queued)
    })
    .expect("thread");
    assert!(queue_work(wq, &chain));
    drain_workqueue(wq);
    let runs_at_return = runs.load(Ordering::SeqCst);
    let (draining, outsider_queued) = checker.join();
    let reopened = queue_work(wq, &outsider);
    flush_work(&outsider);
    destroy_workqueue(wq);
    assert!(draining, "the drain never showed in the stats");
    assert!(
        !outsider_queued,
        "a queueing from outside the queue's items was accepted during the drain"
    );
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "the item's own queueing was refused during the drain"
    );
    assert_eq!(
        runs_at_return, N,
        "drain_workqueue returned after {runs_at_return} of the chain's {N} runs"
    );
    assert!(!chain.is_pending());
    assert!(reopened, "a drained queue takes items again");
}

#[crate::ktest]
fn retired_workers_give_back_their_threads_and_stacks() {
    // CPU 0's high-priority pool; a short idle timeout so that workers retire quickly.
    const POOL: usize = 1;
    const EXTRA: usize = 6;
    let timeout = workqueue::idle_worker_timeout();
    workqueue::set_idle_worker_timeout(5);
    let hi = alloc_workqueue("wq-test-retire", WqFlags::WQ_HIGHPRI, 0).expect("alloc");
    // Each round makes the pool run EXTRA workers at once (each sleeps in an item), then lets
    // them go idle: all but the ones a pool keeps retire.
    let round = || {
        let release = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicUsize::new(0));
        let items: Vec<WorkRef> = (0..EXTRA)
            .map(|_| {
                let (release, busy) = (release.clone(), busy.clone());
                WorkRef::new("ktest-retire", move |_| {
                    busy.fetch_add(1, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        sleep_ticks(1);
                    }
                })
            })
            .collect();
        for w in &items {
            assert!(queue_work_on(0, hi, w));
        }
        let all_busy = wait_for(300, || busy.load(Ordering::SeqCst) == EXTRA);
        release.store(true, Ordering::SeqCst);
        flush_workqueue(hi);
        let retired = wait_for(300, || {
            let s = workqueue::pool_stats()[POOL];
            s.idle + s.busy <= ::workqueue::MIN_IDLE
        });
        all_busy && retired
    };
    let warm = round();
    // The warm-up leaves the workers a pool keeps; the rounds after it create and retire
    // EXTRA - MIN_IDLE workers each.
    sleep_ticks(5);
    let (threads, stacks) = (
        crate::sched::registered_threads(),
        crate::memory::stack::stacks_in_use(),
    );
    let rounds = [round(), round(), round()];
    let back = wait_for(300, || {
        crate::sched::registered_threads() <= threads
            && crate::memory::stack::stacks_in_use() <= stacks
    });
    let (threads_now, stacks_now) = (
        crate::sched::registered_threads(),
        crate::memory::stack::stacks_in_use(),
    );
    workqueue::set_idle_worker_timeout(timeout);
    destroy_workqueue(hi);
    assert!(
        warm && rounds.iter().all(|&r| r),
        "workers were not created and retired"
    );
    assert!(
        back,
        "after retiring workers: {threads_now} threads registered (were {threads}), \
         {stacks_now} stacks in use (were {stacks})"
    );
}

#[crate::ktest]
fn flush_cancel_and_drain_sleep_with_interrupts_on() {
    let wq = alloc_workqueue("wq-test-irqs", WqFlags::empty(), 0).expect("alloc");
    let waits = workqueue::WAITS.load(Ordering::SeqCst);
    let off = workqueue::WAITS_WITH_IRQS_OFF.load(Ordering::SeqCst);
    assert!(crate::sync::interrupts_enabled());
    let run_and = |what: &dyn Fn(&WorkRef)| {
        let (w, started, finished) = sleeper("ktest-irqs-on", 10);
        assert!(queue_work(wq, &w));
        assert!(
            wait_for(200, || started.load(Ordering::SeqCst)),
            "never started"
        );
        what(&w);
        assert!(finished.load(Ordering::SeqCst), "returned before the item");
    };
    run_and(&|w| assert!(flush_work(w)));
    run_and(&|w| assert!(!cancel_work_sync(w)));
    run_and(&|_| drain_workqueue(wq));
    destroy_workqueue(wq);
    assert!(
        workqueue::WAITS.load(Ordering::SeqCst) > waits,
        "the calls waited"
    );
    assert_eq!(
        workqueue::WAITS_WITH_IRQS_OFF.load(Ordering::SeqCst),
        off,
        "a flush, cancel or drain slept with interrupts off"
    );
    assert!(crate::sync::interrupts_enabled());
}

/// Yields until `cond` holds, for at most 10 s: polls without sleeping on a timer (which may
/// allocate), for use while memory is exhausted.
fn spin_until(cond: impl Fn() -> bool) -> bool {
    let deadline = crate::time::uptime_us() + 10_000_000;
    while !cond() {
        if crate::time::uptime_us() >= deadline {
            return false;
        }
        crate::sched::yield_now();
    }
    true
}

/// Where blocker items sleep until released: a wait queue, whose sleep allocates nothing.
struct Gate {
    open: AtomicBool,
    waitq: crate::sync::WaitQueue,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicBool::new(false),
            waitq: crate::sync::WaitQueue::new(),
        })
    }

    fn wait(&self) {
        self.waitq
            .wait_until(|| self.open.load(Ordering::Acquire).then_some(()));
    }

    fn release(&self) {
        self.open.store(true, Ordering::Release);
        self.waitq.wake_all();
    }
}

/// Keeps every worker of `pool` asleep in an item of `wq` (queued on `cpu`) behind `gate`,
/// with worker creation failing (injected) so that no new one appears; returns whether all
/// took one. The caller turns the injection off.
fn occupy_pool(pool: usize, cpu: usize, wq: workqueue::Workqueue, gate: &Arc<Gate>) -> bool {
    workqueue::FAIL_WORKER_CREATION.store(true, Ordering::SeqCst);
    let stats = workqueue::pool_stats()[pool];
    let nr_workers = stats.idle + stats.busy;
    let busy = Arc::new(AtomicUsize::new(0));
    for _ in 0..nr_workers {
        let (gate, busy) = (gate.clone(), busy.clone());
        let blocker = WorkRef::new("ktest-oom-blocker", move |_| {
            busy.fetch_add(1, Ordering::SeqCst);
            gate.wait();
        });
        assert!(queue_work_on(cpu, wq, &blocker));
    }
    wait_for(200, || {
        let s = workqueue::pool_stats()[pool];
        busy.load(Ordering::SeqCst) == nr_workers && s.idle == 0
    })
}

#[crate::ktest]
fn a_reclaim_queue_runs_its_items_while_memory_is_exhausted_and_the_pool_recovers() {
    // The high-priority pool of the last CPU: no other test uses it.
    let cpu = crate::cpu::count() - 1;
    let pool = 2 * cpu + 1;
    let hi = alloc_workqueue("wq-test-oom-hi", WqFlags::WQ_HIGHPRI, 0).expect("alloc");
    let reclaim = alloc_workqueue(
        "wq-test-oom-reclaim",
        WqFlags::WQ_HIGHPRI | WqFlags::WQ_MEM_RECLAIM,
        0,
    )
    .expect("alloc");
    kcore::selftest::quiesce();
    // The pool's workers now (none until its first item; any an earlier run left idle; a
    // worker from boot once pools get one, docs/workqueue.md). Everything below is relative
    // to it.
    let baseline = {
        let s = workqueue::pool_stats()[pool];
        s.idle + s.busy
    };
    let gate = Gate::new();
    let occupied = occupy_pool(pool, cpu, hi, &gate);
    // Made before memory runs out: queueing them allocates nothing.
    let (rescued_item, rescued_runs) = counter("ktest-oom-rescued");
    let (plain_item, plain_runs) = counter("ktest-oom-plain");
    let rescued = workqueue::RESCUED.load(Ordering::SeqCst);
    let exhausted = kcore::selftest::exhaust_all_cpus();
    // From now on worker creation fails for real: no memory for the worker.
    workqueue::FAIL_WORKER_CREATION.store(false, Ordering::SeqCst);
    let failures = workqueue::WORKER_CREATE_FAILURES.load(Ordering::SeqCst);
    let queued = queue_work_on(cpu, reclaim, &rescued_item);
    // The manager fails to create a worker (counted), sends the mayday, the rescuer runs the
    // item.
    let ran = spin_until(|| {
        rescued_runs.load(Ordering::SeqCst) == 1
            && workqueue::WORKER_CREATE_FAILURES.load(Ordering::SeqCst) > failures
    });
    let failed = workqueue::WORKER_CREATE_FAILURES.load(Ordering::SeqCst) - failures;
    let by_rescuer = workqueue::RESCUED.load(Ordering::SeqCst) > rescued;
    // An item of a queue without a rescuer waits for a worker: the manager tries (and fails)
    // again, and again after its retry delay, and the item does not run.
    let before_plain = workqueue::WORKER_CREATE_FAILURES.load(Ordering::SeqCst);
    let plain_queued = queue_work_on(cpu, hi, &plain_item);
    let retried =
        spin_until(|| workqueue::WORKER_CREATE_FAILURES.load(Ordering::SeqCst) >= before_plain + 2);
    let plain_while_exhausted = plain_runs.load(Ordering::SeqCst);
    exhausted.give_back();
    // Memory is back: the next retry creates a worker, which runs the plain item.
    let recovered = wait_for(300, || plain_runs.load(Ordering::SeqCst) == 1);
    gate.release();
    flush_workqueue(hi);
    let after = {
        let s = workqueue::pool_stats()[pool];
        s.idle + s.busy
    };
    destroy_workqueue(hi);
    destroy_workqueue(reclaim);
    assert!(occupied, "the pool's workers did not all take a blocker");
    assert!(queued && plain_queued);
    assert!(
        (baseline..=baseline + 1).contains(&after),
        "the pool had {baseline} workers and has {after}: the failed creations must leave \
         none behind, and the one created once memory was back is the only new one"
    );
    assert!(
        ran,
        "the reclaim queue's item did not run while memory was exhausted \
         ({failed} worker creations failed meanwhile)"
    );
    assert!(
        by_rescuer,
        "the reclaim queue's item ran, but not by the rescuer"
    );
    assert!(
        retried,
        "the manager did not keep trying for the plain item while memory was out"
    );
    assert_eq!(
        plain_while_exhausted, 0,
        "an item without a rescuer ran while no worker could be created"
    );
    assert!(
        recovered,
        "no worker was created after memory was given back"
    );
}

#[crate::ktest]
fn the_slab_destroy_work_runs_through_its_rescuer_while_memory_is_exhausted() {
    // The slab allocator's destroy work is queued on the CPU that queues it: this one's normal
    // pool, shared with `system_wq`.
    let cpu = crate::cpu::current_id();
    let pool = 2 * cpu;
    let wq = workqueue::slab_destroy_wq();
    assert!(
        workqueue::wq_stats(wq)
            .flags
            .contains(WqFlags::WQ_MEM_RECLAIM),
        "the slab destroy queue is a reclaim queue"
    );
    kcore::selftest::quiesce();
    let gate = Gate::new();
    let occupied = occupy_pool(pool, cpu, system_wq(), &gate);
    let rescued = workqueue::RESCUED.load(Ordering::SeqCst);
    let executed = workqueue::wq_stats(wq).executed;
    let exhausted = kcore::selftest::exhaust_all_cpus();
    workqueue::FAIL_WORKER_CREATION.store(false, Ordering::SeqCst);
    // What the slab platform does after a cache destroy linked its head.
    workqueue::queue_slab_work();
    let ran = spin_until(|| workqueue::RESCUED.load(Ordering::SeqCst) > rescued);
    exhausted.give_back();
    gate.release();
    flush_workqueue(system_wq());
    assert!(occupied, "the pool's workers did not all take a blocker");
    assert!(
        ran,
        "the slab destroy work did not run through the rescuer while memory was exhausted"
    );
    assert!(
        workqueue::wq_stats(wq).executed > executed,
        "the rescued item was not the slab destroy queue's"
    );
}

#[crate::ktest]
fn work_items_come_from_their_static_cache() {
    use kcore::memory::cache_alloc::CacheTag;
    let (w, n) = counter("ktest-cached-item");
    let cache = workqueue::WorkCache::cache();
    let ptr = core::ptr::NonNull::new(w.as_ptr().cast_mut().cast::<u8>()).expect("an item");
    assert!(cache.owns(ptr), "the item is an object of work_struct");
    let c = cache.cache().expect("set up by the first item");
    assert_eq!(c.name(), "work_struct");
    assert!(
        c.flags().contains(slab::SlabFlags::SLAB_PREALLOCATED),
        "a static cache"
    );
    assert!(
        kcore::memory::static_cache::in_data_section(core::ptr::from_ref(c) as usize),
        "in .data"
    );
    assert!(queue_work(system_wq(), &w));
    assert!(wait_for(100, || n.load(Ordering::SeqCst) == 1));
}
