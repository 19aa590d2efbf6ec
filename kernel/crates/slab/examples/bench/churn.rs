//! Single-threaded workloads: alloc+free pairs (a) and churn over live objects (b, c).

use std::hint::black_box;
use std::time::{Duration, Instant};

use slab::layout::kmalloc_size_roundup;

use crate::alloc::Bench;
use crate::{MAX_SIZE, MIN_SIZE, RUNS};

/// A tiny deterministic PRNG (xorshift64).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    #[inline]
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    #[inline]
    pub(crate) fn size(&mut self) -> usize {
        MIN_SIZE + (self.next() % (MAX_SIZE - MIN_SIZE + 1) as u64) as usize
    }
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Best (smallest) of [`RUNS`] results of `f`.
pub(crate) fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..RUNS).map(|_| f()).fold(f64::INFINITY, f64::min)
}

pub(crate) fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// (a): `n` alloc/free pairs of `size` bytes; ns per pair.
pub(crate) fn pairs<A: Bench>(a: &A, size: usize, n: usize) -> f64 {
    // Warm up (first refill of the sheaf, first page of the heap...).
    for _ in 0..1000 {
        let p = a.alloc(size);
        // SAFETY: just allocated with this size.
        unsafe { a.free(black_box(p), size) };
    }
    let t = Instant::now();
    for _ in 0..n {
        let p = a.alloc(black_box(size));
        // SAFETY: just allocated with this size.
        unsafe { a.free(black_box(p), size) };
    }
    ns_per(t.elapsed(), n)
}

/// The live objects of a churn workload, with their sizes.
pub(crate) struct Live {
    pub(crate) objs: Vec<(*mut u8, usize)>,
    pub(crate) rng: Rng,
}

impl Live {
    /// Allocates `n` objects of random sizes.
    pub(crate) fn fill<A: Bench>(a: &A, n: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let objs = (0..n)
            .map(|_| {
                let s = rng.size();
                let p = a.alloc(s);
                // Touch the object, as its user would.
                // SAFETY: `p` is a fresh object of `s >= 8` bytes.
                unsafe { p.write(s as u8) };
                (p, s)
            })
            .collect();
        Self { objs, rng }
    }

    /// `n` churn ops: free a random live object, allocate a new random size in its place.
    pub(crate) fn churn<A: Bench>(&mut self, a: &A, n: usize) {
        let len = self.objs.len();
        for _ in 0..n {
            let i = self.rng.below(len);
            let (p, s) = self.objs[i];
            // SAFETY: a live object of `a` of size `s`, dropped from the list.
            unsafe { a.free(p, s) };
            let s = self.rng.size();
            let p = a.alloc(s);
            // SAFETY: `p` is a fresh object of `s >= 8` bytes.
            unsafe { p.write(s as u8) };
            self.objs[i] = (p, s);
        }
    }

    /// Frees everything.
    pub(crate) fn free_all<A: Bench>(self, a: &A) {
        for (p, s) in self.objs {
            // SAFETY: live objects of `a`, not used afterwards.
            unsafe { a.free(p, s) };
        }
    }

    /// Sum of the kmalloc class sizes of the live objects.
    pub(crate) fn class_bytes(&self) -> usize {
        self.objs
            .iter()
            .map(|&(_, s)| kmalloc_size_roundup(s))
            .sum()
    }
}

/// (b)/(c): fill `live` objects, `warm` untimed ops, `ops` timed ops, free all; ns per op.
pub(crate) fn churn<A: Bench>(a: &A, live: usize, warm: usize, ops: usize) -> f64 {
    let mut l = Live::fill(a, live, 0x5eed_1234);
    l.churn(a, warm);
    let t = Instant::now();
    l.churn(a, ops);
    let d = t.elapsed();
    l.free_all(a);
    ns_per(d, ops)
}
