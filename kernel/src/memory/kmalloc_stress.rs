//! Exercising kmalloc on the real machine: a checked alloc/free storm on every CPU, and a
//! benchmark against `linked_list_allocator`. Used by the shell (`kmalloc-test`, `slabbench`)
//! and by the on-target tests.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use slab::Gfp;

use super::kmalloc::slab;
use crate::sync::SpinLock;

/// A small deterministic random number generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value but 0 works; 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random value in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

/// A live object: where, how big, and the tag written into every byte.
#[derive(Clone, Copy)]
struct Obj {
    ptr: usize,
    size: usize,
    tag: u64,
}

// SAFETY: an `Obj` is exclusively owned by whoever holds it; the memory it names is not shared.
unsafe impl Send for Obj {}

fn fill(obj: &Obj) {
    // SAFETY: `obj` is a live kmalloc object of `size` bytes owned by the caller.
    let bytes = unsafe { core::slice::from_raw_parts_mut(obj.ptr as *mut u8, obj.size) };
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (obj.tag as u8) ^ (i as u8);
    }
    if obj.size >= 8 {
        bytes[..8].copy_from_slice(&obj.tag.to_le_bytes());
    }
}

fn check(obj: &Obj) -> Result<(), String> {
    // SAFETY: as in `fill`.
    let bytes = unsafe { core::slice::from_raw_parts(obj.ptr as *const u8, obj.size) };
    let head = obj.size.min(8);
    let tag_ok = obj.size < 8 || bytes[..8] == obj.tag.to_le_bytes();
    let body_ok = bytes[head..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (obj.tag as u8) ^ ((i + head) as u8));
    if tag_ok && body_ok {
        Ok(())
    } else {
        Err(alloc::format!(
            "object {:#x} ({} bytes, tag {}) was overwritten",
            obj.ptr,
            obj.size,
            obj.tag
        ))
    }
}

/// What a storm did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormReport {
    /// Objects allocated in all.
    pub allocs: u64,
    /// Objects freed on another CPU than the one that allocated them.
    pub cross_cpu_frees: u64,
}

/// Runs `rounds` rounds of mixed-size kmalloc/kfree on every online CPU at once. Every object
/// is filled with a tag and checked before it is freed: an object handed out twice or
/// corrupted is reported. About a quarter of the objects are passed to another CPU and freed
/// there.
pub fn storm(rounds: usize) -> Result<StormReport, String> {
    let cpus: Vec<usize> = crate::cpu::online().map(|c| c.id).collect();
    let mailboxes: Arc<Vec<SpinLock<Vec<Obj>>>> =
        Arc::new(cpus.iter().map(|_| SpinLock::new(Vec::new())).collect());
    let next_tag = Arc::new(AtomicU64::new(1));
    let cross = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(slot, &cpu)| {
            let (mailboxes, next_tag, cross) = (mailboxes.clone(), next_tag.clone(), cross.clone());
            let n = cpus.len();
            crate::sched::spawn_on(cpu, "kmalloc-storm", move || -> Result<u64, String> {
                let mut rng = Rng::new(0x5eaf + cpu as u64);
                let mut live: Vec<Obj> = Vec::with_capacity(256);
                let mut allocs = 0;
                for _ in 0..rounds {
                    for _ in 0..64 {
                        let size = if rng.range(0, 15) == 0 {
                            rng.range(2049, 16384)
                        } else {
                            rng.range(1, 2048)
                        };
                        let ptr = slab().kmalloc(size, Gfp::KERNEL).ok_or("kmalloc failed")?;
                        let obj = Obj {
                            ptr: ptr.as_ptr() as usize,
                            size,
                            tag: next_tag.fetch_add(1, Ordering::Relaxed),
                        };
                        fill(&obj);
                        live.push(obj);
                        allocs += 1;
                    }
                    // Free about half; pass a quarter of those to the next CPU.
                    while live.len() > 96 {
                        let obj = live.swap_remove(rng.range(0, live.len() - 1));
                        check(&obj)?;
                        if rng.range(0, 3) == 0 && n > 1 {
                            mailboxes[(slot + 1) % n].lock().push(obj);
                        } else {
                            // SAFETY: a live kmalloc object this thread owns.
                            unsafe { slab().kfree(obj.ptr as *mut u8) }
                                .map_err(|r| alloc::format!("{r}"))?;
                        }
                    }
                    let passed: Vec<Obj> = core::mem::take(&mut *mailboxes[slot].lock());
                    for obj in passed {
                        check(&obj)?;
                        // SAFETY: handed over by another CPU, which no longer touches it.
                        unsafe { slab().kfree(obj.ptr as *mut u8) }
                            .map_err(|r| alloc::format!("{r}"))?;
                        cross.fetch_add(1, Ordering::Relaxed);
                    }
                    for obj in &live {
                        check(obj)?;
                    }
                }
                for obj in live {
                    check(&obj)?;
                    // SAFETY: as above.
                    unsafe { slab().kfree(obj.ptr as *mut u8) }
                        .map_err(|r| alloc::format!("{r}"))?;
                }
                Ok(allocs)
            })
            .map_err(|e| alloc::format!("spawn: {e:?}"))
        })
        .collect::<Result<_, _>>()?;
    let mut allocs = 0;
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(n) => allocs += n,
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    // Objects still in mailboxes (sent after their receiver finished).
    for mailbox in mailboxes.iter() {
        for obj in core::mem::take(&mut *mailbox.lock()) {
            check(&obj)?;
            // SAFETY: nobody else holds these objects any more.
            unsafe { slab().kfree(obj.ptr as *mut u8) }.map_err(|r| alloc::format!("{r}"))?;
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(StormReport {
            allocs,
            cross_cpu_frees: cross.load(Ordering::Relaxed),
        }),
    }
}

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
/// with kmalloc and with a `linked_list_allocator` heap, in the same run on this CPU.
pub fn bench(live: usize, ops: usize) -> Option<BenchReport> {
    use core::alloc::Layout;
    let heap = SpinLock::new(super::heap::benchmark_heap()?);
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
                        .deallocate(core::ptr::NonNull::new(ptr as *mut u8)?, layout)
                };
            }
            Some(())
        };
        // Sizes small enough that both allocators hold `live` objects in the benchmark heap.
        let max = (super::heap::BENCH_HEAP_SIZE as usize / 2 / live).clamp(16, 2048);
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

