//! Giving back what the sheaves and barns park: `shrink` (everything) and `reclaim` (the
//! memory-pressure path: barns and empty slabs, from any context).

mod common;

use std::ptr::NonNull;

use common::*;
use slab::barn::MAX_FULL_SHEAVES;
use slab::host::HostPlatform;
use slab::{Gfp, KmemCache};

/// Allocates `n` objects of `c` and frees them all: the frees fill the CPU's main and spare
/// sheaves, then the barn (up to its cap), then go to the slabs.
fn churn(c: &KmemCache<HostPlatform>, n: usize) {
    let objs: Vec<NonNull<u8>> = (0..n).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    for o in objs {
        // SAFETY: allocated above, not used afterwards.
        unsafe { c.free(o).unwrap() };
    }
}

#[test]
fn shrink_empties_the_barn_and_the_sheaves_and_frees_every_empty_slab() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("shrunk", 256, args(), no_merge())
        .unwrap();
    let cap = c.sheaf_capacity();
    let before = p.pages_in_use();
    churn(&c, cap * (MAX_FULL_SHEAVES + 6));
    assert_eq!(c.barn_counts(0).0, MAX_FULL_SHEAVES, "the barn is full");
    let parked = c.slabinfo().active_objs;
    assert!(
        parked >= cap * (MAX_FULL_SHEAVES + 2),
        "barn, main and spare hold objects: {parked}"
    );
    let freed = c.shrink();
    assert!(freed > 0);
    assert_eq!(c.barn_counts(0), (0, 0), "the barn is empty");
    let info = c.slabinfo();
    assert_eq!(info.active_objs, 0, "no object is parked any more");
    assert_eq!(info.num_slabs, 0, "every empty slab went back");
    // What stays: the CPU's (empty) main sheaf, an object of the private sheaf cache.
    assert!(
        p.pages_in_use() <= before + 1,
        "pages back: {} in use, {before} before",
        p.pages_in_use()
    );
}

#[test]
fn reclaim_empties_the_barn_frees_empty_slabs_and_leaves_the_cpu_sheaves() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("pressed", 256, args(), no_merge())
        .unwrap();
    let cap = c.sheaf_capacity();
    churn(&c, cap * (MAX_FULL_SHEAVES + 6));
    assert_eq!(c.barn_counts(0).0, MAX_FULL_SHEAVES);
    let pages = p.pages_in_use();
    let slabs = c.slabinfo().num_slabs;
    let freed = c.reclaim().expect("nothing holds the cache's locks");
    assert!(freed > 0, "empty slabs were freed");
    assert_eq!(c.barn_counts(0), (0, 0), "the barn is empty");
    let info = c.slabinfo();
    assert!(
        info.active_objs <= 2 * cap,
        "only the CPU's main and spare sheaves keep objects: {}",
        info.active_objs
    );
    assert!(info.num_slabs < slabs);
    assert_eq!(freed, slabs - info.num_slabs, "every slab freed is counted");
    assert!(p.pages_in_use() < pages, "pages came back");
    // The CPU's sheaves still serve allocations (the reclaim did not touch them).
    churn(&c, cap);
}

#[test]
fn allocator_reclaim_reaches_kmalloc_and_created_caches() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("made", 512, args(), no_merge())
        .unwrap();
    churn(&c, c.sheaf_capacity() * (MAX_FULL_SHEAVES + 4));
    let k = a.kmalloc_cache(2048).expect("kmalloc-2k");
    let objs: Vec<_> = (0..k.sheaf_capacity() * (MAX_FULL_SHEAVES + 4))
        .map(|_| a.kmalloc(2048, Gfp::KERNEL).unwrap())
        .collect();
    for o in objs {
        // SAFETY: allocated above, not used afterwards.
        unsafe { a.kfree(o.as_ptr()).unwrap() };
    }
    assert!(c.barn_counts(0).0 > 0 && k.barn_counts(0).0 > 0);
    let pages = p.pages_in_use();
    assert!(a.reclaim() > 0);
    assert_eq!(c.barn_counts(0), (0, 0));
    assert_eq!(k.barn_counts(0), (0, 0));
    assert!(p.pages_in_use() < pages);
}
