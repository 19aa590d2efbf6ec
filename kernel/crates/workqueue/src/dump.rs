//! The shell's `workqueues` command: every pool with its workers, every workqueue with its
//! pending and executed items (what Linux's `tools/workqueue/wq_dump.py` and
//! `wq_monitor.py` show), and the same numbers as data ([`PoolStats`], [`WqStats`]).

use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::action::{PoolId, WqFlags, WqId};
use crate::list::WorkList;
use crate::pool::WorkerState;
use crate::work::WorkItem;
use crate::wq::{WorkerName, Workqueues};

/// The numbers of one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// The pool.
    pub id: PoolId,
    /// Its CPU (`None`: unbound).
    pub cpu: Option<usize>,
    /// High priority?
    pub highpri: bool,
    /// Workers idle.
    pub idle: usize,
    /// Workers executing an item (running or blocked).
    pub busy: usize,
    /// Of the busy ones, those not sleeping (Linux's `nr_running`).
    pub running: usize,
    /// Active items waiting for a worker (the worklist).
    pub pending: usize,
    /// Items waiting for their previous instance to finish (the held list).
    pub held: usize,
    /// Items executed.
    pub executed: u64,
}

/// The numbers of one workqueue, summed over its pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WqStats {
    /// The workqueue.
    pub id: WqId,
    /// Its name.
    pub name: &'static str,
    /// Its flags.
    pub flags: WqFlags,
    /// Its `max_active`.
    pub max_active: usize,
    /// Active items: queued within `max_active`, or running.
    pub active: usize,
    /// Items waiting beyond `max_active`.
    pub inactive: usize,
    /// Items in flight (pending or running).
    pub in_flight: u32,
    /// Items executed.
    pub executed: u64,
    /// Destroyed?
    pub destroyed: bool,
    /// Being drained (`drain_workqueue` or `destroy_workqueue` in progress): only its own
    /// items may queue on it.
    pub draining: bool,
    /// The rescuer executes an item right now.
    pub rescuer_busy: bool,
}

impl<W: WorkItem, L: WorkList<W>> Workqueues<W, L> {
    /// The numbers of every pool.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let st = self.lock();
        st.pools
            .iter()
            .map(|p| {
                let busy = p.count(WorkerState::Running) + p.count(WorkerState::Blocked);
                PoolStats {
                    id: p.id,
                    cpu: p.cpu,
                    highpri: p.highpri,
                    idle: p.count(WorkerState::Idle),
                    busy,
                    running: p.nr_running,
                    pending: p.worklist.len(),
                    held: p.held.len(),
                    executed: p.executed,
                }
            })
            .collect()
    }

    /// The numbers of every workqueue (destroyed ones included).
    pub fn wq_stats(&self) -> Vec<WqStats> {
        let st = self.lock();
        st.wqs
            .iter()
            .enumerate()
            .map(|(i, q)| WqStats {
                id: WqId(i as u16),
                name: q.name,
                flags: q.flags,
                max_active: q.max_active,
                active: q.pwqs.iter().map(|p| p.nr_active).sum(),
                inactive: q.pwqs.iter().map(|p| p.inactive.len()).sum(),
                in_flight: q.in_flight(),
                executed: q.pwqs.iter().map(|p| p.executed).sum(),
                destroyed: q.destroyed,
                draining: q.nr_drainers > 0,
                rescuer_busy: q.rescuer_busy,
            })
            .collect()
    }

    /// Writes the `workqueues` report: the pools that have workers or items, each worker
    /// with its state and current item, then every live workqueue.
    pub fn dump(&self, out: &mut dyn Write) -> fmt::Result {
        let st = self.lock();
        writeln!(out, "pool  cpu  pri   idle busy running pending executed")?;
        for p in &st.pools {
            if p.workers.iter().all(Option::is_none) && p.worklist.is_empty() && p.executed == 0 {
                continue;
            }
            let busy = p.count(WorkerState::Running) + p.count(WorkerState::Blocked);
            let cpu = p.cpu.map_or(-1, |c| c as i64);
            writeln!(
                out,
                "{:<5} {:<4} {:<5} {:<4} {:<4} {:<7} {:<7} {}",
                p.id.0,
                cpu,
                if p.highpri { "high" } else { "norm" },
                p.count(WorkerState::Idle),
                busy,
                p.nr_running,
                p.worklist.len() + p.held.len(),
                p.executed
            )?;
            for (i, w) in p.workers.iter().enumerate() {
                let Some(w) = w else { continue };
                let name = WorkerName::new(p.cpu, p.id, i as u16, p.highpri);
                let state = match w.state {
                    WorkerState::Idle => "idle",
                    WorkerState::Running => "busy",
                    WorkerState::Blocked => "busy (sleeping)",
                    WorkerState::Retiring => "retiring",
                };
                write!(out, "  {name:<16} {state:<15} executed {:<6}", w.executed)?;
                if let Some(item) = &w.current {
                    out.write_str(" running ")?;
                    item.describe(out)?;
                }
                writeln!(out)?;
            }
            if !p.worklist.is_empty() {
                out.write_str("  pending:")?;
                let mut r = Ok(());
                p.worklist.for_each(&mut |w| {
                    r = r
                        .and_then(|_| out.write_str(" "))
                        .and_then(|_| w.describe(out));
                });
                r?;
                writeln!(out)?;
            }
        }
        writeln!(out)?;
        writeln!(
            out,
            "workqueue            flags            max  active inactive executed rescuer"
        )?;
        for q in st.wqs.iter().filter(|q| !q.destroyed) {
            let mut flags = heapless_flags(q.flags);
            if flags.is_empty() {
                flags = "percpu";
            }
            let rescuer = match (q.flags.contains(WqFlags::WQ_MEM_RECLAIM), q.rescuer_busy) {
                (false, _) => "-",
                (true, false) => "idle",
                (true, true) => "busy",
            };
            writeln!(
                out,
                "{:<20} {:<16} {:<4} {:<6} {:<8} {:<8} {}",
                q.name,
                flags,
                q.max_active,
                q.pwqs.iter().map(|p| p.nr_active).sum::<usize>(),
                q.pwqs.iter().map(|p| p.inactive.len()).sum::<usize>(),
                q.pwqs.iter().map(|p| p.executed).sum::<u64>(),
                rescuer
            )?;
        }
        Ok(())
    }
}

/// The flags as one short word per combination (no allocation).
fn heapless_flags(f: WqFlags) -> &'static str {
    let unbound = f.contains(WqFlags::WQ_UNBOUND);
    let hi = f.contains(WqFlags::WQ_HIGHPRI);
    let reclaim = f.contains(WqFlags::WQ_MEM_RECLAIM);
    match (unbound, hi, reclaim) {
        (false, false, false) => "",
        (false, false, true) => "reclaim",
        (false, true, false) => "highpri",
        (false, true, true) => "highpri,reclaim",
        (true, false, false) => "unbound",
        (true, false, true) => "unbound,reclaim",
        (true, true, false) => "unbound,highpri",
        (true, true, true) => "unbound,hi,reclaim",
    }
}
