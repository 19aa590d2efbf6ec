//! An allocation made by a context that interrupted a fast path on its CPU (in the kernel: an
//! interrupt handler, while a thread's fast path holds the CPU's sheaves through the per-CPU
//! trylock) must be served without touching that CPU's sheaves: every operation works, counts
//! as a slow-path one, and the sheaves are exactly as the interrupted fast path left them.

mod common;

use common::{args, no_merge, setup};
use slab::{Gfp, Stat};

#[test]
fn an_interrupting_context_is_served_from_the_slabs_and_leaves_the_sheaves_alone() {
    let (p, _cpu, a) = setup(1, 1);
    let c = a.kmem_cache_create("irq", 64, args(), no_merge()).unwrap();
    // The main sheaf's top object: what the next allocation here returns, if nothing
    // touches the sheaf in between.
    let top = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours.
    unsafe { c.free(top) }.unwrap();
    let fast = (c.stat(Stat::AllocFastpath), c.stat(Stat::FreeFastpath));
    let slow = (c.stat(Stat::AllocSlowpath), c.stat(Stat::FreeSlowpath));
    p.as_if_interrupting_a_fast_path(|| {
        let objs: Vec<_> = (0..100).map(|_| c.alloc(Gfp::ATOMIC).unwrap()).collect();
        assert!(!objs.contains(&top), "the sheaf's object stays where it is");
        for o in objs {
            // SAFETY: ours.
            unsafe { c.free(o) }.unwrap();
        }
        // kmalloc and kfree, bulk, kfree_rcu, a prefilled sheaf: none takes the sheaves.
        let k = a.kmalloc(64, Gfp::ATOMIC).unwrap();
        // SAFETY: ours.
        unsafe { a.kfree(k.as_ptr()) }.unwrap();
        let mut bulk = [core::ptr::null_mut(); 8];
        assert!(c.alloc_bulk(Gfp::ATOMIC, &mut bulk));
        // SAFETY: ours.
        unsafe { c.free_bulk(&bulk) }.unwrap();
        let o = c.alloc(Gfp::ATOMIC).unwrap();
        // SAFETY: ours; nobody reads it.
        unsafe { c.free_rcu(o) };
        let sheaf = c.prefill_sheaf(Gfp::ATOMIC, 4).unwrap();
        assert!(c.return_sheaf(sheaf).is_ok());
    });
    assert_eq!(
        (c.stat(Stat::AllocFastpath), c.stat(Stat::FreeFastpath)),
        fast,
        "no operation used the main sheaf"
    );
    assert_eq!(
        (c.stat(Stat::AllocSlowpath), c.stat(Stat::FreeSlowpath)),
        (slow.0 + 100 + 1 + 8, slow.1 + 100 + 8),
        "each allocation and free counted once, on the slow path (100 + the kfree_rcu \
         object + 8 in bulk; the 100 and 8 frees)"
    );
    let again = c.alloc(Gfp::KERNEL).unwrap();
    assert_eq!(again, top, "the main sheaf is as it was");
    // SAFETY: ours.
    unsafe { c.free(again) }.unwrap();
    a.kvfree_rcu_barrier();
    // SAFETY: every object is back; nothing else uses the cache.
    unsafe { a.kmem_cache_destroy(c) }.expect("no object left behind");
}
