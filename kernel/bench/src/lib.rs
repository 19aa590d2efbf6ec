//! The kernel's benchmarks and allocator workloads, on the core's public API: kmalloc against
//! `linked_list_allocator` and its fast path in cycles and instructions ([`kmalloc`], the
//! shell's `slabbench`), the asynchronous cache destroy against a synchronous one
//! ([`kmalloc::destroy_bench`], `destroybench`), frees under a lock directly and through the
//! deferred free queue ([`freeq`], `freeqbench`), static against dynamic caches
//! ([`static_cache`], `staticbench`) and a checked kmalloc storm on every CPU ([`storm`],
//! `kmalloc-test`).
//!
//! They live outside the core so that the trusted crate holds no benchmark code. Each gives
//! back what it took, on success and on every error: out of memory and Ctrl-C at the console
//! ([`kcore::console::interrupted`]) end a run with a [`BenchError`], never a panic.
#![no_std]
// `Arc::try_new`: the storm's shared state is allocated fallibly.
#![feature(allocator_ext)]

extern crate alloc;

pub mod freeq;
pub mod kmalloc;
pub mod module;
#[cfg(feature = "ktest")]
mod soak;
pub mod static_cache;
pub mod storm;

// `#[ktest]` names `crate::ktest::KTest`: the tests here register with the core's harness.
#[cfg(feature = "ktest")]
use kcore::ktest;

/// Why a benchmark or workload stopped early. Whatever it had allocated is given back first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchError {
    /// An allocation failed.
    OutOfMemory,
    /// Ctrl-C at the console ([`kcore::console::interrupted`]).
    Interrupted,
    /// The module to measure was refused or would not unload (its errno).
    ModuleRefused(i32),
    /// `kmem_free_up_q` did not free every object queued (the free queue lab's student tree
    /// before its work, or a broken queue): how many were queued, freed and reported.
    FreeQueue {
        /// Objects given to `kmem_free_q_add`.
        queued: usize,
        /// Objects `kmem_free_up_q` freed.
        freed: usize,
        /// Reports `kmem_free_up_q` returned.
        reports: usize,
    },
}

impl core::fmt::Display for BenchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BenchError::OutOfMemory => "out of memory",
            BenchError::Interrupted => "interrupted",
            BenchError::FreeQueue {
                queued,
                freed,
                reports,
            } => {
                return write!(
                    f,
                    "kmem_free_up_q freed {freed} of the {queued} objects queued, with \
                     {reports} reports: the free queue is broken"
                );
            }
            BenchError::ModuleRefused(e) => {
                return write!(
                    f,
                    "the module was refused: -{}",
                    kcore::module::errno::name(*e)
                );
            }
        })
    }
}

/// Gives back what a benchmark left in the kmalloc caches of `sizes` (objects it freed, kept
/// in sheaves, barns and empty slabs for the next allocation): each is shrunk
/// (`kmem_cache_shrink`), its empty slabs freed. Sleeps (a thread on each CPU).
pub fn shrink_kmalloc_caches(sizes: impl IntoIterator<Item = usize>) {
    let s = kcore::memory::kmalloc::slab();
    for size in sizes {
        if let Some(cache) = s.kmalloc_cache(size) {
            cache.shrink();
        }
    }
}

/// Every kmalloc size class up to a page: what a benchmark of mixed sizes uses.
pub const KMALLOC_SIZES: [usize; 12] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096];
