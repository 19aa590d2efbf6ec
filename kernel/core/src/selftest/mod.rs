//! The core's self-tests that need raw memory (deliberate corruption, raw frees, memory
//! exhaustion), built only in the test kernel (the `ktest` feature). The shell's benchmarks and
//! workloads are the `sheaf-bench` crate's (`kernel/bench`); tests that need the services are
//! the services' (`kernel/src/selftest`).
//!
//! - `kfree_rcu`: `kfree_rcu` of 100,000 objects from every CPU, `kvfree_rcu_barrier`, the
//!   asynchronous destroy, and the slab allocator's RCU and destroy paths while memory is
//!   exhausted (a full `rcu_free` sheaf, a destroy with objects in flight, `SLAB_TYPESAFE_BY_RCU`
//!   slabs, a large block, `kfree_rcu` without a head or memory);
//! - `module_slab`: the C module `slabtest` runs slub_kunit-style cases of every slab export
//!   (bad arguments and deliberate corruption of debug caches included), and the kernel goes on;
//! - `lab01`: Lab 01's graded tests, which measure what the student predicted in
//!   `lab01/predictions.rs` (`cargo lab grade 01`, docs/labs/);
//! - `lab_free_q`: the deferred free queue lab's graded tests, which queue, free up and corrupt
//!   queues of a private cache's objects through the student's `free_q.rs`
//!   (`cargo lab grade freeq`);
//! - `lab_rcu`: the RCU lab's graded tests: grace periods of a private `rcu::Rcu` driven by
//!   hand, `synchronize_rcu` against a reader on another CPU, `call_rcu` on every CPU, and the
//!   slab allocator's asynchronous destroy (`cargo lab grade rcu`);
//! - `lab_modules`: the module loader lab's graded tests, which load the example modules and
//!   malformed copies of them through the student's relocate.rs and resolve.rs
//!   (`cargo lab grade modules`);
//! - `names`: cache names kept when in the image's read-only part, copied otherwise;
//! - `kobject`: kobject releases from every CPU, misuse reports, `/sys` visibility;
//! - `sysfs_slab`: `/sys/kernel/slab` and `/proc/slabinfo` against the allocator's numbers;
//! - `static_setup`: static caches in `.data`, set up in place, self-named, refused twice;
//! - `primary_cache`: static and dynamic caches merged in every creation order, and a storm
//!   on every CPU through an alias and its primary;
//! - `rcu`: `call_rcu` with an embedded `rcu_head` while memory is exhausted, and the helpers
//!   that exhaust memory ([`exhaust`], [`exhaust_all_cpus`], after [`quiesce`]), which the
//!   services' and the benchmarks' tests use too;
//! - `oom`: threads while memory is exhausted: sleeping on and waking from a wait queue
//!   allocates nothing, and `spawn` fails with an error instead of panicking;
//! - `module_static`: a module's static cache (`KMEM_CACHE_SETUP`) destroyed with objects in
//!   `kfree_rcu` flight: the module leaves at once, its memory goes only after the destroy;
//! - `module_debug`: what debugging needs of the loaded modules: the owner of an address
//!   (the oops's module annotation) and GDB's table `SHEAF_MODULES`;
//! - `module_rcuwq`: the `rcuwq` example module, which calls every RCU, workqueue, free-queue,
//!   time and CPU export, passes each of its cases, and loads and unloads 100 times with
//!   nothing left;
//! - `slab`: on-target tests of the slab allocator on real CPUs and pages: debug detections,
//!   leak reports, out of memory, shrink, allocation in interrupt handlers, `kfree_rcu`.

mod dmesg;
mod kfree_rcu;
mod kobject;
mod lab01;
mod lab_free_q;
mod lab_modules;
mod lab_rcu;
mod lab_sheaves;
mod module;
mod module_debug;
mod module_rcuwq;
mod module_slab;
mod module_static;
mod names;
mod oom;
mod primary_cache;
mod rcu;
mod slab;
mod static_setup;
mod sysfs_slab;
mod track;

pub use rcu::{Exhausted, exhaust, exhaust_all_cpus, quiesce};
