//! Classic (non-preemptible) RCU: the logic of grace periods, quiescent states and callbacks,
//! as a `no_std` crate that the kernel plugs in and the host tests.
//!
//! # What RCU is
//!
//! *Read-copy update* lets readers of a shared structure run without taking any lock or
//! writing any shared memory. A writer never changes an object readers may be looking at: it
//! makes a new version, *publishes* it with one atomic pointer store, and then must wait
//! before freeing the old version until every reader that could still hold a pointer to it
//! is done. RCU is the machinery that tells the writer when that moment has come.
//!
//! ```text
//!  reader on CPU 1:   [--- read section: p = ptr; use *p ---]
//!  writer on CPU 0:        ptr = new; call_rcu(free old)  ...........  free(old) runs
//!                                     |<------------ grace period ------------>|
//! ```
//!
//! In *classic* RCU (Linux's `CONFIG_PREEMPT_RCU=n`, "Tree/Tiny RCU") a read-side critical
//! section is simply a region with preemption disabled (`rcu_read_lock()` disables preemption,
//! `rcu_read_unlock()` enables it). Readers pay nothing else. That rule is the kernel's
//! business; this crate only needs the consequence below.
//!
//! # Grace periods and quiescent states
//!
//! A *quiescent state* (QS) of a CPU is a point where that CPU is certainly not inside a read
//! section. With non-preemptible readers, a context switch is one (a thread cannot switch out
//! while preemption is disabled), so is the idle loop, and so is the timer tick when the code
//! it interrupted had preemption enabled.
//!
//! A *grace period* (GP) is an interval during which every CPU passes through at least one QS.
//! Any read section running on a CPU when the GP starts has therefore ended by the time that
//! CPU reports its QS, so once all CPUs have reported, no reader that began before the GP can
//! still be running. A callback queued with [`Rcu::call_rcu`] runs only after a whole GP that
//! started after the call: by then every reader that could have seen the old object is gone.
//!
//! The GP in progress waits for the CPUs that were online when it started (a bit mask): each
//! owes one QS, and the report of the last one ends the GP. If callbacks still wait for a
//! later GP at that moment, the next GP starts at once.
//!
//! # The `gp_seq` arithmetic
//!
//! GPs are numbered with one counter, `gp_seq`, as Linux's `rcu_seq` (see [`seq`]): even means
//! idle, odd means a GP is in progress; starting a GP adds one (even -> odd), ending it adds one
//! (odd -> even). A callback queued when the counter reads `s` records
//! [`rcu_seq_snap(s)`](rcu_seq_snap) `= (s + 3) & !1` and is *ready* once `gp_seq` has reached
//! it: `s + 2` from idle (the next GP will do), `s + 3` while a GP runs (that GP started before
//! the call, so its end is not enough; the one after it is).
//!
//! # Plugging it into a kernel
//!
//! One [`Rcu`] is shared by all CPUs (`Rcu: Send + Sync`); every method takes the CPU number.
//! The kernel calls them with local interrupts disabled: the crate uses spin locks.
//!
//! - At boot, [`Rcu::new`] with the number of CPUs, and [`Rcu::cpu_online`] for each CPU as it
//!   comes up (from then on GPs wait for it).
//! - Report quiescent states with [`Rcu::quiescent_state`]: at every context switch, in the
//!   idle loop, and from the timer tick when the interrupted code had preemption enabled (it
//!   was not in a read section). When the CPU owes nothing this is one relaxed load and a
//!   return, so it is fine on every context switch.
//! - Run callbacks from a per-CPU kernel thread or softirq: when [`Rcu::has_ready_callbacks`]
//!   (checked, say, at the tick), wake it; it calls [`Rcu::pop_ready_callback`] until it
//!   returns `None` and runs each callback, in order, outside any lock, with interrupts enabled.
//! - Choose the callback lists ([`cblist`]): [`Rcu::new`] keeps boxed closures in a
//!   [`cblist::VecList`]; a kernel that must queue callbacks without allocating (Linux's
//!   `call_rcu` never allocates) implements [`cblist::CbList`] over `rcu_head`s embedded in its
//!   objects and creates the state with [`Rcu::with_lists`].
//! - `synchronize_rcu()`: `call_rcu` a callback that signals a completion, then sleep on it.
//! - `rcu_barrier()` (wait until every callback queued so far has run): queue one callback on
//!   each CPU's list (each list is FIFO, so it runs after everything queued there before) and
//!   wait until all of them have run.
//!
//! Until the first CPU is online, GPs wait for no one: a callback is ready as soon as it is
//! queued (there are no readers yet).
//!
//! # Testing
//!
//! Test layout (the same in every host crate of the kernel): unit tests sit in a child module
//! `tests` in a file of its own (`src/<module>/tests.rs`: `src/gp/tests.rs`, `src/seq/tests.rs`),
//! model-based property tests in `tests/model.rs` (other integration tests beside it), loom
//! tests in `src/loom_tests.rs`.
//!
//! `cargo test -p sheaf-rcu` runs the unit tests, a model-based property test
//! (`tests/model.rs`: random read sections, `call_rcu`, QS reports and callback runs on up to
//! four CPUs, checking that no callback becomes ready while a reader that predates it is still
//! open, and that all callbacks eventually run exactly once) and a stress test with threads as
//! CPUs (`tests/stress.rs`). The loom model tests run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p sheaf-rcu --release loom
//! ```
#![no_std]
#![deny(missing_docs)]
// Pure logic over atomics and locks: no unsafe code at all.
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cblist;
mod gp;
#[cfg(all(test, loom))]
mod loom_tests;
pub mod seq;
pub mod sync;

pub use gp::{MAX_CPUS, Rcu};
pub use seq::rcu_seq_snap;

/// A callback queued with [`Rcu::call_rcu`]: runs once, after a grace period (typically it
/// frees the old version of an object).
pub type Callback = alloc::boxed::Box<dyn FnOnce() + Send>;
