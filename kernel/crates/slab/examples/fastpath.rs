//! Measures the sheaf fast path on the host: an allocation and a free of one object, both
//! served by the CPU's main sheaf. Run with `cargo run -p slab --release --example fastpath`;
//! disassemble `alloc_free_pair` to count instructions.

use std::hint::black_box;
use std::time::Instant;

use slab::host::{HostConfig, HostPlatform};
use slab::{Gfp, KmemCache, KmemCacheArgs, SlabAllocator, SlabFlags};

/// One allocation and one free through the fast paths.
#[inline(never)]
pub fn alloc_free_pair(c: &KmemCache<HostPlatform>) {
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated from `c`, not used afterwards.
        let _ = unsafe { c.free(o) };
    }
}

fn main() {
    let p = HostPlatform::new(HostConfig {
        cpus: 1,
        nodes: 1,
        pages_per_node: 4096,
    });
    let _cpu = p.register_cpu();
    let a = SlabAllocator::new(p.clone()).expect("allocator");
    let c = a
        .kmem_cache_create(
            "bench",
            64,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .unwrap();
    // Warm up: the first allocation refills the main sheaf.
    alloc_free_pair(c);
    let n = 50_000_000u64;
    let t = Instant::now();
    for _ in 0..n {
        alloc_free_pair(black_box(c));
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("alloc+free pair: {ns:.2} ns");
    println!(
        "slow paths taken: alloc {}, free {}",
        c.stat(slab::Stat::AllocSlowpath),
        c.stat(slab::Stat::FreeSlowpath)
    );

    // Batches larger than two sheaves: every sheaf of objects goes through the barn.
    let mut v = Vec::with_capacity(1000);
    let rounds = 20_000u64;
    let t = Instant::now();
    for _ in 0..rounds {
        for _ in 0..1000 {
            v.push(c.alloc(Gfp::KERNEL).unwrap());
        }
        for o in v.drain(..) {
            // SAFETY: allocated above, not used afterwards.
            let _ = unsafe { c.free(o) };
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (rounds * 1000) as f64;
    println!("batches of 1000 (barn exchanges): {ns:.2} ns per alloc+free");
    println!(
        "barn_get {} barn_put {} barn_put_fail {} sheaf_refill {} sheaf_flush {}",
        c.stat(slab::Stat::BarnGet),
        c.stat(slab::Stat::BarnPut),
        c.stat(slab::Stat::BarnPutFail),
        c.stat(slab::Stat::SheafRefill),
        c.stat(slab::Stat::SheafFlush)
    );

    let n = 10_000_000u64;
    let t = Instant::now();
    for i in 0..n {
        let size = 8 + (i as usize & 0x1ff);
        let o = a.kmalloc(black_box(size), Gfp::KERNEL).unwrap();
        // SAFETY: from kmalloc, not used afterwards.
        let _ = unsafe { a.kfree(o.as_ptr()) };
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("kmalloc+kfree pair (8..520 bytes): {ns:.2} ns");
}
