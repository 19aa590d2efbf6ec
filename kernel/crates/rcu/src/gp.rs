//! The grace-period machinery: [`Rcu`], its per-CPU callback lists and quiescent-state flags.
//!
//! # Locking
//!
//! - `Rcu::state` (one spin lock, Linux's `rcu_node` lock of a one-node tree) guards the GP
//!   sequence number, the online mask, the mask of CPUs that still owe a QS and the GP the
//!   callbacks need. The atomic mirrors of the sequence number (`Rcu::gp_seq`) and of the QS
//!   mask (the per-CPU `qs_needed` flags) are written only with it held, and read without it.
//!   Code holding the lock reads the locked copy, never the mirror (besides being simpler,
//!   this keeps loom's race detection exact: loom tracks only the last access of an atomic,
//!   so a load by the writer would hide an earlier load by another thread, loom issue #166).
//! - Each CPU's callback list has its own lock. `call_rcu` nests it inside `state` (so that
//!   snapshots enter each list in increasing order and every list is sorted by snapshot); the
//!   other list operations take only the list lock. Order: `state`, then a list; never both
//!   the other way round.
//!
//! # Memory ordering
//!
//! The relaxed load of `qs_needed` in the QS fast path is only a hint: a stale `false` skips
//! one QS (the next one is reported), a stale `true` finds the mask bit clear under the lock.
//! The facts that matter are read under `state`, whose lock/unlock order all QS reports and
//! GP starts. The report that ends a GP stores the new `gp_seq` with `Release` after every
//! report of that GP, and readers of `gp_seq` load it with `Acquire`: whoever sees a callback
//! ready also sees everything the CPUs did before their QS (the readers' last accesses to the
//! old object), so the callback may free it.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::Callback;
use crate::cblist::{CbList, VecList};
use crate::seq::{
    rcu_seq_completed, rcu_seq_done, rcu_seq_end, rcu_seq_snap, rcu_seq_start, rcu_seq_state,
};
use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering};

// The largest number of CPUs an [`Rcu`] handles: the kernel's limit (the `consts` crate).
pub use consts::MAX_CPUS;
const _: () = assert!(MAX_CPUS <= 64, "CPU masks are u64");

/// The state guarded by `Rcu::state`.
struct GpState {
    /// The grace-period sequence number; `Rcu::gp_seq` is its lock-free mirror.
    gp_seq: u64,
    /// CPUs that GPs wait for (set by [`Rcu::cpu_online`]).
    online: u64,
    /// CPUs that still owe a QS to the GP in progress (Linux's `rcu_node::qsmask`); 0 when idle.
    qsmask: u64,
    /// The largest snapshot any queued callback waits for (Linux's `gp_seq_needed`).
    gp_seq_needed: u64,
}

/// One CPU's data (Linux's `rcu_data`), on its own cache line: the QS flag is read on every
/// context switch of its CPU and must not share a line with another CPU's.
#[repr(align(64))]
struct PerCpu<L> {
    /// Mirror of this CPU's bit of `GpState::qsmask`, readable without the lock: does this CPU
    /// owe a QS? (Linux's `rcu_data::core_needs_qs`.)
    qs_needed: AtomicBool,
    /// Queued callbacks with the `gp_seq` value each waits for, oldest first; the snapshots
    /// never decrease along the list.
    cblist: Mutex<L>,
}

/// Classic RCU for up to [`MAX_CPUS`] CPUs: grace-period detection and per-CPU callback lists
/// of type `L` ([`VecList`] of boxed closures by default; see [`crate::cblist`]).
///
/// See the [crate documentation](crate) for how a kernel uses it. Every method takes the CPU
/// it acts for and panics if that number is not below the `nr_cpus` given to [`Rcu::new`].
pub struct Rcu<L: CbList = VecList<Callback>> {
    /// The grace-period sequence number (see [`crate::seq`]), for lock-free readers: a copy
    /// of `GpState::gp_seq`, stored (never loaded) under `state`.
    gp_seq: AtomicU64,
    /// Online and QS masks, GP requests.
    state: Mutex<GpState>,
    /// Per-CPU flags and callback lists, indexed by CPU number.
    cpus: Box<[PerCpu<L>]>,
}

impl Rcu {
    /// Creates the RCU state for CPUs `0..nr_cpus`, all offline, no GP in progress
    /// (`gp_seq == 0`), with lists of boxed closures ([`VecList`]).
    ///
    /// # Panics
    ///
    /// If `nr_cpus` is 0 or above [`MAX_CPUS`].
    pub fn new(nr_cpus: usize) -> Self {
        Self::with_lists(nr_cpus)
    }
}

