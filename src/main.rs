//! `cargo run -- [OPTIONS]`: boot the Sheaf kernel in QEMU (see `cargo run -- --help`).
//!
//! Cargo builds the kernel for `x86_64-unknown-none` as an artifact dependency and tells us
//! where the ELF file is through `CARGO_BIN_FILE_KERNEL_kernel`; the launcher in
//! `boot/src/launcher.rs` does the rest.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    sheaf_boot::launcher::main(Path::new(env!("CARGO_BIN_FILE_KERNEL_kernel")))
}
