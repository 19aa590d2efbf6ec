//! The RCU and asynchronous-destroy paths allocate nothing (issue #10): handing a full
//! `rcu_free` sheaf to RCU, `kfree_rcu` of a large kmalloc block, and destroying a cache with
//! objects in `kfree_rcu` flight, from the destroy call to the work item that frees the cache,
//! link heads embedded in the sheaves and caches instead of boxing callbacks.
//!
//! A counting global allocator observes it: it counts the allocations (not the frees) made by
//! the current thread while a test has it count. The host platform's queues are intrusive too,
//! so what is counted is the allocator's path and the platform's together.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use slab::{Gfp, KmemCache, Stat};

/// The system allocator, counting the current thread's allocations while it is asked to.
struct Counting;

std::thread_local! {
    /// Whether this thread's allocations are counted, and how many there were.
    static COUNT: Cell<(bool, usize)> = const { Cell::new((false, 0)) };
}

// SAFETY: forwards to the system allocator; the counter is a const-initialised thread-local
// without destructor, so reaching it allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| {
            let (on, n) = c.get();
            if on {
                c.set((on, n + 1));
            }
        });
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The number of allocations the current thread makes while running `f`, and `f`'s result.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    COUNT.with(|c| c.set((true, 0)));
    let r = f();
    let n = COUNT.with(|c| c.replace((false, 0)).1);
    (n, r)
}

/// Allocates `n` objects of `c` and frees them with `kfree_rcu`, the last one on its own,
/// counting the allocations that one makes.
fn free_rcu_n(c: &KmemCache<slab::host::HostPlatform>, n: usize) -> usize {
    let objs: Vec<_> = (0..n).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    for &o in &objs[..n - 1] {
        // SAFETY: ours, not used afterwards.
        unsafe { c.free_rcu(o) };
    }
    // SAFETY: as above.
    allocations(|| unsafe { c.free_rcu(objs[n - 1]) }).0
}

#[test]
fn a_full_rcu_free_sheaf_goes_to_rcu_without_an_allocation() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a
        .kmem_cache_create("no-alloc-sheaf", 64, args(), no_merge())
        .unwrap();
    let cap = c.sheaf_capacity();
    // The last object fills this CPU's `rcu_free` sheaf, which is handed to RCU at once.
    let n = free_rcu_n(&c, cap);
    assert_eq!(p.rcu_callbacks_pending(), 1, "the full sheaf went to RCU");
    assert_eq!(
        c.stat(Stat::FreeRcuSheafFail),
        0,
        "every object took the sheaf"
    );
    assert_eq!(n, 0, "handing the sheaf to RCU allocated");
    // Its callback brings the sheaf back (to the barn), allocating nothing either.
    let (n, _) = allocations(|| p.synchronize_rcu());
    assert_eq!(n, 0, "the sheaf's callback allocated");
    assert_eq!(c.barn_counts(0).0, 1, "the full sheaf is in the barn");
    // SAFETY: no other user; every object is back.
    unsafe { a.kmem_cache_destroy(c) }.expect("no object remains");
}

#[test]
fn kfree_rcu_of_a_large_block_allocates_nothing() {
    let (p, _cpu, a) = setup(1, 1);
    let pages = p.pages_in_use();
    let big = a.kmalloc(64 << 10, Gfp::KERNEL).unwrap();
    // SAFETY: ours, not used afterwards.
    let (n, r) = allocations(|| unsafe { a.kfree_rcu(big.as_ptr()) });
    r.unwrap();
    assert_eq!(n, 0, "kfree_rcu of a large block allocated");
    assert_eq!(p.rcu_callbacks_pending(), 1);
    assert_eq!(
        p.pages_in_use(),
        pages + 16,
        "the block waits for its grace period"
    );
    p.synchronize_rcu();
    assert_eq!(p.pages_in_use(), pages, "then it is free");
}

