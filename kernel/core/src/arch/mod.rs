//! x86_64 CPU set-up: descriptor tables, interrupt controllers, ACPI and multiprocessor start.

pub mod acpi;
pub mod apic;
pub mod gdt;
pub mod interrupts;
pub mod ipi;
pub mod smp;
pub mod step;
mod trampoline;
pub mod vectors;

/// Powers the machine off: leaves QEMU with success (its `isa-debug-exit` device).
pub fn poweroff() -> ! {
    drivers::qemu_exit::exit(drivers::qemu_exit::ExitCode::Success)
}

/// Loads the GDT and TSS, then the IDT, and masks the legacy PIC.
pub(crate) fn init() {
    gdt::init();
    interrupts::init();
}
