//! Threads as CPUs: four readers dereference a pointer that a writer keeps replacing, and the
//! writer frees each old object through `call_rcu`. No reader may ever see a freed object.
//!
//! The "pointer" is an index into a table of objects published with an atomic swap, and
//! "freeing" sets the object's `freed` flag (the memory itself stays valid, so a bug shows up
//! as a failed check rather than as undefined behaviour). Each reader also publishes, while in
//! its read section, the epoch (index) it observed on entry; the free callback checks that no
//! reader is still inside a section that began while the object was current.
#![cfg(not(loom))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use rcu::Rcu;

const READERS: usize = 4;
/// The writer's CPU number (the readers are CPUs 0 to 3).
const WRITER: usize = READERS;
/// Objects replaced (and freed) by the writer.
const WRITES: usize = 100_000;
/// The writer lets at most this many callbacks wait before it waits for grace periods.
const MAX_PENDING: usize = 64;
/// A grace period taking longer than this means QS reports were lost.
const STALL: Duration = Duration::from_secs(20);

struct Object {
    /// Set by the object's RCU callback.
    freed: AtomicBool,
    /// Its own index: a reader checks it is looking at the object it was pointed to.
    value: AtomicUsize,
}

struct Shared {
    rcu: Rcu,
    objects: Vec<Object>,
    /// The published "pointer": index of the current object.
    current: AtomicUsize,
    /// Per reader: 0 outside a read section, `epoch + 1` inside one that began at `epoch`.
    reading: Vec<AtomicUsize>,
    stop: AtomicBool,
    /// Dereferences done by the readers (to check the test did something).
    reads: AtomicU64,
}

fn reader(s: &Shared, cpu: usize) {
    let mut n: u64 = 0;
    while !s.stop.load(SeqCst) {
        // rcu_read_lock(): from here to the next QS report this CPU is in a read section.
        let epoch = s.current.load(SeqCst);
        s.reading[cpu].store(epoch + 1, SeqCst);
        let p = s.current.load(SeqCst); // rcu_dereference()
        let obj = &s.objects[p];
        assert!(!obj.freed.load(SeqCst), "CPU {cpu} got freed object {p}");
        // Hold the reference a while (sometimes across a host preemption, like a vCPU).
        if n.is_multiple_of(64) {
            thread::yield_now();
        } else {
            for _ in 0..(n % 32) {
                std::hint::spin_loop();
            }
        }
        assert_eq!(obj.value.load(SeqCst), p);
        assert!(!obj.freed.load(SeqCst), "object {p} freed under CPU {cpu}");
        // rcu_read_unlock(), then a context switch: a quiescent state.
        s.reading[cpu].store(0, SeqCst);
        s.rcu.quiescent_state(cpu);
        n += 1;
    }
    s.reads.fetch_add(n, SeqCst);
}

fn run_ready(s: &Shared, cpu: usize) {
    for cb in s.rcu.take_ready_callbacks(cpu) {
        cb();
    }
}

fn writer(s: &Arc<Shared>) {
    for new in 1..=WRITES {
        let old = s.current.swap(new, SeqCst); // rcu_assign_pointer()
        let sh = s.clone();
        s.rcu.call_rcu(
            WRITER,
            Box::new(move || {
                for (cpu, r) in sh.reading.iter().enumerate() {
                    assert_ne!(
                        r.load(SeqCst),
                        old + 1,
                        "object {old} freed while CPU {cpu} is in a section that began on it"
                    );
                }
                assert!(
                    !sh.objects[old].freed.swap(true, SeqCst),
                    "{old} freed twice"
                );
            }),
        );
        s.rcu.quiescent_state(WRITER);
        run_ready(s, WRITER);
        let start = Instant::now();
        while s.rcu.pending_callbacks(WRITER) > MAX_PENDING {
            assert!(start.elapsed() < STALL, "grace period stalled");
            thread::yield_now();
            s.rcu.quiescent_state(WRITER);
            run_ready(s, WRITER);
        }
    }
}

#[test]
fn readers_never_see_freed_objects() {
    let rcu = Rcu::new(READERS + 1);
    for cpu in 0..=READERS {
        rcu.cpu_online(cpu);
    }
    let s = Arc::new(Shared {
        rcu,
        objects: (0..=WRITES)
            .map(|i| Object {
                freed: AtomicBool::new(false),
                value: AtomicUsize::new(i),
            })
            .collect(),
        current: AtomicUsize::new(0),
        reading: (0..READERS).map(|_| AtomicUsize::new(0)).collect(),
        stop: AtomicBool::new(false),
        reads: AtomicU64::new(0),
    });
    let readers: Vec<_> = (0..READERS)
        .map(|cpu| {
            let s = s.clone();
            thread::spawn(move || reader(&s, cpu))
        })
        .collect();
    let w = {
        let s = s.clone();
        thread::spawn(move || writer(&s))
    };
    let writer_result = w.join();
    s.stop.store(true, SeqCst);
    for r in readers {
        r.join().expect("reader failed");
    }
    writer_result.expect("writer failed");

    // Every CPU is now idle: a few rounds of QS finish the outstanding grace periods.
    for _ in 0..3 {
        for cpu in 0..=READERS {
            s.rcu.quiescent_state(cpu);
        }
        run_ready(&s, WRITER);
    }
    assert_eq!(s.rcu.pending_callbacks(WRITER), 0);
    std::eprintln!(
        "{} reads, {} writes, {} grace periods",
        s.reads.load(SeqCst),
        WRITES,
        s.rcu.completed_gps()
    );
    let freed = s.objects.iter().filter(|o| o.freed.load(SeqCst)).count();
    assert_eq!(
        freed, WRITES,
        "every replaced object freed, the current one not"
    );
    assert!(!s.objects[WRITES].freed.load(SeqCst));
    assert!(s.rcu.completed_gps() > 0);
    assert!(
        s.reads.load(SeqCst) >= READERS as u64,
        "readers did not run"
    );
}
