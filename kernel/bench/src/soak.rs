//! The soak of the shell's workloads (`destroybench` and `kmalloc-test`): every frame they take
//! comes back, round after round, so a leak of one frame per round fails it.

use kcore::memory::kmalloc::slab;
use slab::{Gfp, KmemCacheArgs, SlabFlags};

/// Rounds of [`create_fill_kfree_rcu_destroy_and_storm_soak_gives_every_frame_back`]: a leak of
/// one frame per round is this many frames, well above [`SOAK_SLACK`].
const SOAK_ROUNDS: u64 = 40;
/// Frames the soak may end above its baseline (allocator state that settles differently from
/// one reading to the next: a slab kept as a node's minimum partial, a sheaf in a barn).
const SOAK_SLACK: u64 = 8;

/// One round of the soak, as `destroybench` does it: two caches created, filled, every object
/// freed with `kfree_rcu` (the `rcu_free` sheaves, full ones handed to RCU at once); the first
/// destroyed while they are in flight (the asynchronous destroy, finished by its work item),
/// the second after `kvfree_rcu_barrier` (the destroy's first try finds it empty and frees it
/// at once); then one round of the `kmalloc-test` storm on every CPU.
fn soak_round(objects: usize) {
    for barrier in [false, true] {
        let handle = slab()
            .kmem_cache_create(
                "ktest-soak",
                64,
                KmemCacheArgs::default(),
                SlabFlags::SLAB_NO_MERGE,
            )
            .expect("cache");
        for _ in 0..objects {
            let o = handle.alloc(Gfp::KERNEL).expect("memory");
            // SAFETY: just allocated, not used afterwards.
            unsafe { handle.free_rcu(o) };
        }
        if barrier {
            slab().kvfree_rcu_barrier();
        }
        // SAFETY: nobody uses the cache afterwards.
        unsafe { slab().kmem_cache_destroy(handle) }.expect("returns at once");
    }
    crate::storm::storm(1).expect("the storm round");
}

/// Frames in use once everything has settled: no destroy pending, every RCU callback run,
/// every cache shrunk (sheaves flushed on every CPU, empty slabs freed); with the frames of
/// the listed caches' slabs, and the frames mapped for good: kernel stacks (a freed stack
/// stays mapped for the next thread, so a worker the pool adds meanwhile keeps 16 frames) and
/// slab descriptors (a frame used for a slab for the first time may map one).
fn settled_frames() -> (u64, u64, u64) {
    kcore::selftest::quiesce();
    slab().kvfree_rcu_barrier();
    kcore::selftest::quiesce();
    for (cache, _) in slab().caches() {
        cache.shrink();
    }
    kcore::sync::rcu::rcu_barrier();
    for (cache, _) in slab().caches() {
        cache.shrink();
    }
    let slab_frames = slab()
        .caches()
        .iter()
        .map(|(c, _)| (c.slabinfo().num_slabs << c.order()) as u64)
        .sum();
    let stack_frames =
        kcore::memory::stack::slots_mapped() * kcore::memory::stack::STACK_SIZE / 4096;
    // Descriptor frames are mapped for good, like stacks: once per 64 frames ever used.
    let meta_frames = kcore::memory::kmalloc::slab_meta_frames() as u64;
    (
        kcore::memory::page_alloc::stats().used,
        slab_frames,
        stack_frames + meta_frames,
    )
}

#[kcore::ktest]
fn create_fill_kfree_rcu_destroy_and_storm_soak_gives_every_frame_back() {
    let start = kcore::time::uptime_us();
    // Warm-up: the storm's threads, the destroy's worker and the kmalloc caches' slabs exist.
    for _ in 0..3 {
        soak_round(500);
    }
    let (used, slab_frames, stacks) = settled_frames();
    for _ in 0..SOAK_ROUNDS {
        soak_round(500);
    }
    let (used_after, slab_after, stacks_after) = settled_frames();
    let other = used - slab_frames - stacks;
    let other_after = used_after - slab_after - stacks_after;
    assert!(
        slab_after <= slab_frames + SOAK_SLACK,
        "slab frames {slab_frames} -> {slab_after} over {SOAK_ROUNDS} rounds"
    );
    assert!(
        other_after <= other + SOAK_SLACK,
        "frames outside the listed caches' slabs, stacks and descriptors: {other} -> {other_after} over \
         {SOAK_ROUNDS} rounds (in use {used} -> {used_after})"
    );
    log::info!(
        "soak: {SOAK_ROUNDS} rounds in {} ms; frames in use {used} -> {used_after}, slabs \
         {slab_frames} -> {slab_after}, stacks and descriptors {stacks} -> {stacks_after}",
        (kcore::time::uptime_us() - start) / 1000
    );
}
