//! Draining a cache's sysfs users before its destroy shuts it down (Linux's kernfs "active"
//! references, drained by `kernfs_drain` when `sysfs_slab_unlink` removes the directory).
//!
//! A `show` or `store` of a cache's file runs with a reference on the cache's kobject, which
//! keeps the structure alive but not its contents: a `shrink` written while the cache is
//! destroyed would flush sheaves that the shutdown is freeing (the shutdown assumes the cache
//! to itself). So each `show`/`store` enters and leaves ([`KmemCache::sysfs_enter`],
//! [`KmemCache::sysfs_exit`]), and the destroy, once the directory is gone (no new opener can
//! find it) and before the shutdown, marks the cache drained and waits for those inside to
//! leave ([`KmemCache::sysfs_drain`]); a later `enter` fails (`ENOENT`, as for a removed file).
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;

use super::KmemCache;
use crate::platform::Platform;

/// The bit of `sysfs_active` that says the cache has been drained; the rest counts users.
const DRAINED: usize = 1 << (usize::BITS - 1);

impl<P: Platform> KmemCache<P> {
    /// Enters a `show`/`store` of one of the cache's files: `false` (and nothing to leave) if
    /// the cache is being destroyed.
    pub(crate) fn sysfs_enter(&self) -> bool {
        let before = self.sysfs_active.fetch_add(1, Ordering::Acquire);
        if before & DRAINED != 0 {
            self.sysfs_active.fetch_sub(1, Ordering::Release);
            return false;
        }
        true
    }

    /// Leaves what [`sysfs_enter`](Self::sysfs_enter) entered.
    pub(crate) fn sysfs_exit(&self) {
        self.sysfs_active.fetch_sub(1, Ordering::Release);
    }

    /// Marks the cache drained and waits until no `show`/`store` of its files runs. Called by
    /// the destroy after the cache left sysfs and `slab_mutex` was dropped (a `store` may take
    /// any slab lock but `slab_mutex`), before the shutdown.
    pub(crate) fn sysfs_drain(&self) {
        self.sysfs_active.fetch_or(DRAINED, Ordering::AcqRel);
        while self.sysfs_active.load(Ordering::Acquire) & !DRAINED != 0 {
            core::hint::spin_loop();
        }
    }
}

#[cfg(test)]
// The test destroys a cache and reads it through `as_ref_unchecked`, as callers of the
// `unsafe` destroy do.
#[allow(unsafe_code)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use crate::flags::{KmemCacheArgs, SlabFlags};
    use crate::host::{HostConfig, HostPlatform};
    use crate::registry::SlabAllocator;

    /// A `store` in progress (entered, not left) holds the destroy back until it leaves; once
    /// the destroy began, a new `show`/`store` is refused. Without the drain the destroy would
    /// shut the cache down under the running `store` (a `shrink` flushing the sheaves the
    /// shutdown frees).
    #[test]
    fn a_destroy_waits_for_a_running_store_and_refuses_new_ones() {
        let p = HostPlatform::new(HostConfig {
            cpus: 2,
            nodes: 1,
            pages_per_node: 1024,
        });
        let _cpu = p.register_cpu_as(0);
        let slab = SlabAllocator::new(p.clone()).expect("allocator");
        let handle = slab
            .kmem_cache_create(
                "drain",
                64,
                KmemCacheArgs::default(),
                SlabFlags::SLAB_NO_MERGE,
            )
            .expect("cache");
        // SAFETY: the structure stays alive until the destroy below returns, and this test
        // reads it only before then.
        let cache = unsafe { handle.as_ref_unchecked() };
        assert!(cache.sysfs_enter(), "a store begins");
        let destroyed = AtomicBool::new(false);
        std::thread::scope(|s| {
            let destroyer = s.spawn(|| {
                let _cpu = p.register_cpu_as(1);
                // SAFETY: no object of the cache is live; the test's `store` only counts.
                unsafe { slab.kmem_cache_destroy(handle) }.expect("an empty cache");
                destroyed.store(true, Ordering::SeqCst);
            });
            // The destroy takes the cache out of the list and starts draining: new users are
            // refused from then on (or it finished already, if it did not wait).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while cache.sysfs_enter() {
                cache.sysfs_exit();
                assert!(
                    !destroyed.load(Ordering::SeqCst),
                    "the destroy shut the cache down while a store ran"
                );
                assert!(
                    std::time::Instant::now() < deadline,
                    "the destroy never refused new sysfs users"
                );
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                !destroyed.load(Ordering::SeqCst),
                "the destroy shut the cache down while a store ran"
            );
            cache.sysfs_exit();
            destroyer.join().expect("destroyer");
        });
        assert!(
            destroyed.load(Ordering::SeqCst),
            "the destroy ended once the store left"
        );
    }
}
