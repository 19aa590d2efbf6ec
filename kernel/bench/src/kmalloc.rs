//! Benchmarks of kmalloc on the real machine: against `linked_list_allocator` on the same
//! workload, and the fast path alone, in TSC cycles (the shell's `slabbench`).

use alloc::vec::Vec;
use linked_list_allocator::Heap;
use slab::Gfp;

use crate::BenchError;
use kcore::memory::PAGE_SIZE;
use kcore::memory::kmalloc::{slab, with_reserve};
use kcore::memory::vmap::KernelMapping;
use kcore::rand::Rng;
use kcore::sync::SpinLock;

/// TSC cycles per kmalloc(64)+kfree pair on the sheaf fast path (the same object every time).
pub fn fastpath_pair_cycles(pairs: u64) -> Result<u64, BenchError> {
    let start = kcore::time::rdtsc();
    for _ in 0..pairs {
        let p = slab()
            .kmalloc(64, Gfp::KERNEL)
            .ok_or(BenchError::OutOfMemory)?;
        // SAFETY: just allocated, not used again.
        let _ = unsafe { slab().kfree(core::hint::black_box(p.as_ptr())) };
    }
    Ok((kcore::time::rdtsc() - start) / pairs.max(1))
}

/// Instructions of the fast paths in the kernel build, counted by single-stepping
/// ([`kcore::arch::step::count_instructions`]): the counterpart of the host build's
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
    s: &slab::SlabAllocator<kcore::memory::kmalloc::KernelPlatform>,
    size: usize,
) {
    if let Some(o) = s.kmalloc(size, Gfp::KERNEL) {
        // SAFETY: from kmalloc, not used afterwards.
        let _ = unsafe { s.kfree(o.as_ptr()) };
    }
}

/// One allocation and one free through a cache (as the host's `count_fastpath` has it).
#[inline(never)]
fn alloc_free_pair(c: &slab::KmemCache<kcore::memory::kmalloc::KernelPlatform>) {
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated from `c`, not used afterwards.
        let _ = unsafe { c.free(o) };
    }
}

/// Counts the instructions of kmalloc(64), kfree, and a cache's alloc and free, on warm
/// sheaves. `None` if memory is out (whatever was allocated is given back).
pub fn fastpath_instructions() -> Option<FastpathInstructions> {
    use kcore::arch::step::count_instructions;
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
    // The cache's structures may come from the reserve: `kmem_cache_create` allocates them
    // infallibly.
    let cache = with_reserve(|| {
        s.kmem_cache_create("fastpath-count", 64, args, slab::SlabFlags::SLAB_NO_MERGE)
    })
    .ok()?;
    let counts = cache_instructions(&cache);
    // SAFETY: every object is back (`cache_instructions` frees what it allocates); nothing
    // else uses the cache.
    let _ = with_reserve(|| unsafe { s.kmem_cache_destroy(cache) });
    let (cache_alloc, cache_free, cache_pair) = counts?;
    Some(FastpathInstructions {
        kmalloc,
        kfree,
        cache_alloc,
        cache_free,
        kmalloc_pair,
        cache_pair,
    })
}

