//! The interrupt descriptor table (IDT): a handler for every CPU exception.
//!
//! Breakpoints (`int3`) are counted and return. Every other exception is fatal for now: the
//! handler prints what happened (for a page fault: the faulting address, the error code and the
//! instruction pointer; for an address in a loaded module, its module, section and offset:
//! `RIP: 0x... .text.init_module+0x1c [hello]`) and hands over to [`fatal`], which lets a test that expects this very
//! fault pass, or panics. Device interrupts and IPIs arrive through the APICs on the vectors of
//! [`super::vectors`]; the legacy PIC is masked so a stray IRQ cannot land on an exception
//! vector.

use core::sync::atomic::{AtomicU64, Ordering};
use spin::LazyLock;
use x86_64::instructions::port::Port;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use super::gdt::DOUBLE_FAULT_IST_INDEX;
use super::vectors;
use crate::ktest::Fault;

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

/// How many breakpoint exceptions have been handled.
pub fn breakpoints() -> u64 {
    BREAKPOINTS.load(Ordering::Relaxed)
}

/// Defines a fatal exception handler without an error code.
macro_rules! fatal_handler {
    ($name:ident, $fault:expr) => {
        extern "x86-interrupt" fn $name(frame: InterruptStackFrame) {
            fatal($fault, &frame, None);
        }
    };
}

/// Defines a fatal exception handler that receives an error code.
macro_rules! fatal_handler_code {
    ($name:ident, $fault:expr) => {
        extern "x86-interrupt" fn $name(frame: InterruptStackFrame, code: u64) {
            fatal($fault, &frame, Some(code));
        }
    };
}

fatal_handler!(divide_error, Fault::DivideError);
fatal_handler!(nmi, Fault::NonMaskableInterrupt);
fatal_handler!(overflow, Fault::Overflow);
fatal_handler!(bound_range, Fault::BoundRangeExceeded);
fatal_handler!(invalid_opcode, Fault::InvalidOpcode);
fatal_handler!(device_not_available, Fault::DeviceNotAvailable);
fatal_handler_code!(invalid_tss, Fault::InvalidTss);
fatal_handler_code!(segment_not_present, Fault::SegmentNotPresent);
fatal_handler_code!(stack_segment, Fault::StackSegmentFault);
fatal_handler_code!(general_protection, Fault::GeneralProtection);
fatal_handler!(x87_floating_point, Fault::X87FloatingPoint);
fatal_handler_code!(alignment_check, Fault::AlignmentCheck);
fatal_handler!(simd_floating_point, Fault::SimdFloatingPoint);
fatal_handler!(virtualization, Fault::Virtualization);
fatal_handler_code!(control_protection, Fault::ControlProtection);
fatal_handler!(hv_injection, Fault::HypervisorInjection);
fatal_handler_code!(vmm_communication, Fault::VmmCommunication);
fatal_handler_code!(security, Fault::Security);

/// A debug exception: a single-step trap of [`super::step`]'s counting, or fatal.
extern "x86-interrupt" fn debug(frame: InterruptStackFrame) {
    if !super::step::single_step_trap() {
        fatal(Fault::Debug, &frame, None);
    }
}

extern "x86-interrupt" fn breakpoint(frame: InterruptStackFrame) {
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
    log::debug!("breakpoint at {:#x}", frame.instruction_pointer.as_u64());
}

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    crate::println!(
        "EXCEPTION: page fault at address {:#x}, error code {:#x} ({:?}), instruction pointer {:#x}",
        Cr2::read_raw(),
        code.bits(),
        code,
        frame.instruction_pointer.as_u64()
    );
    report_module_address("RIP", frame.instruction_pointer.as_u64());
    report_module_address("address", Cr2::read_raw());
    trace(&frame);
    crate::ktest::fault_expected(Fault::PageFault);
    panic!("unhandled page fault");
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    fatal(Fault::DoubleFault, &frame, Some(code));
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fatal(Fault::MachineCheck, &frame, None);
}