#[crate::ktest]
fn kmalloc_storm_on_every_cpu_keeps_every_object_intact() {
    let report = storm(20).expect("no object handed out twice or corrupted");
    assert_eq!(report.allocs, 20 * 64 * crate::cpu::online().count() as u64);
    assert!(
        report.cross_cpu_frees > 0,
        "objects were freed on other CPUs"
    );
}

#[crate::ktest]
fn debug_detections_are_reported_and_survived() {
    use slab::{KmemCacheArgs, SlabErrorKind, SlabFlags};
    let flags = SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON | SlabFlags::SLAB_STORE_USER;
    let cache = slab()
        .kmem_cache_create("ktest-debug", 40, KmemCacheArgs::default(), flags)
        .expect("cache");
    let other = slab()
        .kmem_cache_create("ktest-other", 40, KmemCacheArgs::default(), flags)
        .expect("cache");
    let still_works = |bad: usize| {
        let objs: Vec<_> = (0..100)
            .map(|_| cache.alloc(Gfp::KERNEL).expect("memory"))
            .collect();
        assert!(
            objs.iter().all(|o| o.as_ptr() as usize != bad),
            "a bad object is never handed out again"
        );
        let mut addresses: Vec<usize> = objs.iter().map(|o| o.as_ptr() as usize).collect();
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), objs.len(), "no object is handed out twice");
        for o in objs {
            // SAFETY: allocated just above, unused.
            unsafe { cache.free(o) }.expect("a good free");
        }
    };

    // Double free.
    let o = cache.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: ours, freed once...
    unsafe { cache.free(o) }.expect("first free");
    // SAFETY: ...and, on purpose, twice.
    let r = unsafe { cache.free(o) }.expect_err("double free detected");
    assert_eq!(
        (r.cache, r.object, r.kind),
        (
            "ktest-debug",
            o.as_ptr() as usize,
            SlabErrorKind::DoubleFree
        )
    );
    // The first free was good, so the object may be reused, but only once.
    still_works(0);

    // Writing past the end: the red zone.
    let o = cache.alloc(Gfp::KERNEL).expect("memory");
    let red_zoned = o.as_ptr() as usize;
    // SAFETY: deliberately one byte past the 40-byte object, into its red zone.
    unsafe { o.as_ptr().add(40).write(0) };
    // SAFETY: our object; the corruption is detected, not followed.
    let r = unsafe { cache.free(o) }.expect_err("red zone detected");
    assert_eq!(r.kind, SlabErrorKind::RedzoneOverwritten { offset: 40 });
    still_works(o.as_ptr() as usize);

    // Use after free: the poison is checked when objects are handed out again.
    let o = cache.alloc(Gfp::KERNEL).expect("memory");
    let poisoned = o.as_ptr() as usize;
    // SAFETY: ours.
    unsafe { cache.free(o) }.expect("free");
    // SAFETY: deliberately writing to a freed object (its memory stays mapped in the slab).
    unsafe { o.as_ptr().add(8).write(0x42) };
    let (reports_before, _) = cache.reports();
    let objs: Vec<_> = (0..200)
        .map(|_| cache.alloc(Gfp::KERNEL).expect("memory"))
        .collect();
    let (reports, _) = cache.reports();
    assert!(
        reports.len() > reports_before.len(),
        "the use after free was reported"
    );
    assert_eq!(
        reports.last().map(|r| (r.object, r.kind)),
        Some((
            o.as_ptr() as usize,
            SlabErrorKind::PoisonOverwritten { offset: 8 }
        ))
    );
    assert!(
        objs.iter().all(|p| *p != o),
        "the damaged object is isolated"
    );
    for p in objs {
        // SAFETY: allocated just above.
        unsafe { cache.free(p) }.expect("free");
    }

    // Pointers that are not objects of this cache.
    let o = cache.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: an interior pointer is refused without touching the object.
    let r = unsafe {
        cache.free(core::ptr::NonNull::new(o.as_ptr().wrapping_add(4)).expect("non-null"))
    }
    .expect_err("refused");
    assert_eq!(r.kind, SlabErrorKind::NotObjectBoundary);
    let foreign = other.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: an object of another cache is refused (and left alone).
    let r = unsafe { cache.free(foreign) }.expect_err("refused");
    assert_eq!(
        r.kind,
        SlabErrorKind::WrongCache {
            owner: "ktest-other"
        }
    );
    let stack_value = 0u64;
    // SAFETY: a pointer that is no slab object at all is refused by kfree.
    let r = unsafe { slab().kfree(core::ptr::from_ref(&stack_value).cast_mut().cast()) }
        .expect_err("refused");
    assert_eq!(r.kind, SlabErrorKind::NotSlabPage);
    // SAFETY: the real owners free them.
    unsafe {
        cache.free(o).expect("free");
        other.free(foreign).expect("free");
    }
    // The allocator is fine afterwards, and the caches can go.
    still_works(0);
    storm(2).expect("kmalloc still works");
    // SAFETY: no object of either cache is live any more; the two damaged objects were
    // isolated (never freed, never reused), so destroy names exactly them and keeps the cache.
    unsafe {
        match slab().kmem_cache_destroy(cache) {
            Err(slab::DestroyError::ObjectsRemaining {
                name, mut objects, ..
            }) => {
                objects.sort_unstable();
                let mut isolated = alloc::vec![red_zoned, poisoned];
                isolated.sort_unstable();
                assert_eq!((name, objects), ("ktest-debug", isolated));
            }
            other => panic!("destroy after isolating two objects returned {other:?}"),
        }
        slab().kmem_cache_destroy(other).expect("empty cache");
    }
}

