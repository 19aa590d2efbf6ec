//! The kernel's entry point: what the bootloader jumps to.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::boot::BOOTLOADER_CONFIG;

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

/// Brings the kernel up, then runs the tests the command line asks for, or the shell.
fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    // The boot context becomes this CPU's idle thread; the real work runs in a thread of its own.
    let main = match kernel::cmdline::get("ktest") {
        Some(request) => kernel::sched::spawn("ktest", move || kernel::ktest::run_request(request)),
        None => kernel::sched::spawn("shell", || kernel::shell::run()),
    };
    main.expect("memory for the first thread");
    kernel::sched::idle_loop()
}
