//! The kernel's entry point: what the bootloader jumps to.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::boot::BOOTLOADER_CONFIG;

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

/// Brings the kernel up, then runs the tests the command line asks for, or the shell.
fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    if let Some(request) = kernel::cmdline::get("ktest") {
        kernel::ktest::run_request(request);
    }
    kernel::shell::run()
}
