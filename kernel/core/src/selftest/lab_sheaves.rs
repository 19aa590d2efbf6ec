//! The sheaves lab (docs/labs/02-sheaves.md): the per-CPU layer's exchanges, checked from
//! what a user of the cache can see: each CPU's main and spare sheaf
//! ([`slab::KmemCache::cpu_sheaves`]), the barn's sheaves and the statistics. `cargo lab
//! grade sheaves` runs these with its own pristine copy of this file.
//!
//! Each test uses a private cache (`SLAB_NO_MERGE`) from one kernel thread pinned to one CPU,
//! on a machine of one node, so every exchange happens on that CPU's sheaves and that node's
//! barn, and the numbers are exact.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use slab::{CpuSheaves, Gfp, KmemCache, KmemCacheArgs, SlabFlags, Stat};

use crate::memory::kmalloc::{KernelPlatform, slab};

type Cache = KmemCache<KernelPlatform>;

/// Runs `f` on a fresh private cache of 256-byte objects, in a kernel thread pinned to the
/// calling CPU; `f` frees what it allocates.
fn on_a_fresh_cache(name: &'static str, f: impl FnOnce(&Cache, usize) + Send + 'static) {
    crate::sched::spawn_on(crate::cpu::current_id(), "lab-sheaves", move || {
        let cache = slab()
            .kmem_cache_create(
                name,
                256,
                KmemCacheArgs::default(),
                SlabFlags::SLAB_NO_MERGE,
            )
            .expect("the lab's cache");
        assert_eq!(
            cache.nr_nodes(),
            1,
            "the lab's tests run on a machine of one node"
        );
        f(&cache, crate::cpu::current_id());
        // SAFETY: the cache is ours alone, and `f` freed every object it allocated.
        unsafe { slab().kmem_cache_destroy(cache) }.expect("every object was freed");
    })
    .expect("a thread for the test")
    .join();
}

/// This CPU's sheaves of `cache`.
fn mine(cache: &Cache, cpu: usize) -> CpuSheaves {
    let mut out = None;
    cache.cpu_sheaves(|c, s| {
        if c == cpu {
            out = Some(s);
        }
    });
    out.expect("the cache has sheaves")
}

/// The counters the tests compare, in one line for messages.
fn stats(cache: &Cache) -> String {
    let mut s = String::new();
    for stat in [
        Stat::AllocFastpath,
        Stat::AllocSlowpath,
        Stat::FreeFastpath,
        Stat::FreeSlowpath,
        Stat::BarnGet,
        Stat::BarnGetFail,
        Stat::BarnPut,
        Stat::BarnPutFail,
        Stat::SheafRefill,
        Stat::SheafFlush,
    ] {
        s += &format!(" {}={}", stat.name(), cache.stat(stat));
    }
    s
}

fn alloc_n(cache: &Cache, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| cache.alloc(Gfp::KERNEL).expect("memory").as_ptr() as usize)
        .collect()
}

fn free_n(cache: &Cache, objs: &mut Vec<usize>, n: usize) {
    for o in objs.drain(..n) {
        let o = core::ptr::NonNull::new(o as *mut u8).expect("an object");
        // SAFETY: an object of `cache` from `alloc_n`, freed once.
        unsafe { cache.free(o) }.expect("a good free");
    }
}

/// Where to look, for every message.
const WHERE: &str = "kernel/crates/slab/src/cache/sheaves.rs";

#[crate::ktest]
fn the_first_allocation_fills_main_and_the_next_ones_pop_it() {
    on_a_fresh_cache("lab-sheaves-refill", |cache, cpu| {
        let cap = cache.sheaf_capacity();
        let mut objs = alloc_n(cache, 1);
        let s = mine(cache, cpu);
        assert_eq!(
            s.main,
            cap - 1,
            "after the first allocation of a fresh cache, main should hold the rest of a sheaf \
             refilled from the slabs ({} objects): alloc_refill in {WHERE} (barn empty: refill \
             main from the slabs, then pop); stats:{}",
            cap - 1,
            stats(cache)
        );
        objs.extend(alloc_n(cache, cap - 1));
        assert_eq!(
            (cache.stat(Stat::AllocFastpath), mine(cache, cpu).main),
            (cap as u64 - 1, 0),
            "the next {} allocations should all be fast-path pops of main, leaving it empty; \
             stats:{}",
            cap - 1,
            stats(cache)
        );
        let n = objs.len();
        free_n(cache, &mut objs, n);
    });
}