/// Reports a fatal exception and never returns: a test expecting it passes, otherwise panic.
fn fatal(fault: Fault, frame: &InterruptStackFrame, code: Option<u64>) -> ! {
    match code {
        Some(code) => crate::println!(
            "EXCEPTION: {} at instruction pointer {:#x}, stack pointer {:#x}, error code {:#x}",
            fault.description(),
            frame.instruction_pointer.as_u64(),
            frame.stack_pointer.as_u64(),
            code
        ),
        None => crate::println!(
            "EXCEPTION: {} at instruction pointer {:#x}, stack pointer {:#x}",
            fault.description(),
            frame.instruction_pointer.as_u64(),
            frame.stack_pointer.as_u64()
        ),
    }
    report_module_address("RIP", frame.instruction_pointer.as_u64());
    trace(frame);
    crate::ktest::fault_expected(fault);
    panic!("unhandled CPU exception: {}", fault.description());
}

/// Prints the exception's backtrace: the faulting instruction, then the interrupted code's
/// callers (`kcore::backtrace`).
#[inline(never)]
fn trace(frame: &InterruptStackFrame) {
    // The x86-interrupt ABI passes the frame the CPU pushed by reference: its address is
    // where the handler's own frame ends.
    let cpu_frame = core::ptr::from_ref(frame) as u64;
    crate::backtrace::exception_trace(
        &mut ConsoleOut,
        frame.instruction_pointer.as_u64(),
        cpu_frame,
        frame.stack_pointer.as_u64(),
    );
    crate::backtrace::mark_exception_traced();
}

/// The console as a `fmt::Write`, for [`trace`].
struct ConsoleOut;

impl core::fmt::Write for ConsoleOut {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::print!("{s}");
        Ok(())
    }
}

/// Names the loaded module and section `addr` lies in, if any, Linux's way:
/// `RIP: 0xffffffffc0001a1c .text.init_module+0x1c [hello]`. Prints nothing for an address
/// outside the modules, or if the module list is locked (never waits, never allocates).
fn report_module_address(what: &str, addr: u64) {
    crate::module::address_owner(addr, |owner| {
        crate::println!("{what}: {addr:#x} {owner}");
    });
}

/// The timer tick, on every CPU: the top of the core, which calls into every layer below.
/// The boot CPU's advances `jiffies`; then the services' share (timers), RCU's (a quiescent
/// state, callbacks woken) and the scheduler's (the time slice).
fn tick() {
    let cpu = crate::cpu::this_cpu();
    cpu.ticks
        .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    if cpu.id == 0 {
        crate::time::advance_jiffies();
    }
    if let Some(hook) = crate::time::TICK_HOOK.get() {
        hook();
    }
    crate::workqueue::tick();
    crate::sync::rcu::tick();
    crate::sched::tick();
}

extern "x86-interrupt" fn timer(_frame: InterruptStackFrame) {
    crate::cpu::irq_enter();
    tick();
    super::apic::eoi();
    crate::cpu::irq_leave();
    crate::sched::irq_exit();
}

extern "x86-interrupt" fn reschedule(_frame: InterruptStackFrame) {
    // The sender set this CPU's reschedule flag; switching happens on the way out.
    crate::cpu::irq_enter();
    super::apic::eoi();
    crate::cpu::irq_leave();
    crate::sched::irq_exit();
}

extern "x86-interrupt" fn call_function(_frame: InterruptStackFrame) {
    crate::cpu::irq_enter();
    super::ipi::handle_call_function();
    super::apic::eoi();
    crate::cpu::irq_leave();
    crate::sched::irq_exit();
}

extern "x86-interrupt" fn serial(_frame: InterruptStackFrame) {
    crate::cpu::irq_enter();
    crate::console::handle_irq();
    super::apic::eoi();
    crate::cpu::irq_leave();
    crate::sched::irq_exit();
}

extern "x86-interrupt" fn apic_error(_frame: InterruptStackFrame) {
    crate::cpu::irq_enter();
    log::warn!("local APIC error interrupt");
    super::apic::eoi();
    crate::cpu::irq_leave();
}

