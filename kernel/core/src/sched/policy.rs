//! The scheduler's policy: the decisions the core's mechanism leaves to a service.
//!
//! The core owns the mechanism: run queues, the context switch, blocking and waking, pinning,
//! preemption at interrupt exit. Two decisions are policy and come from the services'
//! [`SchedPolicy`] (Sheaf's is round robin on the least loaded CPU, `kernel/src/sched_policy.rs`):
//! where a new thread that is not pinned starts, and whether a timer tick ends the running
//! thread's time slice. Until a policy is registered, new threads start on the calling CPU and
//! ticks never preempt (only the boot CPU runs then).

use crate::Hook;
use crate::cpu::Cpu;

/// The decisions a scheduling policy makes.
pub trait SchedPolicy: Sync {
    /// The CPU a new thread that is not pinned starts on. It should be online; if it is not,
    /// the thread starts on the calling CPU.
    fn select_cpu(&self) -> usize;

    /// Whether the thread running on `cpu` (the calling CPU, in its timer interrupt) should give
    /// the CPU up at the end of this interrupt.
    fn tick_preempts(&self, cpu: &Cpu) -> bool;
}

pub(super) static POLICY: Hook<&'static dyn SchedPolicy> = Hook::new();

/// Registers the scheduling policy (once, at start-up, before other CPUs run threads). Returns
/// `false` if one was registered already.
pub fn set_policy(policy: &'static dyn SchedPolicy) -> bool {
    POLICY.set(policy)
}
