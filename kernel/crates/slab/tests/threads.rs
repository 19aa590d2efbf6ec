//! Threads as CPUs: concurrent allocation, cross-thread frees, barn traffic, destruction.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::mpsc;

use slab::host::{HostConfig, HostPlatform};
use slab::{Gfp, KmemCacheArgs, SlabAllocator, SlabFlags, Stat};

/// A tiny deterministic PRNG per thread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn stress(cpus: usize, nodes: usize, flags: SlabFlags, size: usize) {
    let p = HostPlatform::new(HostConfig {
        cpus,
        nodes,
        pages_per_node: 8192,
    });
    let boot = p.register_cpu();
    let a = SlabAllocator::new(p.clone()).unwrap();
    let c = a
        .kmem_cache_create(
            "stress",
            size,
            KmemCacheArgs::default(),
            flags | SlabFlags::SLAB_NO_MERGE,
        )
        .unwrap();
    drop(boot);
    let live = Mutex::new(HashSet::new());
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..cpus).map(|_| mpsc::channel::<usize>()).unzip();
    std::thread::scope(|s| {
        for (t, rx) in rxs.into_iter().enumerate() {
            let txs = txs.clone();
            let (p, c, live) = (&p, &*c, &live);
            s.spawn(move || {
                let _cpu = p.register_cpu_as(t);
                let mut rng = Rng(0x9e37_79b9 + t as u64);
                let mut mine: Vec<usize> = Vec::new();
                for _ in 0..20_000 {
                    // Objects sent by other threads: check their pattern and free them here.
                    while let Ok(o) = rx.try_recv() {
                        free_checked(c, live, o);
                    }
                    let r = rng.next();
                    if !r.is_multiple_of(3) || mine.is_empty() {
                        let o = c.alloc(Gfp::KERNEL).unwrap().as_ptr() as usize;
                        assert!(live.lock().unwrap().insert(o), "object handed out twice");
                        // SAFETY: ours, `size` bytes.
                        unsafe { (o as *mut u8).write_bytes(pattern(o), size) };
                        mine.push(o);
                    } else {
                        let o = mine.swap_remove((r as usize / 3) % mine.len());
                        let to = (r >> 32) as usize % cpus;
                        if to == t || r & 0x10 != 0 {
                            free_checked(c, live, o);
                        } else {
                            // Free on another CPU (possibly another node).
                            txs[to].send(o).unwrap();
                        }
                    }
                }
                for o in mine {
                    free_checked(c, live, o);
                }
                drop(txs);
                // Drain what others still send until every sender is gone.
                for o in rx {
                    free_checked(c, live, o);
                }
            });
        }
        drop(txs);
    });
    assert!(live.lock().unwrap().is_empty());
    let _boot = p.register_cpu();
    if nodes > 1 {
        assert!(c.stat(Stat::FreeRemoteNode) > 0);
    }
    if !c.is_debug() {
        assert!(
            c.stat(Stat::BarnPut) + c.stat(Stat::BarnGet) > 0,
            "sheaves went through the barn"
        );
    }
    // Every object was freed: destroy flushes every CPU's sheaves and succeeds.
    // SAFETY: all threads are done.
    unsafe { a.kmem_cache_destroy(c).unwrap() };
}

fn pattern(o: usize) -> u8 {
    (o >> 4) as u8 | 1
}

fn free_checked(c: &slab::KmemCache<HostPlatform>, live: &Mutex<HashSet<usize>>, o: usize) {
    // SAFETY: `o` is a live object of `c` owned by this thread now.
    unsafe {
        let bytes = std::slice::from_raw_parts(o as *const u8, c.object_size());
        assert!(bytes.iter().all(|&b| b == pattern(o)), "contents preserved");
    }
    assert!(live.lock().unwrap().remove(&o));
    // SAFETY: as above.
    unsafe {
        c.free(std::ptr::NonNull::new(o as *mut u8).unwrap())
            .unwrap()
    };
}

#[test]
fn four_cpus_one_node() {
    stress(4, 1, SlabFlags::empty(), 48);
}

#[test]
fn four_cpus_two_nodes() {
    stress(4, 2, SlabFlags::empty(), 200);
}

#[test]
fn four_cpus_debug_cache() {
    stress(
        4,
        2,
        SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON | SlabFlags::SLAB_STORE_USER,
        40,
    );
}

#[test]
fn kmalloc_from_many_threads() {
    let p = HostPlatform::new(HostConfig {
        cpus: 3,
        nodes: 1,
        pages_per_node: 8192,
    });
    let boot = p.register_cpu();
    let a = SlabAllocator::new(p.clone()).unwrap();
    drop(boot);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (p, a) = (&p, &a);
            s.spawn(move || {
                let _cpu = p.register_cpu();
                let mut rng = Rng(t + 1);
                let mut v = Vec::new();
                for i in 0..5000 {
                    let size = 1 + (rng.next() % 10_000) as usize;
                    let o = a.kmalloc(size, Gfp::KERNEL).unwrap();
                    // SAFETY: ours.
                    unsafe { o.as_ptr().write_bytes(i as u8, size) };
                    v.push((o, size, i as u8));
                    if v.len() > 150 || i % 2 == 1 {
                        let (o, size, b) = v.swap_remove((rng.next() % v.len() as u64) as usize);
                        // SAFETY: ours.
                        unsafe {
                            assert!(
                                std::slice::from_raw_parts(o.as_ptr(), size)
                                    .iter()
                                    .all(|&x| x == b)
                            );
                            a.kfree(o.as_ptr()).unwrap();
                        }
                    }
                }
                for (o, _, _) in v {
                    // SAFETY: ours.
                    unsafe { a.kfree(o.as_ptr()).unwrap() };
                }
            });
        }
    });
}

#[test]
fn threads_registering_at_once_get_distinct_cpus() {
    const CPUS: usize = 8;
    let platform = HostPlatform::new(HostConfig {
        cpus: CPUS,
        ..HostConfig::default()
    });
    for _ in 0..2000 {
        let (start, hold) = (std::sync::Barrier::new(CPUS), std::sync::Barrier::new(CPUS));
        let mut cpus: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..CPUS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        let cpu = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            platform.register_cpu()
                        }));
                        // Keep the registration until every thread has one (and let a thread
                        // whose registration failed reach the barrier too, so the test fails
                        // rather than hangs).
                        hold.wait();
                        cpu.expect("registration").cpu()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        cpus.sort_unstable();
        assert_eq!(cpus, (0..CPUS).collect::<Vec<_>>());
    }
}
