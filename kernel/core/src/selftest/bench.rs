//! Benchmarks of kmalloc on the real machine: against `linked_list_allocator` on the same
//! workload, and the fast path alone, in TSC cycles (the shell's `slabbench`).

use alloc::vec::Vec;
use linked_list_allocator::Heap;
use slab::Gfp;

use super::Rng;
use crate::memory::PAGE_SIZE;
use crate::memory::kmalloc::slab;
use crate::memory::vmap::KernelMapping;
use crate::sync::SpinLock;

/// TSC cycles per kmalloc(64)+kfree pair on the sheaf fast path (the same object every time).
pub fn fastpath_pair_cycles(pairs: u64) -> u64 {
    let start = crate::time::rdtsc();
    for _ in 0..pairs {
        let p = slab().kmalloc(64, Gfp::KERNEL).expect("memory");
        // SAFETY: just allocated, not used again.
        let _ = unsafe { slab().kfree(core::hint::black_box(p.as_ptr())) };
    }
    (crate::time::rdtsc() - start) / pairs
}

/// Instructions of the fast paths in the kernel build, counted by single-stepping
/// ([`crate::arch::step::count_instructions`]): the counterpart of the host build's
/// `count_fastpath.sh`. Each figure is one call through a closure, the call's fixed overhead
/// subtracted; the sheaves are warm, so every operation stays on the fast path.
#[derive(Debug, Clone, Copy)]
pub struct FastpathInstructions {
    /// `kmalloc(64)`.
    pub kmalloc: u64,
    /// `kfree` of that object.
    pub kfree: u64,
    /// `kmem_cache_alloc` from a 64-byte cache of its own.
    pub cache_alloc: u64,
    /// `kmem_cache_free` to it.
    pub cache_free: u64,
    /// A call of a non-inlined function doing `kmalloc(64)` and its `kfree`: the same
    /// function as the host's `count_fastpath.sh kmalloc`, whose figure also has the loop
    /// around the call (about 3 instructions).
    pub kmalloc_pair: u64,
    /// The same for the cache's alloc and free (`count_fastpath.sh cache`).
    pub cache_pair: u64,
}

/// One `kmalloc(size)` and its `kfree` (as the host's `count_fastpath` has it: the size is
/// an argument, hidden from the compiler once, outside).
#[inline(never)]
fn kmalloc_kfree_pair(
    s: &slab::SlabAllocator<crate::memory::kmalloc::KernelPlatform>,
    size: usize,
) {
    if let Some(o) = s.kmalloc(size, Gfp::KERNEL) {
        // SAFETY: from kmalloc, not used afterwards.
        let _ = unsafe { s.kfree(o.as_ptr()) };
    }
}

/// One allocation and one free through a cache (as the host's `count_fastpath` has it).
#[inline(never)]
fn alloc_free_pair(c: &slab::KmemCache<crate::memory::kmalloc::KernelPlatform>) {
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated from `c`, not used afterwards.
        let _ = unsafe { c.free(o) };
    }
}

/// Counts the instructions of kmalloc(64), kfree, and a cache's alloc and free, on warm
/// sheaves. `None` if memory is out.
pub fn fastpath_instructions() -> Option<FastpathInstructions> {
    use crate::arch::step::count_instructions;
    let s = slab();
    // Warm-up: the main sheaf gets objects and room.
    let warm = s.kmalloc(64, Gfp::KERNEL)?;
    // SAFETY: just allocated, not used again.
    let _ = unsafe { s.kfree(warm.as_ptr()) };
    let mut obj = None;
    let kmalloc = count_instructions(|| obj = s.kmalloc(64, Gfp::KERNEL));
    let obj = obj?;
    let kfree = count_instructions(|| {
        // SAFETY: allocated above, not used again.
        let _ = unsafe { s.kfree(obj.as_ptr()) };
    });
    let size = core::hint::black_box(64);
    let kmalloc_pair = count_instructions(|| kmalloc_kfree_pair(s, size));
    let args = slab::KmemCacheArgs::default();
    let cache = s
        .kmem_cache_create("fastpath-count", 64, args, slab::SlabFlags::SLAB_NO_MERGE)
        .ok()?;
    let warm = cache.alloc(Gfp::KERNEL)?;
    // SAFETY: ours.
    let _ = unsafe { cache.free(warm) };
    let mut obj = None;
    let cache_alloc = count_instructions(|| obj = cache.alloc(Gfp::KERNEL));
    let obj = obj?;
    // SAFETY: ours, not used again.
    let cache_free = count_instructions(|| {
        // SAFETY: allocated above, not used again.
        let _ = unsafe { cache.free(obj) };
    });
    let cache_pair = count_instructions(|| alloc_free_pair(&cache));
    // SAFETY: every object is back; nothing else uses the cache.
    let _ = unsafe { s.kmem_cache_destroy(cache) };
    Some(FastpathInstructions {
        kmalloc,
        kfree,
        cache_alloc,
        cache_free,
        kmalloc_pair,
        cache_pair,
    })
}

/// Cycles per operation of kmalloc and of `linked_list_allocator` on the same workload.
#[derive(Debug, Clone, Copy)]
pub struct BenchReport {
    /// Live objects during the measurement.
    pub live: usize,
    /// Operations (one free + one allocation each) measured.
    pub ops: usize,
    /// TSC cycles per operation with kmalloc.
    pub kmalloc_cycles: u64,
    /// TSC cycles per operation with linked_list_allocator.
    pub linked_list_cycles: u64,
}

