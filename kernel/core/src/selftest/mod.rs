//! The core's self-tests and benchmarks: on-target tests and shell workloads that need raw
//! memory (deliberate corruption, raw frees, another allocator to compare with), which is why
//! they live in the core and not with the services' tests (`kernel/src/selftest`).
//!
//! - [`storm`]: a checked kmalloc/kfree storm on every CPU (the shell's `kmalloc-test`);
//! - [`bench`]: kmalloc against `linked_list_allocator`, and the fast path in cycles (the
//!   shell's `slabbench`);
//! - [`freeq`]: lock hold time of frees under a spin lock, direct and through the deferred
//!   free queue (the shell's `freeqbench`), and the queue's on-target test;
//! - `kfree_rcu`: `kfree_rcu` of 100,000 objects from every CPU, `kvfree_rcu_barrier`, the
//!   asynchronous destroy, and the slab allocator's RCU and destroy paths while memory is
//!   exhausted (a full `rcu_free` sheaf, a destroy with objects in flight, `SLAB_TYPESAFE_BY_RCU`
//!   slabs, a large block);
//! - `kobject`: kobject releases from every CPU, misuse reports, `/sys` visibility;
//! - `sysfs_slab`: `/sys/kernel/slab` and `/proc/slabinfo` against the allocator's numbers;
//! - [`static_cache`]: static caches in `.data`, their rules, and cycles static vs dynamic (the
//!   shell's `staticbench`);
//! - `primary_cache`: static and dynamic caches merged in every creation order, and a storm
//!   on every CPU through an alias and its primary;
//! - `rcu`: `call_rcu` with an embedded `rcu_head` while memory is exhausted, and the helpers
//!   that exhaust memory ([`exhaust`], [`exhaust_all_cpus`], after [`quiesce`]), which the
//!   services' tests use too;
//! - `oom`: threads while memory is exhausted: sleeping on and waking from a wait queue
//!   allocates nothing, and `spawn` fails with an error instead of panicking;
//! - `slab`: on-target tests of the slab allocator on real CPUs and pages: debug detections,
//!   leak reports, out of memory, shrink, allocation in interrupt handlers, `kfree_rcu`.

pub mod bench;
pub mod freeq;
#[cfg(feature = "ktest")]
mod kfree_rcu;
#[cfg(feature = "ktest")]
mod kobject;
#[cfg(feature = "ktest")]
mod oom;
#[cfg(feature = "ktest")]
mod primary_cache;
#[cfg(feature = "ktest")]
mod rcu;
#[cfg(feature = "ktest")]
mod slab;
pub mod static_cache;
#[cfg(feature = "ktest")]
mod static_setup;
pub mod storm;
#[cfg(feature = "ktest")]
mod sysfs_slab;

#[cfg(feature = "ktest")]
pub use rcu::{Exhausted, exhaust, exhaust_all_cpus, quiesce};

/// A small deterministic random number generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value but 0 works; 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random value in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}