#[crate::ktest]
fn a_full_main_becomes_the_spare() {
    on_a_fresh_cache("lab-sheaves-spare", |cache, cpu| {
        let cap = cache.sheaf_capacity();
        let mut objs = alloc_n(cache, 2 * cap);
        free_n(cache, &mut objs, cap);
        let s = mine(cache, cpu);
        assert_eq!(
            s.main,
            cap,
            "freeing {cap} objects should fill main; stats:{}",
            stats(cache)
        );
        free_n(cache, &mut objs, 1);
        let s = mine(cache, cpu);
        assert_eq!(
            (s.main, s.spare),
            (1, Some(cap)),
            "one more free with main full and no spare: main (full) should become the spare and \
             an empty sheaf main, holding the object: free_flush in {WHERE}; stats:{}",
            stats(cache)
        );
        let n = objs.len();
        free_n(cache, &mut objs, n);
    });
}

#[crate::ktest]
fn an_empty_main_swaps_with_a_non_empty_spare() {
    on_a_fresh_cache("lab-sheaves-swap", |cache, cpu| {
        let cap = cache.sheaf_capacity();
        let mut objs = alloc_n(cache, 2 * cap);
        free_n(cache, &mut objs, cap + 1);
        // main 1, spare full: two allocations empty main, then swap.
        let barn_get = cache.stat(Stat::BarnGet) + cache.stat(Stat::BarnGetFail);
        let refills = cache.stat(Stat::SheafRefill);
        objs.extend(alloc_n(cache, 2));
        let s = mine(cache, cpu);
        assert_eq!(
            (s.main, s.spare),
            (cap - 1, Some(0)),
            "with main empty and a full spare, an allocation should swap them (main {} after \
             the pop, the spare empty): alloc_refill in {WHERE}; stats:{}",
            cap - 1,
            stats(cache)
        );
        assert_eq!(
            (
                cache.stat(Stat::BarnGet) + cache.stat(Stat::BarnGetFail),
                cache.stat(Stat::SheafRefill)
            ),
            (barn_get, refills),
            "a swap needs neither the barn nor the slabs; stats:{}",
            stats(cache)
        );
        let n = objs.len();
        free_n(cache, &mut objs, n);
    });
}

#[crate::ktest]
fn full_main_and_spare_trade_main_at_the_barn() {
    on_a_fresh_cache("lab-sheaves-barn-put", |cache, cpu| {
        let cap = cache.sheaf_capacity();
        let mut objs = alloc_n(cache, 3 * cap);
        free_n(cache, &mut objs, 2 * cap);
        let s = mine(cache, cpu);
        assert_eq!(
            (s.main, s.spare),
            (cap, Some(cap)),
            "after {} frees main and spare should both be full; stats:{}",
            2 * cap,
            stats(cache)
        );
        let puts = cache.stat(Stat::BarnPut);
        free_n(cache, &mut objs, 1);
        let s = mine(cache, cpu);
        assert_eq!(
            (
                cache.stat(Stat::BarnPut),
                cache.barn_counts(0).0,
                s.main,
                s.spare
            ),
            (puts + 1, 1, 1, Some(cap)),
            "a free with main and spare full should hand main to the barn (barn_put, one full \
             sheaf there) for an empty sheaf that takes the object: free_flush in {WHERE}; \
             stats:{}",
            stats(cache)
        );
        let n = objs.len();
        free_n(cache, &mut objs, n);
    });
}

#[crate::ktest]
fn empty_main_and_spare_take_a_full_sheaf_from_the_barn() {
    on_a_fresh_cache("lab-sheaves-barn-get", |cache, cpu| {
        let cap = cache.sheaf_capacity();
        let mut objs = alloc_n(cache, 3 * cap);
        // main 1, spare full, one full sheaf in the barn.
        free_n(cache, &mut objs, 2 * cap + 1);
        // Empty main (1) and the spare (cap), then one more.
        objs.extend(alloc_n(cache, 1 + cap));
        let gets = cache.stat(Stat::BarnGet);
        objs.extend(alloc_n(cache, 1));
        let s = mine(cache, cpu);
        assert_eq!(
            (cache.stat(Stat::BarnGet), cache.barn_counts(0).0, s.main),
            (gets + 1, 0, cap - 1),
            "with main and spare empty, an allocation should trade the empty main at the barn \
             for its full sheaf (barn_get), then pop it: alloc_refill in {WHERE}; stats:{}",
            stats(cache)
        );
        let n = objs.len();
        free_n(cache, &mut objs, n);
    });
}
