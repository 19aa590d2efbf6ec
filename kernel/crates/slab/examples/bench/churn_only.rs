//! `bench dc`: only the churn columns of (d), for iterating on the threads row quickly.
//!
//! With `--stats`, then (`--stats-only`: instead, three times) Sheaf kmalloc's churn on 1 and
//! 2 threads once more, untimed by the table: the slow-path events per timed op (from the
//! cache statistics), each thread's CPU time per op, and the share of allocations that got
//! an object last written by the other thread (each thread tags the objects it allocates):
//! the objects, and the sheaves that carry them, that the two CPUs pass each other through
//! the barn and the slabs of their shared node.

use std::alloc::System;
use std::sync::Barrier;

use mimalloc::MiMalloc;
use slab::layout::KMALLOC_SIZES;
use slab::{PAGE_SIZE, Stat};

use crate::alloc::{Bench, Global, Kmalloc, Sheaf};
use crate::churn::Live;
use crate::threads::{churn_cols, churn_threads, churn_threads_private, one_two};
use crate::{CHURN_HEADS, LIVE_B, OPS, WARMUP, row};

/// The events printed by `--stats`, per churn op (one free and one alloc).
const EVENTS: [Stat; 12] = [
    Stat::AllocSlowpath,
    Stat::FreeSlowpath,
    Stat::BarnGet,
    Stat::BarnGetFail,
    Stat::BarnPut,
    Stat::BarnPutFail,
    Stat::SheafRefill,
    Stat::SheafFlush,
    Stat::AllocSlab,
    Stat::FreeSlab,
    Stat::SheafAlloc,
    Stat::SheafFree,
];

/// The churn columns of (d) for Sheaf kmalloc, private Sheafs, mimalloc and glibc.
pub(crate) fn workload_dc(stats: bool) {
    if std::env::args().any(|a| a == "--stats-only") {
        for _ in 0..3 {
            print_stats();
        }
        return;
    }
    println!("(d) threads, churn columns only ({OPS} timed ops per thread)");
    row("", &CHURN_HEADS.map(String::from));
    {
        let (sheaf, _cpu) = Sheaf::new(65_536);
        row(
            "sheaf kmalloc",
            &churn_cols(&one_two(|t| churn_threads(&Kmalloc(&sheaf), t))),
        );
    }
    row(
        "sheaf, 1 per thr",
        &churn_cols(&one_two(churn_threads_private)),
    );
    row(
        "mimalloc",
        &churn_cols(&one_two(|t| churn_threads(&Global(MiMalloc), t))),
    );
    row(
        "system",
        &churn_cols(&one_two(|t| churn_threads(&Global(System), t))),
    );
    if stats {
        print_stats();
    }
}

/// Sum of `stat` over the kmalloc caches.
fn total(s: &Sheaf, stat: Stat) -> u64 {
    KMALLOC_SIZES
        .iter()
        .map(|&size| {
            s.slab
                .kmalloc_cache(size)
                .expect("kmalloc cache")
                .stat(stat)
        })
        .sum()
}

/// Slow-path events per timed churn op of Sheaf kmalloc, on a fresh allocator for 1 and for
/// 2 threads (counted from the end of the warm-up to the end of the timed ops), and per
/// thread its CPU time per op and the objects it got from the other thread.
fn print_stats() {
    println!("  sheaf kmalloc events per timed op (all threads):");
    print!("  {:<6}", "thr");
    for e in EVENTS {
        print!(" {:>14}", e.name());
    }
    println!();
    for threads in [1, 2] {
        let (sheaf, _cpu) = Sheaf::new(65_536);
        let k = Kmalloc(&sheaf);
        let barrier = Barrier::new(threads + 1);
        let (before, after) = std::thread::scope(|s| {
            for t in 0..threads {
                let (k, barrier) = (&k, &barrier);
                s.spawn(move || {
                    let cpu = k.enter();
                    let mut l = Live::fill(k, LIVE_B, 0x5eed_0000 + t as u64);
                    l.churn(k, WARMUP);
                    barrier.wait();
                    barrier.wait();
                    let pages0 = pages(&l);
                    let c0 = crate::threads::thread_cpu_time().expect("cpu time");
                    let cross = churn_tagged(&mut l, k, OPS, t as u8);
                    let c1 = crate::threads::thread_cpu_time().expect("cpu time");
                    println!(
                        "    thread {t}: {:.2} ns cpu/op, {:.4} allocs/op got an object last \
                         written by the other thread; its live objects on {} pages, {} \
                         before the timed ops",
                        (c1 - c0).as_nanos() as f64 / OPS as f64,
                        cross as f64 / OPS as f64,
                        pages(&l),
                        pages0
                    );
                    barrier.wait();
                    barrier.wait();
                    l.free_all(k);
                    drop(cpu);
                });
            }
            barrier.wait();
            let before = EVENTS.map(|e| total(&sheaf, e));
            barrier.wait();
            barrier.wait();
            let after = EVENTS.map(|e| total(&sheaf, e));
            barrier.wait();
            (before, after)
        });
        let ops = (threads * OPS) as f64;
        print!("  {threads:<6}");
        for i in 0..EVENTS.len() {
            print!(" {:>14.5}", (after[i] - before[i]) as f64 / ops);
        }
        println!();
    }
}

/// [`Live::churn`] that tags each allocated object with the thread (byte 1) and counts the
/// allocations that got an object last tagged by another thread (free objects keep the tag
/// unless their slab's free pointer covers it: 8-byte objects, 1% of allocations here).
fn churn_tagged<A: Bench>(l: &mut Live, a: &A, n: usize, t: u8) -> usize {
    let len = l.objs.len();
    let mine = 0xa0 + t;
    let mut cross = 0;
    for _ in 0..n {
        let i = l.rng.below(len);
        let (p, s) = l.objs[i];
        // SAFETY: a live object of `a` of size `s`, dropped from the list.
        unsafe { a.free(p, s) };
        let s = l.rng.size();
        let p = a.alloc(s);
        // SAFETY: `p` is a fresh object of `s >= 8` bytes.
        unsafe {
            let old = p.add(1).read();
            if old != mine && old & 0xf0 == 0xa0 {
                cross += 1;
            }
            p.write(s as u8);
            p.add(1).write(mine);
        }
        l.objs[i] = (p, s);
    }
    cross
}

/// Number of pages holding the live objects of `l`.
fn pages(l: &Live) -> usize {
    let pages: std::collections::HashSet<usize> = l
        .objs
        .iter()
        .map(|&(p, _)| p as usize / PAGE_SIZE)
        .collect();
    pages.len()
}