impl<L: CbList + Default> Rcu<L> {
    /// Like [`Rcu::new`], with callback lists of type `L` (the kernel's intrusive list).
    ///
    /// # Panics
    ///
    /// If `nr_cpus` is 0 or above [`MAX_CPUS`].
    pub fn with_lists(nr_cpus: usize) -> Self {
        assert!(
            (1..=MAX_CPUS).contains(&nr_cpus),
            "rcu: {nr_cpus} CPUs (1 to {MAX_CPUS} supported)"
        );
        let cpus = (0..nr_cpus)
            .map(|_| PerCpu {
                qs_needed: AtomicBool::new(false),
                cblist: Mutex::new(L::default()),
            })
            .collect();
        Self {
            gp_seq: AtomicU64::new(0),
            state: Mutex::new(GpState {
                gp_seq: 0,
                online: 0,
                qsmask: 0,
                gp_seq_needed: 0,
            }),
            cpus,
        }
    }
}

impl<L: CbList> Rcu<L> {
    /// The number of CPUs this instance was created for.
    pub fn nr_cpus(&self) -> usize {
        self.cpus.len()
    }

    /// Marks `cpu` online: every GP that starts from now on waits for a QS from it. (The GP
    /// in progress, if any, does not: `cpu` ran no read section when it started.)
    pub fn cpu_online(&self, cpu: usize) {
        let bit = self.bit(cpu);
        self.state.lock().online |= bit;
    }

    /// The grace-period sequence number: even when idle, odd while a GP is in progress.
    pub fn gp_seq(&self) -> u64 {
        self.gp_seq.load(Ordering::Acquire)
    }

    /// Is a grace period in progress?
    pub fn gp_in_progress(&self) -> bool {
        rcu_seq_state(self.gp_seq())
    }

    /// The number of grace periods completed so far (statistics): `gp_seq / 2`.
    pub fn completed_gps(&self) -> u64 {
        rcu_seq_completed(self.gp_seq())
    }

    /// Queues `cb` on `cpu`'s callback list, to become ready after a whole GP that starts
    /// after this call (once `gp_seq >= rcu_seq_snap(gp_seq now)`). Starts that GP if no GP
    /// is in progress; otherwise the GP in progress, when it ends, starts the next one.
    ///
    /// Any CPU may queue on any CPU's list (`rcu_barrier` queues one callback on each).
    /// Never allocates unless the list type does ([`VecList`] may; the kernel's intrusive list
    /// does not).
    pub fn call_rcu(&self, cpu: usize, cb: L::Cb) {
        let pcpu = &self.cpus[cpu];
        let mut state = self.state.lock();
        // Under `state`, the counter cannot move: the snapshot is exact.
        let snap = rcu_seq_snap(state.gp_seq);
        pcpu.cblist.lock().push(snap, cb);
        if state.gp_seq_needed < snap {
            state.gp_seq_needed = snap;
        }
        self.start_gp_if_needed(&mut state);
    }

    /// Reports a quiescent state of `cpu`: the kernel calls it where `cpu` is certainly
    /// outside any read section (context switch, idle loop, tick from preemptible code).
    ///
    /// Costs one relaxed load when `cpu` owes no QS; takes the GP lock only when it does. The
    /// report that completes a GP ends it, and starts the next one if callbacks need it.
    pub fn quiescent_state(&self, cpu: usize) {
        self.report_qs(cpu);
    }

    /// Like [`Rcu::quiescent_state`], and says whether this report counted: `true` if `cpu`
    /// owed a QS to the GP in progress and this call paid it.
    pub fn report_qs(&self, cpu: usize) -> bool {
        let pcpu = &self.cpus[cpu];
        // Fast path: nothing owed (or the GP start is not visible here yet, and a later QS
        // will count instead).
        if !pcpu.qs_needed.load(Ordering::Relaxed) {
            return false;
        }
        // LAB(rcu) BEGIN
        // LAB-HINT: Linux's `rcu_report_qs_rdp` and `rcu_report_qs_rnp` (tree.c).
        // LAB-HINT: `cpu` owes a QS: under `self.state`, if its bit of `qsmask` is still set,
        // LAB-HINT: clear its `qs_needed` flag and the bit; the report that empties `qsmask`
        // LAB-HINT: ends the GP (`end_gp`) and starts the next one if callbacks need it
        // LAB-HINT: (`start_gp_if_needed`). Return whether this report counted. Read the
        // LAB-HINT: module's "Locking" and "Memory ordering" notes first; docs/rcu.md.
        // LAB-STUB: // Until then no report counts: a GP in progress never ends.
        // LAB-STUB: let _ = (pcpu, self.bit(cpu));
        // LAB-STUB: false
        let bit = self.bit(cpu);
        let mut state = self.state.lock();
        if state.qsmask & bit == 0 {
            // Defensive: only this CPU clears its flag, together with its bit, so a flag it
            // saw set still has its bit set. (Nothing is owed: not a counted QS.)
            debug_assert!(!pcpu.qs_needed.load(Ordering::Relaxed));
            return false;
        }
        pcpu.qs_needed.store(false, Ordering::Relaxed);
        state.qsmask &= !bit;
        if state.qsmask == 0 {
            self.end_gp(&mut state);
            self.start_gp_if_needed(&mut state);
        }
        true
        // LAB(rcu) END
    }