#[crate::ktest]
fn destroy_reports_leaked_objects_by_name_and_keeps_them_valid() {
    use slab::{DestroyError, KmemCacheArgs, SlabFlags};
    let cache = slab()
        .kmem_cache_create(
            "ktest-leaky",
            100,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    let leaked: Vec<_> = (0..3)
        .map(|_| cache.alloc(Gfp::KERNEL).expect("memory"))
        .collect();
    for p in &leaked {
        // SAFETY: live objects of 100 bytes.
        unsafe { p.as_ptr().write_bytes(0x77, 100) };
    }
    // SAFETY: the cache is not used by anyone else; it is kept alive because objects remain.
    match unsafe { slab().kmem_cache_destroy(cache) } {
        Err(DestroyError::ObjectsRemaining {
            name, mut objects, ..
        }) => {
            assert_eq!(name, "ktest-leaky");
            let mut expected: Vec<usize> = leaked.iter().map(|p| p.as_ptr() as usize).collect();
            objects.sort_unstable();
            expected.sort_unstable();
            assert_eq!(objects, expected, "every leaked object is named");
        }
        other => panic!("destroy of a cache with live objects returned {other:?}"),
    }
    assert!(
        slab().find_cache("ktest-leaky").is_none(),
        "the name is gone from the list"
    );
    for p in &leaked {
        // SAFETY: the cache was kept alive, so the objects are still valid memory.
        let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), 100) };
        assert!(
            bytes.iter().all(|&b| b == 0x77),
            "leaked objects keep their contents"
        );
    }
}