/// The instructions of `cache`'s alloc, free, and a pair function, on warm sheaves; every
/// object allocated is freed. `None` if memory is out.
fn cache_instructions(
    cache: &slab::KmemCache<kcore::memory::kmalloc::KernelPlatform>,
) -> Option<(u64, u64, u64)> {
    use kcore::arch::step::count_instructions;
    let warm = cache.alloc(Gfp::KERNEL)?;
    // SAFETY: ours.
    let _ = unsafe { cache.free(warm) };
    let mut obj = None;
    let alloc = count_instructions(|| obj = cache.alloc(Gfp::KERNEL));
    let obj = obj?;
    let free = count_instructions(|| {
        // SAFETY: allocated above, not used again.
        let _ = unsafe { cache.free(obj) };
    });
    let pair = count_instructions(|| alloc_free_pair(cache));
    Some((alloc, free, pair))
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
/// with kmalloc and with a `linked_list_allocator` heap, in the same run on this CPU. On an
/// error (memory out, Ctrl-C) every object is freed and the benchmark heap given back.
pub fn bench(live: usize, ops: usize) -> Result<BenchReport, BenchError> {
    let heap = BenchHeap::new().ok_or(BenchError::OutOfMemory)?;
    let mut objs: Vec<(usize, usize)> = Vec::new();
    objs.try_reserve_exact(live)
        .map_err(|_| BenchError::OutOfMemory)?;
    let mut results = [0u64; 2];
    for (which, result) in results.iter_mut().enumerate() {
        let kmalloc = which == 0;
        let run = replace_objects(&heap, kmalloc, &mut objs, live, ops);
        for (ptr, size) in objs.drain(..) {
            // SAFETY: `objs` holds what `alloc_object` gave out in this run, each once.
            unsafe { free_object(&heap, kmalloc, ptr, size) };
        }
        if run.is_err() {
            crate::shrink_kmalloc_caches(crate::KMALLOC_SIZES);
        }
        *result = run?;
    }
    drop(heap);
    // The 10,000 objects' slabs, empty now, go back to the page allocator.
    crate::shrink_kmalloc_caches(crate::KMALLOC_SIZES);
    Ok(BenchReport {
        live,
        ops,
        kmalloc_cycles: results[0],
        linked_list_cycles: results[1],
    })
}

/// One run of [`bench`] with kmalloc or the heap: fills `objs` (whose capacity is `live`) and
/// times `ops` replacements; the caller frees what `objs` holds afterwards, whatever happens.
fn replace_objects(
    heap: &BenchHeap,
    kmalloc: bool,
    objs: &mut Vec<(usize, usize)>,
    live: usize,
    ops: usize,
) -> Result<u64, BenchError> {
    let mut rng = Rng::new(42);
    // Sizes small enough that both allocators hold `live` objects in the benchmark heap.
    let max = (BENCH_HEAP_SIZE / 2 / live.max(1)).clamp(16, 2048);
    for _ in 0..live {
        let size = rng.range(8, max);
        objs.push((alloc_object(heap, kmalloc, size)?, size));
    }
    let start = kcore::time::rdtsc();
    for op in 0..ops {
        if op % 1024 == 0 && kcore::console::interrupted() {
            return Err(BenchError::Interrupted);
        }
        let i = rng.range(0, live - 1);
        let (ptr, size) = objs[i];
        // SAFETY: from `alloc_object` in this run; its slot is refilled (or dropped) below.
        unsafe { free_object(heap, kmalloc, ptr, size) };
        let size = rng.range(8, max);
        match alloc_object(heap, kmalloc, size) {
            Ok(p) => objs[i] = (p, size),
            Err(e) => {
                // The slot's object is gone: keep the others for the caller to free.
                objs.swap_remove(i);
                return Err(e);
            }
        }
    }
    Ok((kcore::time::rdtsc() - start) / ops.max(1) as u64)
}

/// An object of `size` bytes from kmalloc or the benchmark heap.
fn alloc_object(heap: &BenchHeap, kmalloc: bool, size: usize) -> Result<usize, BenchError> {
    use core::alloc::Layout;
    let p = if kmalloc {
        slab()
            .kmalloc(size, Gfp::KERNEL)
            .map(|p| p.as_ptr() as usize)
    } else {
        Layout::from_size_align(size, 8)
            .ok()
            .and_then(|l| heap.heap.lock().allocate_first_fit(l).ok())
            .map(|p| p.as_ptr() as usize)
    };
    p.ok_or(BenchError::OutOfMemory)
}

/// Frees an object [`alloc_object`] gave out with the same `kmalloc` and `size`.
///
/// # Safety
/// `ptr` came from [`alloc_object`] with this `heap`, `kmalloc` and `size`, is freed once and
/// not used afterwards.
unsafe fn free_object(heap: &BenchHeap, kmalloc: bool, ptr: usize, size: usize) {
    use core::alloc::Layout;
    if kmalloc {
        // SAFETY: allocated by kmalloc in `alloc_object` (caller contract), not used again.
        let _ = unsafe { slab().kfree(ptr as *mut u8) };
    } else if let (Some(p), Ok(layout)) = (
        core::ptr::NonNull::new(ptr as *mut u8),
        Layout::from_size_align(size, 8),
    ) {
        // SAFETY: allocated from this heap with this layout in `alloc_object` (caller
        // contract).
        unsafe { heap.heap.lock().deallocate(p, layout) };
    }
}

/// Size of the benchmark heap.
pub const BENCH_HEAP_SIZE: usize = 24 * 1024 * 1024;

/// A `linked_list_allocator` heap over [`BENCH_HEAP_SIZE`] bytes, for benchmarks that compare
/// it with kmalloc: over fresh pages of its own (a [`KernelMapping`]), which are unmapped and
/// given back when it is dropped (a benchmark keeps no memory). Any number may exist at once,
/// each over its own pages.
pub struct BenchHeap {
    /// Declared first, so dropped before the pages it manages.
    heap: SpinLock<Heap>,
    _pages: KernelMapping,
}

impl BenchHeap {
    /// Maps the pages and makes the heap; `None` when memory is short (nothing is kept).
    pub fn new() -> Option<Self> {
        let mut pages = KernelMapping::new(BENCH_HEAP_SIZE / PAGE_SIZE).ok()?;
        let memory = pages.as_mut_slice()?;
        // SAFETY: the pages are the mapping's alone (nothing else has a pointer into them), and
        // the mapping lives exactly as long as the heap: both are fields of one `BenchHeap`,
        // the heap dropped first.
        let heap = unsafe { Heap::new(memory.as_mut_ptr(), memory.len()) };
        Some(Self {
            heap: SpinLock::new(heap),
            _pages: pages,
        })
    }
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
/// asynchronous destroy, against a synchronous `kvfree_rcu_barrier` inside the destroy. On an
/// error (memory out, Ctrl-C) the cache is destroyed all the same, its objects in flight
/// included.
pub fn destroy_bench(objects: usize) -> Result<DestroyReport, BenchError> {
    use slab::{KmemCacheArgs, SlabFlags};
    let mut cycles = [0u64; 2];
    for (i, sync) in [false, true].into_iter().enumerate() {
        // The cache's structures may come from the reserve: `kmem_cache_create` allocates
        // them infallibly (so does `kvfree_rcu_barrier` its list of caches).
        let cache = with_reserve(|| {
            slab().kmem_cache_create(
                "destroybench",
                64,
                KmemCacheArgs::default(),
                SlabFlags::SLAB_NO_MERGE,
            )
        })
        .map_err(|_| BenchError::OutOfMemory)?;
        let mut filled = Ok(());
        for n in 0..objects {
            if n % 1024 == 0 && kcore::console::interrupted() {
                filled = Err(BenchError::Interrupted);
                break;
            }
            let Some(o) = cache.alloc(Gfp::KERNEL) else {
                filled = Err(BenchError::OutOfMemory);
                break;
            };
            // SAFETY: just allocated, not used afterwards.
            unsafe { cache.free_rcu(o) };
        }
        let start = kcore::time::rdtsc();
        if sync && filled.is_ok() {
            with_reserve(|| slab().kvfree_rcu_barrier());
        }
        // SAFETY: nobody uses the cache afterwards; every object was freed (with `kfree_rcu`).
        let destroyed = with_reserve(|| unsafe { slab().kmem_cache_destroy(cache) });
        cycles[i] = kcore::time::rdtsc() - start;
        // Let the asynchronous one finish before the next round (not timed).
        while slab().nr_destroy_pending() != 0 {
            kcore::sched::yield_now();
        }
        filled?;
        // Every object was freed: the destroy cannot find one left.
        destroyed.map_err(|_| BenchError::OutOfMemory)?;
    }
    Ok(DestroyReport {
        objects,
        asynchronous: cycles[0],
        synchronous: cycles[1],
    })
}
