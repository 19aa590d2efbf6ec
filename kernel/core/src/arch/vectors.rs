//! Interrupt vector numbers: one table so no two users pick the same vector.
//!
//! Vectors 0–31 are the CPU's exceptions. Device interrupts and inter-processor interrupts
//! (IPIs) use the vectors below; higher vectors have higher priority in the local APIC.

/// Serial port COM1 (ISA IRQ 4, routed through the I/O APIC).
pub const SERIAL: u8 = 0x24;
/// The local APIC timer tick.
pub const TIMER: u8 = 0x30;
/// IPI: run the functions queued for this CPU (`smp_call_function`, TLB shoot-downs).
pub const CALL_FUNCTION: u8 = 0xf0;
/// IPI: a thread was made runnable here; reschedule.
pub const RESCHEDULE: u8 = 0xf2;
/// The local APIC's spurious-interrupt vector (must end in 0xf on old APICs).
pub const SPURIOUS: u8 = 0xff;