extern "x86-interrupt" fn spurious(_frame: InterruptStackFrame) {
    // A spurious interrupt is not acknowledged (no EOI).
}

static IDT: LazyLock<InterruptDescriptorTable> = LazyLock::new(|| {
    let mut idt = InterruptDescriptorTable::new();
    idt.divide_error.set_handler_fn(divide_error);
    idt.debug.set_handler_fn(debug);
    idt.non_maskable_interrupt.set_handler_fn(nmi);
    idt.breakpoint.set_handler_fn(breakpoint);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded.set_handler_fn(bound_range);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available
        .set_handler_fn(device_not_available);
    // SAFETY: the IST index names the dedicated double-fault stack set up in the TSS.
    unsafe {
        idt.double_fault
            .set_handler_fn(double_fault)
            .set_stack_index(DOUBLE_FAULT_IST_INDEX);
    }
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment);
    idt.general_protection_fault
        .set_handler_fn(general_protection);
    idt.page_fault.set_handler_fn(page_fault);
    idt.x87_floating_point.set_handler_fn(x87_floating_point);
    idt.alignment_check.set_handler_fn(alignment_check);
    idt.machine_check.set_handler_fn(machine_check);
    idt.simd_floating_point.set_handler_fn(simd_floating_point);
    idt.virtualization.set_handler_fn(virtualization);
    idt.cp_protection_exception
        .set_handler_fn(control_protection);
    idt.hv_injection_exception.set_handler_fn(hv_injection);
    idt.vmm_communication_exception
        .set_handler_fn(vmm_communication);
    idt.security_exception.set_handler_fn(security);
    idt[vectors::TIMER].set_handler_fn(timer);
    idt[vectors::RESCHEDULE].set_handler_fn(reschedule);
    idt[vectors::CALL_FUNCTION].set_handler_fn(call_function);
    idt[vectors::SERIAL].set_handler_fn(serial);
    idt[super::apic::ERROR_VECTOR].set_handler_fn(apic_error);
    idt[vectors::SPURIOUS].set_handler_fn(spurious);
    idt
});

/// Loads the IDT on the calling CPU (every CPU shares the one table).
pub(crate) fn load_idt() {
    IDT.load();
}

/// Loads the IDT and masks both legacy 8259 PICs (the APICs take over).
pub(crate) fn init() {
    load_idt();
    let mut master = Port::<u8>::new(0x21);
    let mut slave = Port::<u8>::new(0xa1);
    // SAFETY: 0x21/0xa1 are the 8259 PICs' data ports; masking every line only stops delivery.
    unsafe {
        master.write(0xff);
        slave.write(0xff);
    }
}

#[crate::ktest]
fn breakpoint_returns() {
    let before = breakpoints();
    x86_64::instructions::interrupts::int3();
    x86_64::instructions::interrupts::int3();
    assert_eq!(
        breakpoints(),
        before + 2,
        "each int3 is handled once and returns"
    );
}

#[crate::ktest(fault = "page_fault")]
fn page_fault_is_caught_and_reported() {
    // Canonical, lower half, never mapped by Sheaf.
    let unmapped = 0x0000_4000_dead_0000 as *const u64;
    // SAFETY: not safe at all, on purpose: the read must fault, and the test passes when the
    // page-fault handler reports it. Nothing is read.
    let value = unsafe { core::ptr::read_volatile(unmapped) };
    panic!("read {value:#x} from an unmapped address without a page fault");
}

#[crate::ktest(fault = "double_fault")]
fn stack_overflow_is_caught_as_double_fault() {
    #[allow(unconditional_recursion)]
    fn recurse(depth: u64) -> u64 {
        let frame = [depth; 64];
        // `black_box` keeps the frame and the call from being optimised into a loop.
        recurse(core::hint::black_box(frame)[0] + 1) + 1
    }
    let depth = recurse(0);
    panic!("recursed {depth} levels without overflowing the stack");
}
