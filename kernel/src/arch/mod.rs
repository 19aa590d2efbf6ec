//! x86_64 CPU set-up: descriptor tables, interrupt controllers, ACPI and multiprocessor start.

pub mod acpi;
pub mod apic;
pub mod gdt;
pub mod interrupts;
pub mod smp;
mod trampoline;
pub mod vectors;

/// Loads the GDT and TSS, then the IDT, and masks the legacy PIC.
pub fn init() {
    gdt::init();
    interrupts::init();
}
