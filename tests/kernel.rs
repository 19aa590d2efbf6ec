//! The on-target tests: `cargo test` boots the kernel in QEMU and runs its `#[ktest]`s, plus a
//! few host-driven checks of the shell. Filters work as usual:
//! `cargo test --test kernel -- memory`, `cargo test --test kernel -- --list`.
//!
//! Everything happens in `boot/src/ktest/`; this file only passes the path of the kernel built
//! with its tests (the `kernel-test` artifact dependency, see the root `Cargo.toml`).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    sheaf_boot::ktest::main(Path::new(env!("CARGO_BIN_FILE_KERNEL_TEST_kernel-test")))
}
