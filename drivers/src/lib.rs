//! Sheaf's device drivers.
//!
//! Small, self-contained drivers for the legacy PC devices that QEMU emulates. Each driver owns
//! its I/O ports and offers a safe API; the kernel decides when to initialise them.
//!
//! - [`serial`]: the COM1 16550 UART, used as the kernel console.
//! - [`qemu_exit`]: QEMU's `isa-debug-exit` device, used to power off with a status.
//! - [`pit`]: the 8254 programmable interval timer, used as a reference clock to calibrate the TSC.
#![no_std]

pub mod pit;
pub mod qemu_exit;
pub mod serial;