    /// Does `cpu` owe a QS to the GP in progress? (Read without the lock: may lag behind a GP
    /// start on another CPU.)
    pub fn qs_needed(&self, cpu: usize) -> bool {
        self.cpus[cpu].qs_needed.load(Ordering::Relaxed)
    }

    /// Does `cpu`'s list hold a callback whose grace period has elapsed?
    pub fn has_ready_callbacks(&self, cpu: usize) -> bool {
        self.ready_callbacks(cpu) > 0
    }

    /// The number of ready callbacks on `cpu`'s list (those [`Rcu::take_ready_callbacks`]
    /// would return now).
    pub fn ready_callbacks(&self, cpu: usize) -> usize {
        self.cpus[cpu].cblist.lock().ready_len(self.gp_seq())
    }

    /// Removes the oldest callback of `cpu`'s list if it is ready. The caller runs it outside
    /// any lock; calling this until it returns `None` runs the ready callbacks in order,
    /// without allocating (Linux's `rcu_do_batch` takes them one by one too).
    pub fn pop_ready_callback(&self, cpu: usize) -> Option<L::Cb> {
        let gp_seq = self.gp_seq();
        self.cpus[cpu].cblist.lock().pop_ready(gp_seq)
    }

    /// Removes the ready callbacks from `cpu`'s list and returns them, oldest first (the
    /// returned `Vec` allocates: the kernel uses [`Rcu::pop_ready_callback`]). The caller runs
    /// them in that order, outside any lock.
    pub fn take_ready_callbacks(&self, cpu: usize) -> Vec<L::Cb> {
        let gp_seq = self.gp_seq();
        let mut list = self.cpus[cpu].cblist.lock();
        core::iter::from_fn(|| list.pop_ready(gp_seq)).collect()
    }

    /// The number of callbacks queued on `cpu`'s list, ready or not.
    pub fn pending_callbacks(&self, cpu: usize) -> usize {
        self.cpus[cpu].cblist.lock().len()
    }

    /// The mask bit of `cpu` (panics if `cpu` is out of range).
    fn bit(&self, cpu: usize) -> u64 {
        assert!(cpu < self.cpus.len(), "rcu: no CPU {cpu}");
        1 << cpu
    }

    /// Starts GPs while callbacks need one and none is in progress. A GP with no CPU online
    /// ends at once (nobody can be reading), hence the loop.
    fn start_gp_if_needed(&self, state: &mut GpState) {
        // LAB(rcu) BEGIN
        // LAB-HINT: Linux's `rcu_gp_init` and `rcu_start_this_gp` (tree.c). Nothing
        // LAB-HINT: to do while a GP is in progress or when `gp_seq_needed` is already done
        // LAB-HINT: (`rcu_seq_state`, `rcu_seq_done` in seq.rs). Else start one: advance the
        // LAB-HINT: locked `gp_seq` (`rcu_seq_start`), publish it in the atomic mirror
        // LAB-HINT: `self.gp_seq` (Release), make every online CPU owe a QS (`qsmask` and each
        // LAB-HINT: one's `qs_needed` flag). A GP no CPU is online for ends at once
        // LAB-HINT: (`end_gp`, which calls `rcu_seq_end`); then look again: callbacks may
        // LAB-HINT: need one more.
        // LAB-STUB: // Until then no GP ever starts: callbacks wait for ever (nothing is freed).
        // LAB-STUB: let _ = (state.qsmask, rcu_seq_start, rcu_seq_done, Self::end_gp);
        loop {
            if rcu_seq_state(state.gp_seq) || rcu_seq_done(state.gp_seq, state.gp_seq_needed) {
                return;
            }
            state.gp_seq = rcu_seq_start(state.gp_seq);
            // Release: pairs with the acquire loads of `gp_seq`; the flags are published by
            // the lock (the slow path rechecks under it).
            self.gp_seq.store(state.gp_seq, Ordering::Release);
            state.qsmask = state.online;
            let mut mask = state.online;
            while mask != 0 {
                let cpu = mask.trailing_zeros() as usize;
                self.cpus[cpu].qs_needed.store(true, Ordering::Relaxed);
                mask &= mask - 1;
            }
            if state.qsmask != 0 {
                return;
            }
            self.end_gp(state);
        }
        // LAB(rcu) END
    }

    /// Ends the GP in progress (every CPU it waited for has reported).
    fn end_gp(&self, state: &mut GpState) {
        debug_assert_eq!(state.qsmask, 0);
        state.gp_seq = rcu_seq_end(state.gp_seq);
        // Release: whoever sees the new value (and so runs the callbacks it makes ready) also
        // sees everything done before every QS report of this GP (ordered by the lock).
        self.gp_seq.store(state.gp_seq, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
