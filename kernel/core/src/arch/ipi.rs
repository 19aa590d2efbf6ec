//! Inter-processor interrupts (IPIs): ask another CPU to reschedule, run a function there, or
//! flush its TLB (the shoot-down that follows a change of a kernel mapping).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{apic, vectors};
use crate::cpu::{self, Cpu, MAX_CPUS};
use crate::memory::PAGE_SIZE;
use crate::sync::IrqSpinLock;

/// Asks `cpu` to run its scheduler (a thread became runnable there).
pub fn send_reschedule(cpu: &Cpu) {
    if cpu.is_online() {
        apic::send_ipi(cpu.apic_id.load(Ordering::Relaxed), vectors::RESCHEDULE);
    }
}

/// A function queued for another CPU.
struct CallRequest {
    func: IrqSpinLock<Option<Box<dyn FnOnce() + Send>>>,
    done: AtomicBool,
}

/// Per-CPU queues of function calls, run by the CALL_FUNCTION IPI handler.
static CALL_QUEUES: [IrqSpinLock<VecDeque<Arc<CallRequest>>>; MAX_CPUS] =
    [const { IrqSpinLock::new(VecDeque::new()) }; MAX_CPUS];

/// Error from [`smp_call_function`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No such CPU, or it is not online.
    Offline,
}

/// Runs `f` on CPU `target` (in its interrupt context, interrupts off) and waits until it has
/// run. On the calling CPU itself it runs directly. Must be called with interrupts enabled,
/// or two CPUs calling each other would wait for ever.
pub fn smp_call_function(
    target: usize,
    f: impl FnOnce() + Send + 'static,
) -> Result<(), CallError> {
    let cpu = cpu::cpu(target)
        .filter(|c| c.is_online())
        .ok_or(CallError::Offline)?;
    let request = Arc::new(CallRequest {
        func: IrqSpinLock::new(Some(Box::new(f))),
        done: AtomicBool::new(false),
    });
    {
        let _pin = cpu::PreemptGuard::new();
        if cpu::current_id() == target {
            let _irq = crate::sync::IrqSave::new();
            run(&request);
            return Ok(());
        }
        CALL_QUEUES[target].lock().push_back(request.clone());
        apic::send_ipi(cpu.apic_id.load(Ordering::Relaxed), vectors::CALL_FUNCTION);
    }
    while !request.done.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    Ok(())
}

fn run(request: &CallRequest) {
    let func = request.func.lock().take();
    if let Some(func) = func {
        func();
    }
    request.done.store(true, Ordering::Release);
}

/// The CALL_FUNCTION IPI handler's work: run everything queued for this CPU.
pub(crate) fn handle_call_function() {
    let id = cpu::current_id();
    loop {
        let request = CALL_QUEUES[id].lock().pop_front();
        match request {
            Some(request) => run(&request),
            None => break,
        }
    }
}

/// Runs `f` on every online CPU (including this one) and waits for all.
pub fn on_each_cpu(f: impl Fn() + Send + Sync + 'static) {
    let f = Arc::new(f);
    for c in cpu::online() {
        let f = f.clone();
        // An online CPU stays online, so this cannot fail.
        let _ = smp_call_function(c.id, move || f());
    }
}

/// Number of TLB shoot-downs performed (for tests and statistics).
pub static TLB_SHOOTDOWNS: AtomicUsize = AtomicUsize::new(0);

/// Flushes the TLB entries of `pages` kernel pages starting at `start` on every CPU: the
/// shoot-down that must follow any change or removal of a kernel mapping that other CPUs may
/// have cached.
pub fn flush_tlb_kernel_range(start: x86_64::VirtAddr, pages: u64) {
    TLB_SHOOTDOWNS.fetch_add(1, Ordering::Relaxed);
    on_each_cpu(move || {
        for i in 0..pages {
            x86_64::instructions::tlb::flush(start + i * PAGE_SIZE as u64);
        }
    });
}

#[crate::ktest]
fn ipi_function_call_runs_on_the_target_cpu() {
    for target in cpu::all().map(|c| c.id) {
        let ran_on = Arc::new(AtomicUsize::new(usize::MAX));
        let out = ran_on.clone();
        smp_call_function(target, move || {
            out.store(cpu::current_id(), Ordering::SeqCst)
        })
        .expect("online");
        assert_eq!(ran_on.load(Ordering::SeqCst), target);
    }
    assert_eq!(
        smp_call_function(MAX_CPUS - 1, || {}),
        Err(CallError::Offline)
    );
}
