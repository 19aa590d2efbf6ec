//! Sheaf's scheduling policy: round robin, one tick per time slice, new threads on the least
//! loaded CPU. The core's scheduler ([`kcore::sched`]) asks it through [`kcore::sched::SchedPolicy`].

use kcore::cpu::Cpu;
use kcore::sched::SchedPolicy;

/// Round robin with a time slice of one timer tick; threads placed once, when spawned, on the
/// online CPU with the shortest run queue (they do not migrate afterwards).
pub struct RoundRobin;

impl SchedPolicy for RoundRobin {
    fn select_cpu(&self) -> usize {
        kcore::cpu::online()
            .min_by_key(|c| kcore::sched::cpu_sched(c).queued())
            .map_or_else(kcore::cpu::current_id, |c| c.id)
    }

    fn tick_preempts(&self, cpu: &Cpu) -> bool {
        // The slice ends at every tick if another thread waits for this CPU.
        kcore::sched::cpu_sched(cpu).queued() > 0
    }
}

/// Registers the policy with the core (at start-up).
pub fn init() {
    kcore::sched::set_policy(&RoundRobin);
}
