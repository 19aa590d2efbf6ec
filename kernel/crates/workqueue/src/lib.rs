//! Concurrency-managed workqueues (Linux's `kernel/workqueue.c`): the logic of the pending
//! bit, worker pools, flush and cancel, as a `no_std` crate that the kernel plugs threads
//! into and the host tests drive deterministically.
//!
//! # What a workqueue is
//!
//! Code that cannot (or should not) do something right now, an interrupt handler, a timer, a
//! path holding a spin lock, hands it to a *work item*: a function plus a small
//! [`WorkStruct`] embedded in the caller's structure. `queue_work(wq, &item)` puts the item
//! on a queue, and a kernel thread, a *worker* (`kworker/0:1` in `ps`), runs the function
//! later, in process context, where it may sleep and take mutexes.
//!
//! ```text
//!  irq handler:  queue_work(wq, &dev.work) ──► pool of CPU 0: [dev.work, ...]
//!                                                      │
//!  kworker/0:1:                  ◄── takes the first ──┘   (dev.work.func)(&dev.work)
//! ```
//!
//! Queueing never allocates: the item is the queue node (see [`WorkList`] for how this crate
//! keeps that property without `unsafe`).
//!
//! # The pending bit
//!
//! Bit 0 of the item's data word, `PENDING`, says "queued and not started yet". Queueing is a
//! test-and-set of it: the call that sets it queues the item and returns `true`; a call that
//! finds it set does nothing and returns `false`: the pending instance will run after this
//! call anyway, which is all the caller needs ("make sure the function runs after now").
//! Queue an item ten times before a worker gets to it, and it runs once.
//!
//! The worker clears PENDING *just before* the function runs, so the function (or anyone else)
//! may queue the item again while it runs: that new instance runs after the current one.
//!
//! ```text
//!  idle ──queue──► PENDING ──worker takes it──► running ──returns──► idle
//!                     ▲   (queue: false)           │ (queue: true, a new PENDING instance)
//!                     └────────────────────────────┘
//! ```
//!
//! A work item is *non-reentrant*: at most one instance runs at a time, system-wide. An item
//! queued while it runs on CPU 0's pool goes to CPU 0's pool whatever CPU asks, and a worker
//! that dequeues it while another worker of that pool still runs it sets it aside (the pool's
//! *held* list, Linux's "collision") until that instance returns.
//!
//! Every successful queueing also increments the item's sequence number ([`WorkStruct::seq`])
//! in the same atomic word, which names instances for `flush_work`.
//!
//! # Pools and concurrency management
//!
//! Items run in *worker pools*: two per CPU (normal and `WQ_HIGHPRI`, threads
//! `kworker/N:M` and `kworker/N:MH`) and unbound ones (`kworker/uP:M`) for `WQ_UNBOUND`
//! queues. A workqueue is only a front: a name, flags, `max_active` (at most that many of its
//! items active per pool, the others wait on an *inactive* list) and flush bookkeeping; its
//! items run in the shared pools (Linux's `pool_workqueue` is the link between the two).
//!
//! A per-CPU pool runs **one worker at a time while its items do not sleep**, and starts
//! another the moment the running one blocks: the scheduler reports the block
//! ([`Workqueues::worker_sleeping`], Linux's `wq_worker_sleeping`), and if no worker of the
//! pool is running any more and work is pending, the pool wakes an idle worker or asks for a
//! new one ([`Action::CreateWorker`]). So an item that sleeps never stalls the items queued
//! behind it, and CPU-bound items are not interleaved by needless context switches. Workers
//! idle for the idle timeout (Linux's `IDLE_WORKER_TIMEOUT`, 5 minutes) beyond the two a pool
//! keeps are retired.
//!
//! # The rescuer
//!
//! Creating a worker allocates (a thread, a stack). When memory is short, that can fail, and
//! if the item that would free memory waits for a new worker, the system deadlocks. A queue
//! that may be needed for memory reclaim is created with `WQ_MEM_RECLAIM` and gets a
//! *rescuer* thread at creation. When a pool fails to create a worker
//! ([`Workqueues::worker_create_failed`]) it sends a *mayday* ([`Action::Mayday`]), and the
//! rescuers take their own queue's items from that pool ([`Workqueues::rescuer_next`]),
//! guaranteeing each reclaim queue forward progress with one thread.
//!
//! # Flush and cancel
//!
//! - [`flush_work`](Workqueues::flush_work): wait until the instance pending or running now
//!   has finished (by sequence number: later queueings are not waited for).
//! - [`cancel_work_sync`](Workqueues::cancel_work_sync): set the CANCELING bit (from now on
//!   queueing the item fails, also from its own function), steal the pending instance off its
//!   list (`true` if there was one: it will never run), then wait for the running instance.
//!   Between a queuer's test-and-set and its taking the lock the item is pending but on no
//!   list ("in transit"): the canceler waits for the queuer to finish, as Linux's
//!   `try_to_grab_pending` returns `-EAGAIN`.
//! - [`flush_workqueue`](Workqueues::flush_workqueue): every item gets the queue's current
//!   *flush color*; a flush moves new items to the next color and waits until no item of an
//!   older color is in flight. [`drain_workqueue`](Workqueues::drain_workqueue) flushes until
//!   the queue is empty, refusing new items except from its own running items;
//!   [`destroy_workqueue`](Workqueues::destroy_workqueue) drains, then refuses everything.
//! - Delayed work: see [`delayed`](crate::Workqueues::queue_delayed_work_on).
//!
//! # What the kernel provides
//!
//! One [`Workqueues`] for the system, built with the number of CPUs, the idle timeout and a
//! `this_cpu` function. Every decision comes back as [`Actions`] for the kernel to carry out:
//!
//! - a [`WorkItem`] handle type (`&'static T` or `Arc<T>` of a structure embedding a
//!   [`WorkStruct`], whose function it knows) and a [`WorkList`] (its intrusive list);
//! - worker threads: on [`Action::CreateWorker`] create one, register it with
//!   [`Workqueues::worker_created`] (name: [`Workqueues::worker_name`]) and loop:
//!   [`Workqueues::worker_next`] → run the job's function → [`Workqueues::worker_done`];
//!   sleep on [`Next::Idle`] until [`Action::WakeWorker`]; exit on [`Next::Exit`];
//! - scheduler hooks: [`Workqueues::worker_sleeping`] / [`Workqueues::worker_waking`] when a
//!   worker blocks inside an item and wakes;
//! - timers: [`Action::ArmIdleTimer`] → [`Workqueues::idle_timeout`], [`Action::ArmTimer`] →
//!   [`Workqueues::delayed_work_timer_fn`];
//! - a rescuer thread per `WQ_MEM_RECLAIM` queue looping on [`Workqueues::rescuer_next`];
//! - chained work: a queueing made from inside a running item goes through
//!   [`Workqueues::queue_work_from`] / [`Workqueues::queue_work_on_from`] with the job the
//!   calling worker or rescuer executes, so that a draining queue still takes it;
//! - a `wait` function for the calls that wait (sleep on a wait queue that the kernel wakes
//!   after every `worker_done`).
//!
//! All state sits behind **one lock** (Linux has a lock per pool and a mutex per workqueue):
//! with a handful of CPUs it does not matter, and it makes the state machine easy to follow
//! and to model-check. The pending bit is the only state touched without it.
//!
//! # Testing
//!
//! Unit tests sit in `src/<module>/tests.rs`, a model-based property test in
//! `tests/model.rs` (random queue, cancel, flush, worker steps and sleeps against a simple
//! reference model), a stress test with `std` threads as workers in `tests/stress.rs`, and
//! loom models of queue vs cancel, flush vs re-queue and the pending bit in
//! `src/loom_tests.rs`:
//!
//! ```text
//! cargo test -p sheaf-workqueue
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p sheaf-workqueue --release loom
//! ```
#![no_std]
#![deny(missing_docs)]
// Pure logic over atomics and one lock: no unsafe code at all.
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod action;
mod delayed;
mod dump;
mod flush;
mod list;
#[cfg(all(test, loom))]
mod loom_tests;
mod pool;
pub mod sync;
mod work;
mod wq;

pub use action::{Action, Actions, Executor, Job, Next, PoolId, WorkerId, WqFlags, WqId};
pub use dump::{PoolStats, WqStats};
pub use list::{VecList, WorkList};
pub use pool::{MIN_IDLE, WorkerState};
pub use work::{CANCELING, PENDING, WorkItem, WorkStruct, same_work};
pub use wq::{
    AllocError, IDLE_WORKER_TIMEOUT_SECS, NR_COLORS, SYSTEM_HIGHPRI_WQ, SYSTEM_LONG_WQ,
    SYSTEM_UNBOUND_WQ, SYSTEM_WQ, WQ_DFL_ACTIVE, WQ_MAX_ACTIVE, WorkerName, Workqueues,
};
