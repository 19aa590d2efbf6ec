//! The kernel binary: what the bootloader jumps to.
//!
//! This is the top layer (docs/README.md): it links the core (`kcore`) and the services
//! (`kernel`) into one image. It is also where the kernel's `extern "C"` surface for loadable
//! modules will live ([`export`]), since exported functions call into both layers below.
#![no_std]
#![no_main]

extern crate alloc;

mod export;

use bootloader_api::config::BootloaderConfig;
use bootloader_api::{BootInfo, entry_point};

/// The bootloader's configuration for this binary, as it was linked (`sheaf_pie` is set by
/// `kernel/build.rs` when the build is position-independent).
static BOOTLOADER_CONFIG: BootloaderConfig = kcore::boot::bootloader_config(cfg!(sheaf_pie));

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

/// Brings the kernel up, then runs the tests the command line asks for, or the shell.
fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    export::init();
    // The boot context becomes this CPU's idle thread; the real work runs in a thread of its own.
    kernel::start_main_thread();
    kcore::sched::idle_loop()
}