#[crate::ktest]
fn out_of_memory_is_an_error_and_the_kernel_goes_on() {
    // Large kmallocs come straight from the page allocator: take all of it.
    let mut blocks = Vec::new();
    while let Some(p) = slab().kmalloc(4 << 20, Gfp::KERNEL) {
        blocks.push(p);
    }
    assert!(!blocks.is_empty());
    assert!(
        slab().kmalloc(4 << 20, Gfp::KERNEL).is_none(),
        "out of memory is None, not a panic"
    );
    for p in blocks {
        // SAFETY: allocated above, unused.
        unsafe { slab().kfree(p.as_ptr()) }.expect("free");
    }
    let p = slab()
        .kmalloc(4 << 20, Gfp::KERNEL)
        .expect("memory is back");
    // SAFETY: just allocated.
    unsafe { slab().kfree(p.as_ptr()) }.expect("free");
}

#[crate::ktest]
fn shrink_flushes_the_sheaves_of_every_cpu() {
    use slab::{KmemCacheArgs, SlabFlags};
    let cache = slab()
        .kmem_cache_create(
            "ktest-shrink",
            64,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    let cpus: Vec<usize> = crate::cpu::online().map(|c| c.id).collect();
    assert!(cpus.len() >= 2, "the test needs several CPUs");
    // SAFETY: every thread using this reference is joined before the cache is destroyed.
    let shared = unsafe { cache.as_ref_unchecked() };
    // Each CPU allocates and frees a few objects: they stay in that CPU's main sheaf, so
    // their slabs are still in use as far as the slabs know.
    for &cpu in &cpus {
        crate::sched::spawn_on(cpu, "ktest-shrink", move || {
            let objs: Vec<_> = (0..8)
                .map(|_| shared.alloc(Gfp::KERNEL).expect("memory"))
                .collect();
            for o in objs {
                // SAFETY: just allocated from `cache`, not used afterwards.
                unsafe { shared.free(o) }.expect("free");
            }
        })
        .expect("thread")
        .join();
    }
    // (A refill fills the sheaf, so each CPU holds a whole sheaf of objects, not just 8.)
    let before = cache.slabinfo();
    assert!(
        before.active_objs >= 8 * cpus.len(),
        "every CPU's objects wait in its sheaves: {before:?}"
    );
    let freed = cache.shrink();
    let after = cache.slabinfo();
    assert_eq!(
        (after.active_objs, after.num_slabs),
        (0, 0),
        "shrink emptied the sheaves of all {} CPUs and freed every slab ({freed} freed)",
        cpus.len()
    );
    // SAFETY: no object of the cache is live and nobody else uses it.
    unsafe { slab().kmem_cache_destroy(cache) }.expect("empty cache");
}

#[crate::ktest]
fn atomic_kmalloc_in_interrupt_handlers_while_threads_allocate() {
    use core::sync::atomic::AtomicBool;
    /// One size class for everybody, so that handlers and threads share sheaves and slabs.
    const SIZE: usize = 64;
    /// Objects a thread holds at once: more than a sheaf, so its loop runs through the slow
    /// paths (barn, slab lists and their locks) as often as through the fast ones.
    const BATCH: usize = 150;
    /// Interrupts sent to each of those CPUs (without interrupts off in the allocator's
    /// per-CPU sections, the first few dozen already deadlock or corrupt a sheaf).
    const ROUNDS: u64 = 300;
    let others: Vec<usize> = crate::cpu::other_online_ids().collect();
    assert!(!others.is_empty(), "the test needs several CPUs");
    let stop = Arc::new(AtomicBool::new(false));
    // On every other CPU a thread allocates a batch, tags each object, checks the tags and
    // frees the batch, without pause: the interrupts below land inside its kmalloc and kfree.
    let threads: Vec<_> = others
        .iter()
        .map(|&cpu| {
            let stop = stop.clone();
            crate::sched::spawn_on(cpu, "ktest-churn", move || -> Result<u64, String> {
                let mut batch = Vec::with_capacity(BATCH);
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..BATCH {
                        let p = slab().kmalloc(SIZE, Gfp::KERNEL).ok_or("out of memory")?;
                        let tag = (cpu << 32 | i) as u64;
                        // SAFETY: a fresh object of `SIZE` bytes.
                        unsafe { p.as_ptr().cast::<u64>().write(tag) };
                        batch.push((p, tag));
                    }
                    for (p, tag) in batch.drain(..) {
                        // SAFETY: ours since the loop above.
                        if unsafe { p.as_ptr().cast::<u64>().read() } != tag {
                            return Err(alloc::format!("object {p:p} handed out twice"));
                        }
                        // SAFETY: ours, not used afterwards.
                        unsafe { slab().kfree(p.as_ptr()) }.map_err(|e| alloc::format!("{e}"))?;
                    }
                    rounds += 1;
                }
                Ok(rounds)
            })
            .expect("thread")
        })
        .collect();
    // Interrupt handlers (IPI function calls) on those CPUs allocate with GFP_ATOMIC.
    let in_irq = Arc::new(AtomicU64::new(0));
    for round in 0..ROUNDS {
        for &cpu in &others {
            let in_irq = in_irq.clone();
            crate::arch::smp::smp_call_function(cpu, move || {
                let mut objs = [core::ptr::null_mut::<u64>(); 4];
                for o in &mut objs {
                    let p = slab()
                        .kmalloc(SIZE, Gfp::ATOMIC)
                        .expect("GFP_ATOMIC memory");
                    *o = p.as_ptr().cast();
                    // SAFETY: a fresh object of `SIZE` bytes.
                    unsafe { o.write(!round) };
                }
                for o in objs {
                    // SAFETY: ours since the loop above.
                    assert_eq!(unsafe { o.read() }, !round, "handler's object intact");
                    // SAFETY: ours, not used afterwards.
                    unsafe { slab().kfree(o.cast()) }.expect("kfree in an interrupt handler");
                }
                in_irq.fetch_add(1, Ordering::Relaxed);
            })
            .expect("online CPU");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let rounds = t
            .join()
            .expect("the interrupted threads' objects stay intact");
        assert!(rounds > 0, "each thread allocated while being interrupted");
    }
    assert_eq!(in_irq.load(Ordering::Relaxed), ROUNDS * others.len() as u64);
}

#[crate::ktest]
fn kfree_rcu_keeps_objects_intact_for_readers_on_other_cpus() {
    use core::sync::atomic::AtomicU32;
    use slab::{KmemCacheArgs, SlabFlags};
    const SIZE: usize = 128;
    let cache = slab()
        .kmem_cache_create(
            "ktest-rcu",
            SIZE,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    let other = crate::cpu::other_online_ids()
        .next()
        .expect("the test needs two CPUs");
    // Enough objects to fill several `rcu_free` sheaves, so that whole sheaves go to RCU.
    let n = 3 * cache.sheaf_capacity();
    let objs: Vec<usize> = (0..n)
        .map(|_| {
            let o = cache.alloc(Gfp::KERNEL).expect("memory");
            // SAFETY: a fresh object of `SIZE` bytes.
            unsafe { o.as_ptr().write_bytes(0x5c, SIZE) };
            o.as_ptr() as usize
        })
        .collect();
    // 0: not reading yet, 1: inside the read-side section, 2: left it.
    let phase = Arc::new(AtomicU32::new(0));
    let (p, seen) = (phase.clone(), objs.clone());
    let reader = crate::sched::spawn_on(other, "ktest-rcu-reader", move || {
        let guard = crate::rcu::read_lock();
        p.store(1, Ordering::SeqCst);
        // Keep checking for several ticks while the writer frees and allocates.
        let start = crate::time::uptime_us();
        while crate::time::uptime_us() - start < 40_000 {
            for &o in &seen {
                // SAFETY: freed only with kfree_rcu after we entered: still valid memory.
                let bytes = unsafe { core::slice::from_raw_parts(o as *const u8, SIZE) };
                assert!(
                    bytes.iter().all(|&b| b == 0x5c),
                    "object {o:#x} was reused during a read-side section"
                );
            }
        }
        p.store(2, Ordering::SeqCst);
        drop(guard);
    })
    .expect("thread");
    while phase.load(Ordering::SeqCst) == 0 {
        core::hint::spin_loop();
    }
    for &o in &objs {
        // SAFETY: ours; only the reader still looks at it, inside its read-side section.
        unsafe { cache.free_rcu(core::ptr::NonNull::new(o as *mut u8).expect("object")) };
    }
    // Allocate and scribble while the reader is inside: none of its objects may come back.
    let fresh: Vec<_> = (0..2 * n)
        .map(|_| {
            let f = cache.alloc(Gfp::KERNEL).expect("memory");
            // SAFETY: a fresh object of `SIZE` bytes.
            unsafe { f.as_ptr().write_bytes(0xee, SIZE) };
            f
        })
        .collect();
    assert_eq!(
        phase.load(Ordering::SeqCst),
        1,
        "the reader was inside all along"
    );
    for f in fresh {
        // SAFETY: ours.
        unsafe { cache.free(f) }.expect("free");
    }
    reader.join();
    // Destroy waits for the objects still in flight: none is left over.
    // SAFETY: nobody else uses the cache; every object was freed.
    unsafe { slab().kmem_cache_destroy(cache) }.expect("no object remains");
}
