//! x86_64 CPU set-up: segments, the task-state segment and the interrupt descriptor table.

pub mod gdt;
pub mod interrupts;

/// Loads the GDT and TSS, then the IDT, and masks the legacy PIC.
pub fn init() {
    gdt::init();
    interrupts::init();
}
