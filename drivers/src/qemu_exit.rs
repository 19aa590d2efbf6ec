//! QEMU's `isa-debug-exit` device: leave the emulator with a status.
//!
//! The launcher starts QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`. Writing a
//! value `v` to that port makes QEMU exit with status `(v << 1) | 1`, so the kernel can report
//! success or failure to the host (a real machine has no such device and ignores the write).

use x86_64::instructions::port::Port;

/// The I/O port the launcher maps the device to.
pub const PORT: u16 = 0xf4;

/// What the kernel reports to the host when it leaves QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Normal power-off: QEMU exits with status 33, which the launcher reports as 0.
    Success = 0x10,
    /// Panic or failed test: QEMU exits with status 35.
    Failure = 0x11,
}

/// Exits QEMU with `code`. Halts forever if the device is absent (real hardware).
pub fn exit(code: ExitCode) -> ! {
    let mut port = Port::<u32>::new(PORT);
    // SAFETY: port 0xf4 is the debug-exit device (or nothing); writing it has no other effect.
    unsafe { port.write(code as u32) };
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