/// Keeps `live` objects of mixed sizes (8..=2048 bytes) and replaces a random one `ops` times,
/// with kmalloc and with a `linked_list_allocator` heap, in the same run on this CPU. `None`
/// when memory runs out; the heap's pages go back when it returns.
pub fn bench(live: usize, ops: usize) -> Option<BenchReport> {
    use core::alloc::Layout;
    let heap = SpinLock::new(benchmark_heap()?);
    let mut results = [0u64; 2];
    for (which, result) in results.iter_mut().enumerate() {
        let mut rng = Rng::new(42);
        let mut objs: Vec<(usize, usize)> = Vec::with_capacity(live);
        let alloc = |size: usize| -> Option<usize> {
            if which == 0 {
                slab()
                    .kmalloc(size, Gfp::KERNEL)
                    .map(|p| p.as_ptr() as usize)
            } else {
                heap.lock()
                    .heap
                    .allocate_first_fit(Layout::from_size_align(size, 8).ok()?)
                    .ok()
                    .map(|p| p.as_ptr() as usize)
            }
        };
        let free = |ptr: usize, size: usize| {
            if which == 0 {
                // SAFETY: allocated by kmalloc above, not used again.
                let _ = unsafe { slab().kfree(ptr as *mut u8) };
            } else {
                let layout = Layout::from_size_align(size, 8).expect("valid");
                // SAFETY: allocated from this heap with this layout above.
                unsafe {
                    heap.lock()
                        .heap
                        .deallocate(core::ptr::NonNull::new(ptr as *mut u8)?, layout)
                };
            }
            Some(())
        };
        // Sizes small enough that both allocators hold `live` objects in the benchmark heap.
        let max = (BENCH_HEAP_SIZE / 2 / live).clamp(16, 2048);
        for _ in 0..live {
            let size = rng.range(8, max);
            objs.push((alloc(size)?, size));
        }
        let start = crate::time::rdtsc();
        for _ in 0..ops {
            let i = rng.range(0, live - 1);
            let (ptr, size) = objs[i];
            free(ptr, size)?;
            let size = rng.range(8, max);
            objs[i] = (alloc(size)?, size);
        }
        *result = (crate::time::rdtsc() - start) / ops as u64;
        for (ptr, size) in objs {
            free(ptr, size)?;
        }
    }
    Some(BenchReport {
        live,
        ops,
        kmalloc_cycles: results[0],
        linked_list_cycles: results[1],
    })
}

/// Size of the benchmark heap.
pub const BENCH_HEAP_SIZE: usize = 24 * 1024 * 1024;

/// A `linked_list_allocator` heap over pages of its own, which go back when it is dropped.
struct BenchHeap {
    /// Declared first, so dropped before the pages it manages.
    heap: Heap,
    _pages: KernelMapping,
}

/// A fresh `linked_list_allocator` heap over [`BENCH_HEAP_SIZE`] bytes, for benchmarks that
/// compare it with kmalloc; `None` when memory is short.
fn benchmark_heap() -> Option<BenchHeap> {
    let mut pages = KernelMapping::new(BENCH_HEAP_SIZE / PAGE_SIZE).ok()?;
    let memory = pages.as_mut_slice()?;
    // SAFETY: the pages are the mapping's alone (nothing else has a pointer into them), and
    // the mapping lives exactly as long as the heap: both are fields of one `BenchHeap`, the
    // heap dropped first.
    let heap = unsafe { Heap::new(memory.as_mut_ptr(), memory.len()) };
    Some(BenchHeap {
        heap,
        _pages: pages,
    })
}

/// What [`destroy_bench`] measured, in TSC cycles.
#[derive(Debug, Clone, Copy)]
pub struct DestroyReport {
    /// Objects in `kfree_rcu` flight when the cache was destroyed.
    pub objects: usize,
    /// `kmem_cache_destroy` that hands the rest to a work item (Sheaf's, the RFC's).
    pub asynchronous: u64,
    /// `kvfree_rcu_barrier` then `kmem_cache_destroy` (what Linux 6.12 merged instead).
    pub synchronous: u64,
}

/// Times `kmem_cache_destroy` of a cache with `objects` objects in `kfree_rcu` flight: the
/// asynchronous destroy, against a synchronous `kvfree_rcu_barrier` inside the destroy. `None`
/// when out of memory.
pub fn destroy_bench(objects: usize) -> Option<DestroyReport> {
    use slab::{KmemCacheArgs, SlabFlags};
    let mut cycles = [0u64; 2];
    for (i, sync) in [false, true].into_iter().enumerate() {
        let cache = slab()
            .kmem_cache_create(
                "destroybench",
                64,
                KmemCacheArgs::default(),
                SlabFlags::SLAB_NO_MERGE,
            )
            .ok()?;
        for _ in 0..objects {
            let o = cache.alloc(Gfp::KERNEL)?;
            // SAFETY: just allocated, not used afterwards.
            unsafe { cache.free_rcu(o) };
        }
        let start = crate::time::rdtsc();
        if sync {
            slab().kvfree_rcu_barrier();
        }
        // SAFETY: nobody uses the cache afterwards.
        let destroyed = unsafe { slab().kmem_cache_destroy(cache) };
        cycles[i] = crate::time::rdtsc() - start;
        destroyed.ok()?;
        // Let the asynchronous one finish before the next round (not timed).
        while !slab().destroy_pending().is_empty() {
            crate::sched::yield_now();
        }
    }
    Some(DestroyReport {
        objects,
        asynchronous: cycles[0],
        synchronous: cycles[1],
    })
}
