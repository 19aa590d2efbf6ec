//! On-target tests of the slab allocator on real CPUs and pages: what the host tests of the
//! `slab` crate cannot show (interrupt handlers, real per-CPU pinning, RCU readers on other
//! CPUs, the kernel's reports).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use slab::Gfp;

use crate::memory::kmalloc::slab;
use crate::memory::page_alloc;

/// kmalloc of every size class up to a page, on every CPU at once, hands out distinct objects
/// that keep what was written to them (what the `kmalloc-test` storm checks, in small).
fn kmalloc_works_on_every_cpu() {
    const SIZES: [usize; 9] = [8, 16, 64, 96, 192, 256, 1024, 2048, 4096];
    crate::sched::run_on_each_cpu("ktest-kmalloc", &|| {
        let cpu = crate::cpu::current_id() as u8;
        let objs: Vec<_> = SIZES
            .iter()
            .flat_map(|&size| (0..16).map(move |_| size))
            .map(|size| (slab().kmalloc(size, Gfp::KERNEL).expect("memory"), size))
            .collect();
        for &(o, size) in &objs {
            // SAFETY: a fresh object of at least `size` bytes, ours.
            unsafe { o.as_ptr().write_bytes(cpu, size) };
        }
        for (o, size) in objs {
            // SAFETY: as above; read back, then freed once.
            let bytes = unsafe { core::slice::from_raw_parts(o.as_ptr(), size) };
            assert!(
                bytes.iter().all(|&b| b == cpu),
                "an object was shared or overwritten"
            );
            // SAFETY: allocated above, not used afterwards.
            unsafe { slab().kfree(o.as_ptr()) }.expect("a good free");
        }
    })
    .expect("a thread on every CPU");
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
        (r.cache.as_str(), r.object, r.kind),
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
        reports.last().map(|r| (r.object, r.kind.clone())),
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
            owner: "ktest-other".into()
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
    kmalloc_works_on_every_cpu();
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
                assert_eq!((name.as_str(), objects), ("ktest-debug", isolated));
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

/// Full sheaves parked in the barns of `cache`, summed over nodes.
fn barn_full_sheaves(cache: &slab::KmemCache<crate::memory::kmalloc::KernelPlatform>) -> usize {
    (0..crate::memory::numa::node_count())
        .map(|node| cache.barn_counts(node).0)
        .sum()
}

/// Fills the barn of `cache`'s node with full sheaves: allocates and frees enough objects on
/// one CPU that its main and spare sheaves fill and the frees trade full sheaves at the barn.
fn park_in_the_barn(cache: &'static slab::KmemCache<crate::memory::kmalloc::KernelPlatform>) {
    let n = cache.sheaf_capacity() * (slab::barn::MAX_FULL_SHEAVES + 4);
    crate::sched::spawn_on(0, "ktest-park", move || {
        let objs: Vec<_> = (0..n)
            .map(|_| cache.alloc(Gfp::KERNEL).expect("memory"))
            .collect();
        for o in objs {
            // SAFETY: just allocated from `cache`, not used afterwards.
            unsafe { cache.free(o) }.expect("free");
        }
    })
    .expect("thread")
    .join();
}

/// The memory-pressure path (`kmalloc::reclaim_for_pressure`, docs/slab.md): called directly,
/// it empties the barns and gives their slabs' pages back; provoked by a page allocation that
/// fails (memory exhausted), it does the same before the allocation fails, so that the pages
/// the barn parked are handed out rather than kept.
#[crate::ktest]
fn memory_pressure_empties_the_barns_and_gives_their_pages_back() {
    use crate::memory::kmalloc::{pressure_stats, reclaim_for_pressure};
    use slab::{KmemCacheArgs, SlabFlags};
    let cache = slab()
        .kmem_cache_create(
            "ktest-pressure",
            2048,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    // SAFETY: every thread using this reference is joined before the cache is destroyed.
    let shared = unsafe { cache.as_ref_unchecked() };
    let cap = cache.sheaf_capacity();
    assert!(cap > 0, "the cache has sheaves");

    // Called directly.
    park_in_the_barn(shared);
    let parked = barn_full_sheaves(&cache);
    assert!(parked >= 2, "full sheaves wait in the barn: {parked}");
    let slabs = cache.slabinfo().num_slabs;
    let used = page_alloc::stats().used;
    let freed = reclaim_for_pressure();
    assert_eq!(barn_full_sheaves(&cache), 0, "the barn was emptied");
    let after = cache.slabinfo();
    assert!(
        after.active_objs <= 2 * cap,
        "only CPU 0's main and spare sheaves keep objects: {after:?}"
    );
    // Each full sheaf held `cap` objects: at least that many objects' worth of slabs went.
    let per_slab = after.num_objs.max(1) / after.num_slabs.max(1);
    let min_slabs = (parked * cap) / per_slab.max(1) / 2;
    assert!(
        freed >= slabs - after.num_slabs && slabs - after.num_slabs >= min_slabs,
        "{freed} slabs freed ({slabs} -> {}), at least {min_slabs} expected",
        after.num_slabs
    );
    let back = used.saturating_sub(page_alloc::stats().used);
    log::info!(
        "pressure reclaim: {parked} full sheaves of {cap} in the barn, {slabs} -> {} slabs \
         ({freed} slabs freed by all caches), {back} pages back",
        after.num_slabs
    );
    assert!(
        back as usize >= min_slabs,
        "{back} pages came back to the page allocator"
    );

    // Provoked: exhausting memory makes the page allocator call it before it fails.
    park_in_the_barn(shared);
    let parked = barn_full_sheaves(&cache);
    assert!(parked >= 2, "full sheaves wait in the barn again: {parked}");
    let slabs = cache.slabinfo().num_slabs;
    let min_slabs = (parked * cap) / per_slab.max(1) / 2;
    let (reclaims, _) = pressure_stats();
    super::quiesce();
    let exhausted = super::exhaust();
    let barn_after = barn_full_sheaves(&cache);
    let slabs_after = cache.slabinfo().num_slabs;
    exhausted.give_back();
    log::info!(
        "pressure reclaim on exhaustion: {parked} full sheaves in the barn, {slabs} -> \
         {slabs_after} slabs, barn after: {barn_after}"
    );
    assert_eq!(
        barn_after, 0,
        "the pressure path emptied the barn before the page allocator failed"
    );
    assert!(
        pressure_stats().0 > reclaims,
        "the failing page allocation reclaimed"
    );
    assert!(
        slabs - slabs_after >= min_slabs,
        "the barn's slabs went ({slabs} -> {slabs_after}), at least {min_slabs} expected"
    );

    cache.shrink();
    // SAFETY: no object of the cache is live and nobody else uses it.
    unsafe { slab().kmem_cache_destroy(cache) }.expect("empty cache");
}

/// The per-CPU trylock of the fast paths (`cpu::slab_fast_path_enter`): while a fast path
/// holds this CPU's sheaves, an allocation on the CPU (an interrupt handler's, here the test
/// itself with interrupts off) is served from the slabs and leaves the sheaves as they were.
#[crate::ktest]
fn an_allocation_while_a_fast_path_holds_the_sheaves_leaves_them_alone() {
    use slab::{KmemCacheArgs, SlabFlags, Stat};
    let c = slab()
        .kmem_cache_create(
            "ktest-trylock",
            64,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache");
    let _irq = crate::sync::IrqSave::new();
    // The main sheaf's top object: what the next allocation here returns if nothing touches
    // the sheaf in between.
    let top = c.alloc(Gfp::ATOMIC).expect("memory");
    // SAFETY: ours.
    unsafe { c.free(top) }.expect("free");
    let fast = (c.stat(Stat::AllocFastpath), c.stat(Stat::FreeFastpath));
    // A fast path holds the sheaves (as a thread's would when the interrupt came).
    let slot = crate::cpu::slab_fast_path_enter();
    assert_ne!(slot, 0, "the sheaves were free");
    let objs: Vec<_> = (0..50)
        .map(|_| c.alloc(Gfp::ATOMIC).expect("memory"))
        .collect();
    assert!(!objs.contains(&top), "the sheaf's object stays where it is");
    for o in objs {
        // SAFETY: ours.
        unsafe { c.free(o) }.expect("free");
    }
    let k = slab().kmalloc(100, Gfp::ATOMIC).expect("memory");
    // SAFETY: ours.
    unsafe { slab().kfree(k.as_ptr()) }.expect("kfree");
    // SAFETY: the slot this context took above, on this CPU (interrupts are off), put back once.
    unsafe { crate::cpu::slab_fast_path_exit(slot) };
    assert_eq!(
        (c.stat(Stat::AllocFastpath), c.stat(Stat::FreeFastpath)),
        fast,
        "nothing used the held sheaves"
    );
    let again = c.alloc(Gfp::ATOMIC).expect("memory");
    assert_eq!(again, top, "the main sheaf is as the fast path left it");
    // SAFETY: ours.
    unsafe { c.free(again) }.expect("free");
    drop(_irq);
    // SAFETY: every object is back; nothing else uses the cache.
    unsafe { slab().kmem_cache_destroy(c) }.expect("destroy");
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
            crate::arch::ipi::smp_call_function(cpu, move || {
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
        let guard = crate::sync::rcu::read_lock();
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

#[crate::ktest]
fn typesafe_by_rcu_slabs_stay_allocated_and_intact_until_a_grace_period() {
    use crate::memory::{PAGE_SIZE, page_alloc, virt_to_phys};
    use core::ptr::NonNull;
    use slab::{KmemCacheArgs, SlabFlags};
    use x86_64::VirtAddr;

    const SIZE: usize = 512;
    // With consistency checks the cache has no sheaves: a free goes straight to its slab, and a
    // slab that becomes empty beyond `min_partial` is given back in the free itself. A shrink
    // or destroy could not run here: they wait for a thread on every CPU, and the read section
    // below may not sleep.
    let handle = slab()
        .kmem_cache_create(
            "ktest-typesafe",
            SIZE,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_TYPESAFE_BY_RCU | SlabFlags::SLAB_CONSISTENCY_CHECKS,
        )
        .expect("cache");
    // SAFETY: the cache is used only here, and destroyed at the end once every object is free.
    let cache = unsafe { handle.as_ref_unchecked() };
    let slab_size = cache.slab_size();
    let pages = slab_size / PAGE_SIZE;
    let nr_slabs = cache.min_partial() + 16;
    let objs: Vec<NonNull<u8>> = (0..nr_slabs * cache.objs_per_slab())
        .map(|_| cache.alloc(Gfp::KERNEL).expect("memory"))
        .collect();
    let pattern = |i: usize| (i % 251) as u8 + 1;
    for (i, o) in objs.iter().enumerate() {
        // SAFETY: our object of SIZE bytes.
        unsafe { o.as_ptr().write_bytes(pattern(i), SIZE) };
    }
    let base_of = |o: &NonNull<u8>| o.as_ptr() as usize & !(slab_size - 1);
    let phys = |addr: usize| virt_to_phys(VirtAddr::new(addr as u64)).expect("in the physical map");
    let mut bases: Vec<usize> = objs.iter().map(base_of).collect();
    bases.sort_unstable();
    bases.dedup();
    assert!(
        bases.iter().all(|&b| page_alloc::owner(phys(b)) != 0),
        "every slab is recorded as the cache's"
    );

    let (given_back, allocated, intact) = {
        let _reader = crate::sync::rcu::read_lock();
        for o in &objs {
            // SAFETY: ours, freed once; only this (reading) code touches it afterwards, inside
            // the read section, which is what SLAB_TYPESAFE_BY_RCU allows.
            unsafe { cache.free(*o) }.expect("a good free");
        }
        // The slabs handed back (their owner is cleared before their pages go to RCU); the
        // others are the empty ones the cache keeps.
        let given_back: Vec<usize> = bases
            .iter()
            .copied()
            .filter(|&b| page_alloc::owner(phys(b)) == 0)
            .collect();
        let allocated = given_back
            .iter()
            .filter(|&&b| (0..pages).all(|p| !page_alloc::frame_is_free(phys(b + p * PAGE_SIZE))))
            .count();
        let intact = objs
            .iter()
            .enumerate()
            .filter(|(_, o)| given_back.contains(&base_of(o)))
            .all(|(i, o)| {
                // SAFETY: a freed object of a SLAB_TYPESAFE_BY_RCU cache, read inside the read
                // section: its memory stays a slab's until the grace period (what this checks).
                let bytes = unsafe { core::slice::from_raw_parts(o.as_ptr(), SIZE) };
                bytes.iter().all(|&b| b == pattern(i))
            });
        (given_back, allocated, intact)
    };
    assert!(
        given_back.len() >= 8,
        "only {} of {} slabs were handed back",
        given_back.len(),
        bases.len()
    );
    assert_eq!(
        allocated,
        given_back.len(),
        "pages of a SLAB_TYPESAFE_BY_RCU slab went back to the page allocator inside a read section"
    );
    assert!(intact, "a freed object changed inside the read section");

    // After a grace period (and the callbacks it let run) the pages are free memory. Another
    // CPU may have taken some of them again since: most must be seen free.
    crate::sync::rcu::synchronize_rcu();
    crate::sync::rcu::rcu_barrier();
    let freed = given_back
        .iter()
        .filter(|&&b| page_alloc::frame_is_free(phys(b)))
        .count();
    assert!(
        freed * 4 >= given_back.len() * 3,
        "only {freed} of {} slabs given back are free after the grace period",
        given_back.len()
    );
    // SAFETY: every object is free, nobody else uses the cache.
    unsafe { slab().kmem_cache_destroy(handle) }.expect("an empty cache");
}
