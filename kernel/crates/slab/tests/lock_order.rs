//! The lock order of the crate docs ("Lock order"), on its one case that crosses into another
//! subsystem today: `kmem_cache_destroy` removes the cache's directory and links from sysfs
//! while it holds `slab_mutex`, and readers of `/sys/kernel/slab` take `slab_mutex` too (to
//! find a name's directory) and then the sysfs tree's lock, and run `show`/`store` (`shrink`)
//! with a reference on the cache's kobject. Creation, destruction, listing, reads and writes
//! race here on two CPUs; a lock taken against the order would deadlock the two threads, and
//! the watchdog fails the test instead of hanging.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use slab::host::{HostConfig, HostPlatform};
use slab::{Gfp, KmemCacheArgs, SlabAllocator, SlabFlags, sysfs};

/// Caches created and destroyed by the destroying thread.
const ROUNDS: usize = 300;
/// Reads of a cache's file that must succeed while the caches come and go (so that the two
/// threads really raced): each round waits, a little, for the reader to read the new cache.
const MIN_READS: usize = ROUNDS / 2;
/// How long a round waits for the reader before it destroys the cache anyway.
const ROUND_WAIT: Duration = Duration::from_millis(20);
/// How long the two threads may take together before the test calls it a deadlock (they take
/// about a second).
const WATCHDOG: Duration = Duration::from_secs(60);

/// The names the destroyer cycles through.
const NAMES: [&str; 4] = [
    "lock-order-0",
    "lock-order-1",
    "lock-order-2",
    "lock-order-3",
];

#[test]
fn destroy_under_slab_mutex_and_sysfs_readers_do_not_deadlock() {
    let p = HostPlatform::new(HostConfig {
        cpus: 2,
        nodes: 1,
        pages_per_node: 4096,
    });
    let slab = {
        let _boot = p.register_cpu();
        Arc::new(SlabAllocator::new(p.clone()).expect("allocator"))
    };
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let (finished, watchdog) = mpsc::channel();

    let destroyer = {
        let (p, slab, done, reads, finished) = (
            p.clone(),
            slab.clone(),
            done.clone(),
            reads.clone(),
            finished.clone(),
        );
        std::thread::spawn(move || {
            let _cpu = p.register_cpu_as(0);
            for round in 0..ROUNDS {
                let name = NAMES[round % NAMES.len()];
                let cache = slab
                    .kmem_cache_create(name, 64, KmemCacheArgs::default(), SlabFlags::SLAB_NO_MERGE)
                    .expect("cache");
                let o = cache.alloc(Gfp::KERNEL).expect("memory");
                // SAFETY: just allocated, not used afterwards.
                unsafe { cache.free(o) }.expect("free");
                // Give the reader a chance to find this cache, then destroy it under its feet.
                let seen = reads.load(Ordering::Relaxed);
                let until = Instant::now() + ROUND_WAIT;
                while reads.load(Ordering::Relaxed) == seen && Instant::now() < until {
                    std::hint::spin_loop();
                }
                // SAFETY: no object is live, and the reader thread only goes through sysfs,
                // which holds a kobject reference for each read and write.
                unsafe { slab.kmem_cache_destroy(cache) }.expect("an empty cache");
            }
            done.store(true, Ordering::Release);
            finished.send("destroyer").expect("the test waits");
        })
    };
    let reader = {
        let (p, slab, done, reads) = (p.clone(), slab.clone(), done.clone(), reads.clone());
        std::thread::spawn(move || {
            let _cpu = p.register_cpu_as(1);
            let mut pass = 0usize;
            while !done.load(Ordering::Acquire) {
                pass += 1;
                if pass.is_multiple_of(16) {
                    // The directory listing takes `slab_mutex`, then the tree's lock.
                    let listed = sysfs::list(&slab);
                    assert!(!listed.is_empty(), "the kmalloc caches are always there");
                }
                for name in NAMES {
                    // Each may find the cache gone (ENOENT): racing the destroy is the point.
                    let _ = sysfs::resolve(&slab, name);
                    if sysfs::read(&slab, &format!("{name}/objects")).is_ok() {
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = sysfs::write(&slab, &format!("{name}/shrink"), "1");
                }
            }
            finished.send("reader").expect("the test waits");
        })
    };
    for _ in 0..2 {
        let who = watchdog.recv_timeout(WATCHDOG).unwrap_or_else(|_| {
            panic!(
                "no progress for {WATCHDOG:?}: the destroy (slab_mutex, then sysfs) and the sysfs \
                 reader deadlocked"
            )
        });
        assert!(who == "destroyer" || who == "reader");
    }
    destroyer.join().expect("destroyer");
    reader.join().expect("reader");
    assert!(
        reads.load(Ordering::Relaxed) >= MIN_READS,
        "the reader read the caches' files while they came and went (the race was run): {} reads",
        reads.load(Ordering::Relaxed)
    );
    assert!(
        sysfs::list(&slab)
            .iter()
            .all(|e| !e.name().starts_with("lock-order-")),
        "every destroyed cache left sysfs"
    );
}