#[test]
fn destroying_a_cache_with_objects_in_kfree_rcu_flight_allocates_nothing() {
    let (p, _cpu, a) = setup(2, 1);
    let pages = p.pages_in_use();
    let c = a
        .kmem_cache_create("no-alloc-destroy", 64, args(), no_merge())
        .unwrap();
    let cap = c.sheaf_capacity();
    // Two full sheaves in RCU's hands and a partly filled one on the CPU.
    free_rcu_n(&c, 2 * cap + 5);
    assert_eq!(p.rcu_callbacks_pending(), 2);
    // The destroy: the first try hands the partly filled sheaf to RCU, finds objects in
    // flight, puts the cache on the pending list and queues its work item.
    // SAFETY: nobody uses the cache afterwards.
    let (n, r) = allocations(|| unsafe { a.kmem_cache_destroy(c) });
    r.expect("returns at once");
    assert_eq!(n, 0, "kmem_cache_destroy allocated");
    assert_eq!(
        p.rcu_callbacks_pending(),
        3,
        "the partly filled sheaf went to RCU too"
    );
    assert_eq!(p.work_pending(), 1);
    assert_eq!(a.nr_destroy_pending(), 1);
    // The work item: waits for RCU (the three sheaves' callbacks), shuts the cache down,
    // takes it off the list and frees it.
    let (n, ran) = allocations(|| p.run_work());
    assert_eq!(ran, 1);
    assert_eq!(n, 0, "the destroy work item allocated");
    assert_eq!(a.nr_destroy_pending(), 0);
    assert_eq!(
        p.error_count(),
        0,
        "every object came back: nothing reported"
    );
    assert_eq!(p.pages_in_use(), pages, "every page of the cache is back");
}

/// Reading a cache's sysfs files allocates nothing, so it does not move the counters it
/// reports (Linux's `tools/mm/slabinfo` found one `cat` raising kmalloc-16's `alloc_slowpath`
/// when the view was rebuilt per read). Every attribute of every cache, read twice: the
/// second read shows what the first showed.
#[test]
fn reading_sysfs_files_allocates_nothing_and_changes_no_counter() {
    let (_p, _cpu, a) = setup(2, 1);
    // Some traffic, so the counters are not all zero.
    let objs: Vec<_> = (0..100)
        .map(|_| a.kmalloc(16, Gfp::KERNEL).unwrap())
        .collect();
    for o in objs {
        // SAFETY: from kmalloc, not used afterwards.
        unsafe { a.kfree(o.as_ptr()).unwrap() };
    }
    let dirs: Vec<String> = slab::sysfs::list(&a)
        .into_iter()
        .filter_map(|e| match e {
            slab::sysfs::Entry::Dir(d) => Some(d),
            slab::sysfs::Entry::Link { .. } => None,
        })
        .collect();
    let files: Vec<String> = dirs
        .iter()
        .flat_map(|d| slab::sysfs::attributes().map(move |f| format!("{d}/{f}")))
        .collect();
    assert!(files.len() > 500, "{} files", files.len());
    let mut page = kobject::PageBuf::new();
    let mut first = Vec::with_capacity(files.len());
    for f in &files {
        let (n, r) = allocations(|| {
            page.clear();
            slab::sysfs::read_into(&a, f, &mut page)
        });
        assert_eq!(r, Ok(()), "{f}");
        assert_eq!(n, 0, "reading {f} allocated");
        first.push(String::from(page.as_str()));
    }
    for (f, was) in files.iter().zip(&first) {
        page.clear();
        slab::sysfs::read_into(&a, f, &mut page).unwrap();
        assert_eq!(page.as_str(), was, "{f} changed by reading");
    }
    // The files agree with the allocator's own counts: kmalloc-16's allocations, fast plus
    // slow, are the 100 above and whatever the setup made.
    let total = |stat: &str| -> u64 {
        let v = slab::sysfs::read(&a, &format!("kmalloc-16/{stat}")).unwrap();
        v.split_whitespace().next().unwrap().parse().unwrap()
    };
    let c = a.kmalloc_cache(16).unwrap();
    let allocs = total("alloc_fastpath") + total("alloc_slowpath");
    assert_eq!(
        allocs,
        c.stat(Stat::AllocFastpath) + c.stat(Stat::AllocSlowpath)
    );
    assert!(allocs >= 100, "{allocs}");
}
