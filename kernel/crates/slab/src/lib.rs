//! # Sheaf's slab allocator
//!
//! A SLUB-style slab allocator with per-CPU **sheaves** and per-node **barns**, following the
//! design of Linux's slab allocator in the "sheaves for all" era, with Linux's names so that a
//! Linux reader recognises every piece. The crate is `no_std` logic, generic over a
//! [`Platform`] (pages, CPU ids, a per-CPU guard) that the kernel implements with real hardware
//! and that `host::HostPlatform` (on targets with `std`) implements on the host for the tests.
//!
//! ## The layers, from fast to slow
//! 1. **Sheaves** ([`sheaf`]): each CPU has, per cache, a `main` sheaf, an array of free object
//!    pointers. Allocation pops from it and free pushes onto it with the CPU pinned: no lock, no
//!    atomic instruction ([`KmemCache::alloc`], [`KmemCache::free`]).
//! 2. **Spare and barn** ([`barn`]): when `main` is empty or full, it is swapped with the CPU's
//!    `spare`, or traded at the node's barn for a full or empty sheaf (one lock per sheaf).
//! 3. **Slabs** ([`slab`]): blocks of pages cut into objects, with a hardened free list inside
//!    the free objects, kept on per-node partial lists under a lock. Sheaves are refilled from
//!    them and flushed back to them in batches of 32.
//! 4. **Pages** ([`Platform::alloc_pages`]): new slabs; empty slabs beyond `min_partial` go back.
//!
//! On top: [`SlabAllocator`] keeps the list of caches (`slab_caches` under `slab_mutex`),
//! merges compatible caches ([`SlabAllocator::kmem_cache_create`]) and provides `kmalloc`
//! ([`kmalloc`]). Debug flags ([`debug`]) add red zones, poisoning and caller tracking.
//! [`layout`] holds the pure geometry functions (`calculate_sizes`, `calculate_order`, ...).
//!
//! ## Using it
//! ```
//! use slab::host::{HostConfig, HostPlatform};
//! use slab::{Gfp, KmemCacheArgs, SlabAllocator, SlabFlags};
//!
//! let platform = HostPlatform::new(HostConfig::default());
//! let _cpu = platform.register_cpu(); // this thread is CPU 0 from now on
//! let slab = SlabAllocator::new(platform.clone()).unwrap();
//! let cache = slab
//!     .kmem_cache_create("inode", 600, KmemCacheArgs::default(), SlabFlags::SLAB_HWCACHE_ALIGN)
//!     .unwrap();
//! let obj = cache.alloc(Gfp::KERNEL).expect("out of memory");
//! // SAFETY: `obj` came from `cache` and is not used afterwards.
//! unsafe { cache.free(obj).unwrap() };
//! let buf = slab.kmalloc(100, Gfp::KERNEL).unwrap(); // from kmalloc-128
//! assert_eq!(slab.ksize(buf), 128);
//! // SAFETY: from kmalloc, not used afterwards.
//! unsafe { slab.kfree(buf.as_ptr()).unwrap() };
//! ```
//! Every operation, cache creation included, runs on a CPU: in the kernel any context (the
//! allocator pins itself); on the host a thread that registered as a CPU.
//!
//! ## Where Sheaf differs from Linux (and why)
//! * Slab descriptors live in per-page records of the platform, like `struct slab` in
//!   `struct page`; all slab state is under the node's `list_lock` (no lockless `cmpxchg`
//!   free-list updates: simpler to read, and the sheaves already keep the lock off the fast path).
//! * Every cache keeps a full-slab list (Linux: debug caches only) so that
//!   `kmem_cache_destroy` can name every leftover object.
//! * Debug caches have no sheaves, so every check runs synchronously at the slab.
//! * `kmem_cache_shrink` flushes every CPU's sheaves on that CPU where the platform can run
//!   code there ([`Platform::on_each_cpu`]: the kernel can, with a pinned thread per CPU, like
//!   Linux's per-CPU work); on the host only the calling CPU's sheaves are flushed.
//! * `SLAB_TYPESAFE_BY_RCU` keeps the free pointer outside the object, prevents merging and
//!   gives slab pages back through [`Platform::free_pages_rcu`] (after a grace period).
//!   `kfree_rcu` collects objects in a per-CPU `rcu_free` sheaf handed to
//!   [`Platform::call_rcu`] when full ([`rcu_free`]); a partly filled one waits until it fills
//!   or the cache is destroyed (Linux also flushes them in `kvfree_rcu_barrier`).
//!
//! ## Testing and measuring
//! `cargo test -p sheaf-slab` runs unit tests, model-based property tests (`tests/model.rs`),
//! multi-threaded tests where threads register as CPUs (`tests/threads.rs`), one test per
//! debug detection (`tests/debug.rs`) and the kmalloc/merging tests. The loom model tests of
//! the sheaf/barn exchange (the barn alone, and a whole cache shared by two CPUs) run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p sheaf-slab --release loom
//! ```
//!
//! (add `CARGO_TARGET_DIR=/tmp/loom-target` to keep the loom build apart from the normal one).
//! `cargo run -p sheaf-slab --release --example bench` compares the sheaf fast path, kmalloc,
//! `linked_list_allocator`, the system allocator and mimalloc on the same workloads, and
//! `examples/count_fastpath.sh` counts the fast path's instructions with callgrind.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
// The host platform needs std: it is built for every target that has one (not for the
// kernel's `x86_64-unknown-none`), so no feature has to be switched on, and none can leak into
// the kernel build through cargo's feature unification.
#[cfg(any(not(target_os = "none"), all(test, loom)))]
extern crate std;

// The layers, bottom to top, are listed in the crate docs ("Reading order"); rustfmt keeps
// the declarations alphabetical.
pub mod barn;
pub mod base;
pub mod cache;
pub mod flags;
#[cfg(not(target_os = "none"))]
pub mod host;
pub mod kmalloc;
pub mod layout;
#[cfg(all(test, loom))]
mod loom_tests;
pub mod platform;
pub mod registry;
pub mod report;
pub mod sheaf;
pub mod slabs;
pub mod stats;
pub mod sync;
pub mod sysfs;

pub use base::{Gfp, PAGE_SIZE};
pub use cache::{KmemCache, SlabError, SlabInfo};
pub use flags::{Ctor, KmemCacheArgs, SlabFlags};
pub use platform::Platform;
pub use registry::{DestroyError, KmemCacheHandle, SlabAllocator, SlabOptions};
pub use report::{SlabErrorKind, SlabReport, Track};
pub use sheaf::{OutOfMemory, PrefilledSheaf};
pub use slabs::Slab;
pub use stats::Stat;
