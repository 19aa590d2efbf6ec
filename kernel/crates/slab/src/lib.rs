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
//! 3. **Slabs** ([`slabs`]): blocks of pages cut into objects, with a hardened free list inside
//!    the free objects, kept on per-node partial lists under a lock. Sheaves are refilled from
//!    them and flushed back to them in batches of 32.
//! 4. **Pages** ([`Platform::alloc_pages`]): new slabs; empty slabs beyond `min_partial` go back.
//!
//! On top: [`SlabAllocator`] keeps the list of caches (`slab_caches` under `slab_mutex`),
//! merges compatible caches ([`SlabAllocator::kmem_cache_create`]) and provides `kmalloc`
//! ([`kmalloc`]). Debug flags ([`cache::debug`]) add red zones, poisoning and caller tracking.
//! [`layout`] holds the pure geometry functions (`calculate_sizes`, `calculate_order`, ...).
//!
//! ## Reading order: the files in layers
//! Each file uses only files listed before it (`crate::` paths), with the one exception said
//! below the table:
//!
//! | layer | file | what |
//! |------:|------|------|
//! | 0 | `sync.rs`, `base.rs`, `head.rs`, `name.rs` | the lock type; `PAGE_SIZE`, [`Gfp`], `get_order`, CPU slots, the free queue's node size; the [`CallbackHead`] (`rcu_head`) and its [`HeadQueue`]; a cache's [`CacheName`] |
//! | 1 | `report.rs`, `stats.rs`, `flags.rs` | plain data: [`SlabReport`], [`Stat`], [`SlabFlags`] |
//! | 2 | `layout.rs` | object and slab geometry, pure functions |
//! | 3 | `slabs.rs` | [`Slab`] descriptors, slab lists, `KmemCacheNode`, the free-pointer codec, the page-owner word |
//! | 3 | `sheaf.rs` | the sheaf header, the per-CPU slot, [`PrefilledSheaf`] |
//! | 4 | `platform.rs` | the [`Platform`] trait, and [`sysfs::SlabSysfs`], where a platform shows its caches |
//! | 5 | `barn.rs` | the per-node store of full and empty sheaves |
//! | 6 | `cache.rs` | [`KmemCache`]: the struct, its creation, the fast paths, accessors |
//! | 7 | `cache/*.rs` | the rest of `impl KmemCache`, by concern: `slabs` (new slabs, refill from and free to slabs), `sheaves` (slow paths), `prefill`, `debug`, `rcu_free`, `rcu_heads` (sheaves and objects handed to RCU, their callbacks), `bulk`, `shrink`, `destroy` (the list of caches being destroyed), `sysfs_active` (the destroy's drain of sysfs users) |
//! | 7 | `attrs.rs` | a cache's `/sys/kernel/slab` files and directory: attributes, unique id, adding, linking and removing it |
//! | 8 | `registry.rs` | [`SlabAllocator`]: the list of caches, merging, [`KmemCacheHandle`], destroy, the caches' `kobj_type` (the attributes with its release) |
//! | 9 | `kmalloc.rs`, then `sysfs.rs` | size classes and `kfree`; the `/sys/kernel/slab` view |
//! | 10 | `free_q.rs` | the deferred free queue ([`KmemFreeQHead`], `kmem_free_q_add`, `kmem_free_up_q`) |
//! | – | `host.rs` | the host [`Platform`] for tests (uses layers 0-4 only) |
//!
//! One dependency points up:
//! - inside `cache`: `cache.rs`'s fast paths call the slow paths its children
//!   (`cache/sheaves.rs`) define on the same type. They are one `impl KmemCache` split over
//!   files (the children `use super::KmemCache`; the parent imports nothing from them), so the
//!   cycle is between parts of one type, not between layers.
//!
//! (`registry.rs` and `sysfs.rs` used to import each other: the registry put caches into
//! `/sys` and `sysfs.rs` defined their `kobj_type`, whose release is the registry's, and read
//! the registry for the directory view. The files and the directory of one cache are now
//! `attrs.rs`, below the registry, the `kobj_type` the registry's, and `sysfs.rs` only the
//! view, above it.)
//!
//! ## Lock order
//! As `mm/slub.c` writes it, outermost first (a lock may be taken while holding those above
//! it, never the reverse):
//!
//! 1. `slab_mutex` ([`SlabAllocator`]'s list of caches): creation, merging, destroy, the
//!    `/sys/kernel/slab` view's name lookups.
//! 2. The platform's sysfs: the tree's lock, then a kobject's own lock (the `kobject` crate).
//!    `kmem_cache_destroy` and `kmem_cache_create` take them with `slab_mutex` held; sysfs
//!    `show`/`store` run with neither held, on a reference of the cache's kobject, so a read or
//!    a `shrink` never waits for `slab_mutex` (`tests/lock_order.rs` races them). The destroy,
//!    after dropping `slab_mutex`, waits for the `show`/`store` calls still inside the cache
//!    before it shuts it down (`cache/sysfs_active.rs`, Linux's kernfs drain).
//! 3. A CPU's sheaves: no lock; the CPU is pinned ([`Platform::pin`], or the fast path's per-CPU
//!    trylock, [`Platform::pin_fast`]).
//! 4. A node's barn lock ([`barn`]), or a node's `list_lock` (`KmemCacheNode`, the partial and
//!    full slab lists): never held together; both spin, taken pinned.
//! 5. Leaf locks, taken under a `list_lock` at most: a debug cache's reports and isolated
//!    objects (`cache/debug.rs`), the destroy list (`cache/destroy.rs`).
//!
//! Pages are allocated and freed with no slab lock held (empty slabs are unlinked under
//! `list_lock` and freed after it), and RCU callbacks and work items run with none held.
//!
//! ## Naming
//! Linux's names, one convention: a Linux function that takes the cache as its first argument,
//! `kmem_cache_X(s, ...)`, is the method `s.X(...)` of [`KmemCache`] (`alloc`, `free`,
//! `alloc_bulk`, `shrink`, `prefill_sheaf`, ...; `kfree_rcu` of a cache object is
//! [`KmemCache::free_rcu`]); functions without a cache argument keep their full Linux names
//! as methods of [`SlabAllocator`] (`kmem_cache_create`, `kmem_cache_destroy`, `kmalloc`,
//! `kfree`, `ksize`, ...). Every renamed method carries its Linux name as a `#[doc(alias)]`,
//! so searching the docs for `kmem_cache_alloc` finds [`KmemCache::alloc`].
//!
//! ## Where the unsafe code is
//! Raw pointers are behind small types whose invariants are set up once, in an `unsafe`
//! constructor with a `# Safety` section, and relied on by safe methods:
//! * [`sheaf::SheafBox`] (`sheaf.rs`): an owned sheaf (`len`, `capacity`, `pop`, `push`,
//!   `take_batch`, `fill`); `MainSheaf` is a CPU's `main` slot (a `SheafBox` or the static
//!   empty sheaf) and `PerCpu::borrow` hands out a CPU's slots once at a time (a flag);
//! * `FreeObject` (`slabs.rs`): the token of an object nobody uses, what sheaves hold and slab
//!   free lists take back; made where an object leaves a slab's free list or a caller of an
//!   `unsafe` free gives it up;
//! * a slab's free list (`slabs.rs`: `Slab::freelist_pop`, `freelist_push`, `freelist_iter`):
//!   the hardened free pointers inside free objects, each link checked against the slab's
//!   object slots before it is followed, on a descriptor borrowed under the node lock;
//! * `OnCpu` and `Pinned` (`platform.rs`): proof that the context is pinned to a CPU, which
//!   `KmemCache::pcs` takes; `Exclusive` (`cache.rs`): the cache to oneself (destroy).
//!
//! The crate root denies `unsafe_code`. These files allow it, for the reasons given; every
//! other file has none, and `cache/sheaves.rs`, `cache/prefill.rs`, `cache/rcu_free.rs` and
//! `cache/shrink.rs` (the sheaf policy: refill, flush, barn trades, prefilled sheaves,
//! `kfree_rcu`, shrink) deny it again explicitly, since their parent module allows it:
//! * `sheaf.rs`: the sheaf header with its trailing pointer array behind `SheafBox` and
//!   `MainSheaf`, the shared static empty sheaf, the per-CPU slots;
//! * `slabs.rs`: slab descriptors and their intrusive lists (raw pointers followed under the
//!   node lock), the free-pointer codec and the free-list methods that read and write inside
//!   free objects, and `FreeObject`'s constructor;
//! * `head.rs`: the callback head's words, the intrusive [`HeadQueue`] and `container_of`, the
//!   one function that turns a head back into the structure embedding it;
//! * `name.rs`: [`CacheName`], a name borrowed for ever or a shared, counted copy (header and
//!   bytes in one allocation, freed by the last holder);
//! * `platform.rs`: the `unsafe trait Platform` and its `unsafe fn`s (page ownership, queued
//!   heads), `OnCpu`'s constructor and the boxed-closure convenience `Platform::queue_work`;
//! * `cache.rs`: the fast paths (per-CPU slots reached by byte offset, sheaf pop and push on
//!   raw pointers, to stay at 24 instructions), and the primitives listed in its docs: the
//!   per-CPU borrow, sheaf memory, zeroing, the `unsafe` free entry points; its children
//!   `cache/rcu_heads.rs` (the RCU heads and callbacks of sheaves and lone objects, which find
//!   their cache from their head) and `cache/bulk.rs` (bulk allocation's slots as tokens);
//!   its child `cache/info.rs` (the accessors) dereferences an alias's primary pointer;
//! * `cache/slabs.rs`: new slabs (descriptor, page owner, constructor, first free list),
//!   descriptors reached from raw list and page-owner pointers under the node lock, list
//!   membership, giving pages back; `cache/destroy.rs`: the list of caches being destroyed,
//!   linked through the caches; `cache/debug.rs`: red zones,
//!   poison, padding and tracking records, bytes inside objects and slabs;
//! * `registry/owned.rs` (not `registry.rs`, whose list, merging and listings are safe code):
//!   `CachePtr`, the allocator's ownership of its boxed caches, with the invariant that a cache
//!   held by an allocator is valid while the allocator is borrowed; the handles' `unsafe`
//!   escape hatches; the `unsafe fn kmem_cache_destroy` (with the work item and RCU callback it
//!   leaves behind) and the allocator's `Drop`, the only two places that free a cache;
//!   `kmalloc.rs`: large blocks (and their RCU record), `kfree`, `krealloc`'s copy;
//! * `free_q.rs`: the free queue's nodes, written into and read from queued objects, and the
//!   `unsafe fn kmem_free_q_add` (the caller gives the object up);
//! * `host.rs` (and the loom test platform): the host's pages, page records and CPU ids;
//! * `attrs.rs`: `container_of` from a cache's kobject to the cache, and adding the kobject
//!   to the tree with the pointer its release will free the cache through.
//!
//! Every `unsafe` block has a `// SAFETY:` comment. Freeing is `unsafe` by nature (the caller
//! promises the object is no longer used).
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
//! let obj = cache.alloc(Gfp::KERNEL).expect("out of memory"); // `cache` is a KmemCacheHandle
//! // SAFETY: `obj` came from `cache` and is not used afterwards.
//! unsafe { cache.free(obj).unwrap() };
//! let buf = slab.kmalloc(100, Gfp::KERNEL).unwrap(); // from kmalloc-128
//! assert_eq!(slab.ksize(buf), Ok(128));
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
//! * Every free checks its object's cache and boundary by default (Linux: the cache only, with
//!   `CONFIG_SLAB_FREELIST_HARDENED`); see above.
//! * Under `SLAB_CONSISTENCY_CHECKS` the objects of a slab being freed are checked, as in Linux,
//!   but a slab with a corrupted object is kept, the object isolated (Linux reports and frees
//!   it): memory written after its free goes neither back to the pages nor to a new user.
//! * [`KmemCache::validate`] does not flush the CPUs' sheaves first (Linux's does).
//! * `kmem_cache_shrink` flushes every CPU's sheaves on that CPU where the platform can run
//!   code there ([`Platform::on_each_cpu`]: the kernel can, with a pinned thread per CPU, like
//!   Linux's per-CPU work); on the host only the calling CPU's sheaves are flushed.
//! * `SLAB_TYPESAFE_BY_RCU` keeps the free pointer outside the object, prevents merging and
//!   gives slab pages back through [`Platform::free_pages_rcu`] (after a grace period).
//!   `kfree_rcu` collects objects in a per-CPU `rcu_free` sheaf handed to
//!   [`Platform::call_rcu_head`] when full ([`cache::rcu_free`]); a partly filled one is handed to
//!   RCU by `kmem_cache_shrink` (of the CPUs it flushes) and by destroy, as in Linux (which
//!   also flushes them in `kvfree_rcu_barrier`, not in Sheaf yet).
//!
//! * The deferred free queue ([`free_q`], the 2019 RFC `kmem_free_q`, never merged in Linux)
//!   keeps `first` and `last` in its head instead of `lastp` (the head must move), refuses
//!   objects under 16 bytes or of caches with a constructor (the RFC only warns), and
//!   refuses an object queued twice instead of corrupting the list.
//!
//! ## What safe code cannot do, and which frees are checked
//! * **A static cache borrows its allocator.** [`SlabAllocator::kmem_cache_setup`] builds the
//!   cache in `'static` storage, but the reference it returns borrows the allocator, like the
//!   [`KmemCacheHandle`] of `kmem_cache_create`: dropping the allocator drops every cache it
//!   set up in place (sheaves, barns, statistics and the owner's pin go; the storage stays), so
//!   a reference that outlived it would read freed memory. Of the three ways out (an allocator
//!   that cannot be dropped while static caches exist, a reference tied to the allocator, a
//!   drop that leaves the static storage valid) this is the one the borrow checker enforces
//!   with no cost: the kernel's allocator is a `static`, so there the reference is `'static`
//!   anyway, and a host test can still drop its allocator (a `compile_fail` example on
//!   `kmem_cache_setup` shows the refusal). Leaving a dropped allocator's caches valid would
//!   leak their memory and leave aliases pointing at freed primaries. Code that reaches a
//!   static cache through its storage ([`KmemCacheStatic::get`], `unsafe`) promises the same.
//! * **Destroy refuses while a prefilled sheaf is out** ([`PrefilledSheaf`]): its objects, and
//!   a regular sheaf itself (an object of the cache's sheaf cache), belong to the cache, so
//!   [`DestroyError::ObjectsRemaining`] lists them and the cache is kept, as Linux keeps a
//!   cache whose objects remain. A prefilled sheaf names its cache by a serial number never
//!   reused, not by address.
//! * **Frees are checked by default** (`SLAB_HARDENED_FREE`, which the boot option
//!   `slab_nohardened`, [`SlabOptions::nohardened`], turns off): `kmem_cache_free` checks on its
//!   fast path that the page owner is a slab of the cache and the address an object boundary,
//!   `kfree` the boundary (its cache is the slab's), for 18 and 7 instructions per
//!   alloc+free pair on the host; a bad free is reported and dropped. `kfree_rcu` checks its
//!   pointer and the object freed last before the object waits for its grace period.
//!
//! ## Embedded heads: RCU and destroy allocate nothing
//! As in Linux, what the allocator hands to RCU or to a work queue carries its own
//! [`CallbackHead`] (`struct callback_head`, of which [`RcuHead`] is an alias), which the
//! [`Platform`] links without allocating ([`Platform::call_rcu_head`],
//! [`Platform::queue_work_head`]): a sheaf's header holds an `rcu_head` (in a union with the
//! words a sheaf in use needs, like Linux's `struct slab_sheaf`), and a cache holds
//! `async_destroy_work`, the work item of the asynchronous destroy, an `rcu_head` for the late
//! release of a `SLAB_TYPESAFE_BY_RCU` cache, and its link on the list of caches being
//! destroyed. The head's function finds its structure with [`head::container_of`]. So freeing
//! a full `rcu_free` sheaf and destroying a cache with objects in `kfree_rcu` flight work when
//! memory is exhausted (`tests/no_alloc.rs` counts the allocations: none). Only `kfree_rcu`
//! without a head of an object no sheaf takes needs memory, for a callback record.
//!
//! ## Testing and measuring
//! Test layout (the same in every host crate of the kernel): unit tests sit in a child module
//! `tests` in a file of its own (`src/layout/tests.rs`, `src/sysfs/tests.rs`), the model-based
//! property test in `tests/model.rs` with the other integration tests beside it, and every loom
//! test in `src/loom_tests.rs`.
//!
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
// Unsafe code only where the crate's raw memory lives (see "Where the unsafe code is").
#![deny(unsafe_code)]

