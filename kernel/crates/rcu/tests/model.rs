//! Model-based property test: random read sections, `call_rcu`, QS reports and callback runs
//! on 1 to 4 CPUs, checked against RCU's guarantee.
//!
//! Safety: a callback never becomes ready while a read section that was open when it was
//! queued is still open (checked after every operation through `ready_callbacks`, and again
//! for every callback run). Liveness: once all sections are closed, a few rounds of QS reports
//! on every CPU run every callback exactly once, in FIFO order per CPU.
#![cfg(not(loom))]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use rcu::Rcu;

#[derive(Clone, Debug)]
enum Op {
    /// `rcu_read_lock()` on a CPU (sections nest).
    ReadLock(usize),
    /// `rcu_read_unlock()` of the innermost open section (nothing if none is open).
    ReadUnlock(usize),
    /// `call_rcu` on a CPU's list.
    CallRcu(usize),
    /// A QS report: applied only if the CPU is in no read section (the kernel's rule).
    Qs(usize),
    /// Take and run the CPU's ready callbacks.
    RunReady(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let cpu = 0..4usize;
    prop_oneof![
        2 => cpu.clone().prop_map(Op::ReadLock),
        2 => cpu.clone().prop_map(Op::ReadUnlock),
        2 => cpu.clone().prop_map(Op::CallRcu),
        3 => cpu.clone().prop_map(Op::Qs),
        2 => cpu.prop_map(Op::RunReady),
    ]
}

struct Model {
    rcu: Rcu,
    n: usize,
    /// Open read sections per CPU, innermost last (section ids).
    sections: Vec<Vec<u64>>,
    /// Every open section id.
    open: HashSet<u64>,
    next_section: u64,
    /// Per callback id: the sections open when it was queued.
    blockers: Vec<Vec<u64>>,
    /// Per CPU: the callback ids queued on its list, oldest first.
    queued: Vec<VecDeque<usize>>,
    /// Per callback id: how many times it ran (written by the callbacks themselves).
    runs: Arc<Mutex<Vec<u32>>>,
}

impl Model {
    fn new(n: usize) -> Self {
        let rcu = Rcu::new(n);
        for cpu in 0..n {
            rcu.cpu_online(cpu);
        }
        Self {
            rcu,
            n,
            sections: vec![Vec::new(); n],
            open: HashSet::new(),
            next_section: 0,
            blockers: Vec::new(),
            queued: vec![VecDeque::new(); n],
            runs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::ReadLock(cpu) => {
                let cpu = cpu % self.n;
                let id = self.next_section;
                self.next_section += 1;
                self.sections[cpu].push(id);
                self.open.insert(id);
            }
            Op::ReadUnlock(cpu) => {
                if let Some(id) = self.sections[cpu % self.n].pop() {
                    self.open.remove(&id);
                }
            }
            Op::CallRcu(cpu) => {
                let cpu = cpu % self.n;
                let id = self.blockers.len();
                self.blockers.push(self.open.iter().copied().collect());
                self.runs.lock().unwrap().push(0);
                let runs = self.runs.clone();
                self.rcu
                    .call_rcu(cpu, Box::new(move || runs.lock().unwrap()[id] += 1));
                self.queued[cpu].push_back(id);
            }
            Op::Qs(cpu) => {
                let cpu = cpu % self.n;
                if self.sections[cpu].is_empty() {
                    self.rcu.quiescent_state(cpu);
                }
            }
            Op::RunReady(cpu) => self.run_ready(cpu % self.n)?,
        }
        self.check()
    }

    /// Runs `cpu`'s ready callbacks, checking each against the model.
    fn run_ready(&mut self, cpu: usize) -> Result<(), TestCaseError> {
        let cbs = self.rcu.take_ready_callbacks(cpu);
        for cb in cbs {
            let id = self.queued[cpu].pop_front();
            prop_assert!(id.is_some(), "CPU {} ran a callback it does not hold", cpu);
            let id = id.unwrap();
            self.check_may_run(id)?;
            cb();
            prop_assert_eq!(self.runs.lock().unwrap()[id], 1, "callback {} not FIFO", id);
        }
        Ok(())
    }

    fn check_may_run(&self, id: usize) -> Result<(), TestCaseError> {
        let still_open: Vec<_> = self.blockers[id]
            .iter()
            .filter(|s| self.open.contains(s))
            .collect();
        prop_assert!(
            still_open.is_empty(),
            "callback {} ready while sections {:?} that predate it are open",
            id,
            still_open
        );
        Ok(())
    }

    /// After every operation: the ready callbacks of every CPU may run, counts agree.
    fn check(&self) -> Result<(), TestCaseError> {
        for cpu in 0..self.n {
            let ready = self.rcu.ready_callbacks(cpu);
            prop_assert_eq!(self.rcu.has_ready_callbacks(cpu), ready > 0);
            prop_assert_eq!(self.rcu.pending_callbacks(cpu), self.queued[cpu].len());
            prop_assert!(ready <= self.queued[cpu].len());
            for &id in self.queued[cpu].iter().take(ready) {
                self.check_may_run(id)?;
            }
        }
        let seq = self.rcu.gp_seq();
        prop_assert_eq!(self.rcu.gp_in_progress(), seq % 2 == 1);
        prop_assert_eq!(self.rcu.completed_gps(), seq / 2);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn callbacks_wait_for_preexisting_readers_and_all_run(
        n in 1..=4usize,
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let mut m = Model::new(n);
        for op in &ops {
            m.apply(op)?;
        }
        // Liveness: close every section, then let every CPU report QS and run its callbacks.
        // The GP in progress ends in the first round, the one after it (the last any callback
        // can wait for) in the second, and a third round runs what the last report of the
        // second made ready on the CPUs that had already had their turn.
        for cpu in 0..n {
            while !m.sections[cpu].is_empty() {
                m.apply(&Op::ReadUnlock(cpu))?;
            }
        }
        for _round in 0..3 {
            for cpu in 0..n {
                m.apply(&Op::Qs(cpu))?;
                m.apply(&Op::RunReady(cpu))?;
            }
        }
        let runs = m.runs.lock().unwrap();
        prop_assert!(runs.iter().all(|&r| r == 1), "runs per callback: {:?}", *runs);
        for cpu in 0..n {
            prop_assert_eq!(m.rcu.pending_callbacks(cpu), 0);
            prop_assert!(!m.rcu.qs_needed(cpu));
        }
        prop_assert!(!m.rcu.gp_in_progress());
    }
}
