//! Workload (d): 1 and 2 threads, the controls, producer/consumer.

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::alloc::{Bench, Kmalloc, Sheaf};
use crate::churn::{Live, Rng, best, ns_per, pairs};
use crate::{LIVE_B, OPS, PAIR_SIZE, PC_OBJECTS, RUNS, WARMUP, row};

/// CPU time used by the calling thread so far (Linux `CLOCK_THREAD_CPUTIME_ID`).
#[cfg(target_os = "linux")]
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` (libc, which std links) writes one `struct timespec` (two 64-bit
    // fields on 64-bit Linux) through the valid pointer it is given.
    let r = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (r == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    None
}

/// Throughputs of a multi-threaded run.
#[derive(Clone, Copy, Default)]
pub(crate) struct Rate {
    /// Work units per second of wall time (first start to last end).
    pub(crate) wall: f64,
    /// Work units per second of CPU time used by the threads (0 if unknown): unlike `wall`, it
    /// does not drop when other processes take one of the cores, only when the threads slow
    /// each other down (shared locks, cache lines bouncing between cores).
    pub(crate) cpu: f64,
}

/// (d): `threads` threads each running `work` after a barrier. `work` returns the units it did.
pub(crate) fn on_threads<S>(
    threads: usize,
    setup: impl Fn(usize) -> S + Sync,
    work: impl Fn(&mut S) -> usize + Sync,
    teardown: impl Fn(S) + Sync,
) -> Rate {
    let barrier = Barrier::new(threads);
    type Span = (Instant, Instant, Option<Duration>, usize);
    let spans: Vec<Span> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, setup, work, teardown) = (&barrier, &setup, &work, &teardown);
                s.spawn(move || {
                    let mut state = setup(t);
                    barrier.wait();
                    let c0 = thread_cpu_time();
                    let t0 = Instant::now();
                    let units = work(&mut state);
                    let t1 = Instant::now();
                    let cpu = thread_cpu_time().zip(c0).map(|(c1, c0)| c1 - c0);
                    teardown(state);
                    (t0, t1, cpu, units)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("threads");
    let end = spans.iter().map(|s| s.1).max().expect("threads");
    let units: usize = spans.iter().map(|s| s.3).sum();
    let cpu: Option<Duration> = spans.iter().map(|s| s.2).sum();
    Rate {
        wall: units as f64 / (end - start).as_secs_f64(),
        cpu: cpu.map_or(0.0, |c| units as f64 / c.as_secs_f64()),
    }
}

/// (d): `threads` threads each running (b)-style churn on their own objects; ops per second.
pub(crate) fn churn_threads<A: Bench>(a: &A, threads: usize) -> Rate {
    on_threads(
        threads,
        |t| {
            let cpu = a.enter();
            let mut l = Live::fill(a, LIVE_B, 0x5eed_0000 + t as u64);
            l.churn(a, WARMUP);
            (cpu, l)
        },
        |(_, l)| {
            l.churn(a, OPS);
            OPS
        },
        |(cpu, l)| {
            l.free_all(a);
            drop(cpu);
        },
    )
}

/// (d): `threads` threads each running (b)-style churn with an allocator of its own (a Sheaf
/// kmalloc on a private platform): what the threads cost each other when they share nothing
/// but the machine.
pub(crate) fn churn_threads_private(threads: usize) -> Rate {
    on_threads(
        threads,
        |t| {
            let (sheaf, cpu) = Sheaf::new(65_536 / threads);
            let mut l = Live::fill(&Kmalloc(&sheaf), LIVE_B, 0x5eed_0000 + t as u64);
            l.churn(&Kmalloc(&sheaf), WARMUP);
            (sheaf, cpu, Some(l))
        },
        |(sheaf, _, l)| {
            l.as_mut().expect("live").churn(&Kmalloc(sheaf), OPS);
            OPS
        },
        |(sheaf, cpu, mut l)| {
            l.take().expect("live").free_all(&Kmalloc(&sheaf));
            drop(cpu);
        },
    )
}

/// (d): `threads` threads each running same-thread alloc+free pairs of [`PAIR_SIZE`] bytes;
/// pairs per second.
pub(crate) fn pairs_threads<A: Bench>(a: &A, threads: usize) -> Rate {
    on_threads(
        threads,
        |_| a.enter(),
        |_| {
            pairs(a, PAIR_SIZE, PC_OBJECTS);
            PC_OBJECTS
        },
        drop,
    )
}

/// (d) control: `threads` threads of pure arithmetic (no memory traffic); iterations per
/// second. The 2/1 ratio shows how much of a second core the machine really gave us.
pub(crate) fn compute_threads(threads: usize) -> Rate {
    const ITERS: usize = 50_000_000;
    on_threads(
        threads,
        |t| Rng::new(t as u64 + 1),
        |r| {
            for _ in 0..ITERS {
                black_box(r.next());
            }
            ITERS
        },
        drop,
    )
}

/// (d) memory control: `threads` threads each doing random read-modify-writes in a private
/// 16 MiB array (about the memory footprint and access pattern of one churn thread, without
/// any allocator); updates per second. Unlike the arithmetic control, it also drops when the
/// two threads share caches or memory bandwidth (e.g. two virtual CPUs on one physical core).
pub(crate) fn memory_threads(threads: usize) -> Rate {
    const WORDS: usize = 2 << 20;
    const ITERS: usize = 4_000_000;
    on_threads(
        threads,
        |t| (vec![1u64; WORDS], Rng::new(t as u64 + 7)),
        |(v, r)| {
            for _ in 0..ITERS {
                let i = r.below(WORDS);
                v[i] = v[i].wrapping_mul(3).wrapping_add(1);
            }
            black_box(&v);
            ITERS
        },
        drop,
    )
}

/// Best-of-[`RUNS`] throughputs of `f` with 1 and 2 threads, and of the compute and memory
/// controls likewise, all runs interleaved so that a change of the machine's load hits each
/// alike. Returns `f`, compute control, memory control, each with 1 then 2 threads.
pub(crate) fn one_two(mut f: impl FnMut(usize) -> Rate) -> [Rate; 6] {
    let mut best = [Rate::default(); 6];
    for _ in 0..RUNS {
        for (i, x) in [
            f(1),
            f(2),
            compute_threads(1),
            compute_threads(2),
            memory_threads(1),
            memory_threads(2),
        ]
        .into_iter()
        .enumerate()
        {
            best[i].wall = best[i].wall.max(x.wall);
            best[i].cpu = best[i].cpu.max(x.cpu);
        }
    }
    best
}

/// A counter on its own cache line.
#[repr(align(128))]
pub(crate) struct Padded(pub(crate) AtomicUsize);

/// A single-producer single-consumer ring of object pointers.
pub(crate) struct Ring {
    pub(crate) slots: Box<[AtomicPtr<u8>]>,
    /// Objects published by the producer.
    pub(crate) tail: Padded,
    /// Objects taken by the consumer.
    pub(crate) head: Padded,
}

pub(crate) const RING: usize = 4096;
/// The producer publishes its tail every this many objects (and when the ring is full).
pub(crate) const PUBLISH: usize = 16;

/// Spins, yielding to the OS now and then (the other thread may be descheduled).
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    if spins.is_multiple_of(1024) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// (d) producer/consumer: thread A allocates [`PC_OBJECTS`] objects and passes them to thread
/// B, which frees them; ns per object (wall time / objects).
pub(crate) fn producer_consumer<A: Bench>(a: &A) -> f64 {
    let ring = Ring {
        slots: (0..RING)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect(),
        tail: Padded(AtomicUsize::new(0)),
        head: Padded(AtomicUsize::new(0)),
    };
    let barrier = Barrier::new(2);
    let n = PC_OBJECTS;
    let (t0, t1) = std::thread::scope(|s| {
        let (ring, barrier) = (&ring, &barrier);
        let producer = s.spawn(move || {
            let _cpu = a.enter();
            barrier.wait();
            let t0 = Instant::now();
            let (mut tail, mut head) = (0usize, 0usize);
            for _ in 0..n {
                let p = a.alloc(PAIR_SIZE);
                let mut spins = 0;
                while tail - head == RING {
                    ring.tail.0.store(tail, Ordering::Release);
                    head = ring.head.0.load(Ordering::Acquire);
                    if tail - head == RING {
                        backoff(&mut spins);
                    }
                }
                ring.slots[tail % RING].store(p, Ordering::Relaxed);
                tail += 1;
                if tail.is_multiple_of(PUBLISH) {
                    ring.tail.0.store(tail, Ordering::Release);
                }
            }
            ring.tail.0.store(tail, Ordering::Release);
            t0
        });
        let consumer = s.spawn(move || {
            let _cpu = a.enter();
            barrier.wait();
            let mut head = 0usize;
            let mut spins = 0;
            while head < n {
                let tail = ring.tail.0.load(Ordering::Acquire);
                if tail == head {
                    backoff(&mut spins);
                    continue;
                }
                while head < tail {
                    let p = ring.slots[head % RING].load(Ordering::Relaxed);
                    // SAFETY: the producer allocated `p` with this size and handed it over.
                    unsafe { a.free(p, PAIR_SIZE) };
                    head += 1;
                }
                ring.head.0.store(head, Ordering::Release);
            }
            Instant::now()
        });
        (
            producer.join().expect("producer"),
            consumer.join().expect("consumer"),
        )
    });
    ns_per(t1 - t0, n)
}

/// Same-thread pairs for producer/consumer's baseline, on a thread of its own like the others.
pub(crate) fn pairs_on_thread<A: Bench>(a: &A) -> f64 {
    std::thread::scope(|s| {
        s.spawn(|| {
            let _cpu = a.enter();
            pairs(a, PAIR_SIZE, PC_OBJECTS)
        })
        .join()
        .expect("thread")
    })
}

/// Figures of (d) for one allocator.
pub(crate) struct ThreadsRow {
    /// Churn: 2-thread over 1-thread throughput.
    pub(crate) churn: f64,
    /// The compute control's 2/1 ratio in the same runs.
    pub(crate) control: f64,
    /// The memory control's 2/1 ratio in the same runs.
    pub(crate) mem: f64,
    /// Same-thread pairs: 2-thread over 1-thread throughput.
    pub(crate) pairs: f64,
    /// Producer/consumer over same-thread pairs throughput.
    pub(crate) pc: f64,
}

/// (d) for one allocator: prints its row.
pub(crate) fn threads_row<A: Bench>(name: &str, a: &A) -> ThreadsRow {
    let churn = one_two(|t| churn_threads(a, t));
    let [p1, p2] = best_one_two(|t| pairs_threads(a, t));
    let pairs = best(|| pairs_on_thread(a));
    let pc = best(|| producer_consumer(a));
    let r = ThreadsRow {
        churn: churn[1].wall / churn[0].wall,
        control: churn[3].wall / churn[2].wall,
        mem: churn[5].wall / churn[4].wall,
        pairs: p2.wall / p1.wall,
        pc: pairs / pc,
    };
    let mut cols = churn_cols(&churn);
    cols.extend([
        format!("{:.2}x", r.pairs),
        format!("{pairs:.2}"),
        format!("{pc:.2}"),
        format!("{:.2}x", r.pc),
    ]);
    row(name, &cols);
    r
}

/// The churn columns of a (d) row from [`one_two`]'s rates.
pub(crate) fn churn_cols(&[one, two, c1, c2, m1, m2]: &[Rate; 6]) -> Vec<String> {
    vec![
        format!("{:.1}", one.wall / 1e6),
        format!("{:.1}", two.wall / 1e6),
        format!("{:.2}x", two.wall / one.wall),
        format!("{:.2}x", c2.wall / c1.wall),
        format!("{:.2}x", m2.wall / m1.wall),
        format!("{:.2}", two.cpu / one.cpu),
    ]
}

/// Best-of-[`RUNS`] throughputs of `f` with 1 and 2 threads, runs interleaved.
pub(crate) fn best_one_two(mut f: impl FnMut(usize) -> Rate) -> [Rate; 2] {
    let mut best = [Rate::default(); 2];
    for _ in 0..RUNS {
        for (i, t) in [1, 2].into_iter().enumerate() {
            let x = f(t);
            best[i].wall = best[i].wall.max(x.wall);
            best[i].cpu = best[i].cpu.max(x.cpu);
        }
    }
    best
}