extern crate alloc;
// The host platform needs std: it is built for every target that has one (not for the
// kernel's `x86_64-unknown-none`), so no feature has to be switched on, and none can leak into
// the kernel build through cargo's feature unification.
#[cfg(any(not(target_os = "none"), all(test, loom)))]
extern crate std;

// The layers, bottom to top, are listed in the crate docs ("Reading order"); rustfmt keeps
// the declarations alphabetical.
#[allow(unsafe_code)]
mod attrs;
pub mod barn;
pub mod base;
#[allow(unsafe_code)]
pub mod cache;
pub mod flags;
#[allow(unsafe_code)]
pub mod free_q;
#[allow(unsafe_code)]
pub mod head;
#[allow(unsafe_code)]
#[cfg(not(target_os = "none"))]
pub mod host;
#[allow(unsafe_code)]
pub mod kmalloc;
pub mod layout;
#[allow(unsafe_code)]
#[cfg(all(test, loom))]
mod loom_tests;
#[allow(unsafe_code)]
pub mod name;
#[allow(unsafe_code)]
pub mod platform;
pub mod registry;
pub mod report;
#[allow(unsafe_code)]
pub mod sheaf;
#[allow(unsafe_code)]
pub mod slabs;
pub mod stats;
pub mod sync;
pub mod sysfs;

pub use base::{Gfp, PAGE_SIZE};
pub use cache::{CpuSheaves, KmemCache, SlabError, SlabInfo};
pub use flags::{Ctor, KmemCacheArgs, SlabFlags};
pub use free_q::{FREE_Q_NODE_SIZE, FreeUpResult, KmemFreeQHead};
pub use head::{CallbackFunc, CallbackHead, HeadQueue, RcuFunc, RcuHead};
pub use name::CacheName;
pub use platform::Platform;
pub use registry::{
    CacheState, DestroyError, KmemCacheHandle, KmemCacheStatic, SlabAllocator, SlabOptions,
};
pub use report::{SlabErrorKind, SlabReport, Track, ValidateReport};
pub use sheaf::{OutOfMemory, PrefilledSheaf, RefillError};
pub use slabs::Slab;
pub use stats::Stat;
