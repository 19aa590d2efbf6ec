//! The panic handler: report, tell the test runner, leave QEMU with a failure status.
//!
//! A kernel panic must never hang silently: it prints its message and location and exits QEMU
//! with [`ExitCode::Failure`], which the launcher and test runner see as a failed run.

use core::panic::PanicInfo;
use drivers::qemu_exit::{ExitCode, exit};

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    // SAFETY: interrupts are off and only this CPU runs: whoever held the console lock (this
    // very code path, interrupted by the panic) will never write again.
    unsafe { crate::console::force_unlock() };
    crate::println!("\nKERNEL PANIC: {info}");
    crate::backtrace::panic_trace();
    crate::ktest::report_panic(info);
    exit(ExitCode::Failure)
}
