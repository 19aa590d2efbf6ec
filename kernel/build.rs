//! Build script of the kernel package: where the kernel binary is linked.
//!
//! `.cargo/config.toml` builds the bare-metal target with `-C relocation-model=static -C
//! code-model=kernel`, as Linux builds its kernel: a static executable in the top 2 GiB, whose
//! code reaches its statics with one RIP-relative instruction (no GOT) and whose image carries
//! no relocations for the bootloader to apply. This script then links the binary at
//! `consts::KERNEL_BASE` (`KERNEL_IMAGE.start` in `kernel/core/src/memory/layout.rs`; the kernel
//! checks at boot that it runs there).
//!
//! A `RUSTFLAGS` in the environment replaces the config's flags, and the kernel is then built
//! position-independent (the target's default): the script sets the `sheaf_pie` cfg instead,
//! and the kernel asks the bootloader to move it to the same address.
//!
//! In both builds code and data are on pages of their own (`-z separate-code`).

use consts::KERNEL_BASE;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(sheaf_pie)");
    // Code gets pages of its own in the file, as in Linux's image: without this the linker lets
    // the last page of `.text` share a file page with `.data`, the bootloader maps both from
    // the one frame, and every write to a static there (a static slab cache's per-CPU state, in
    // `staticbench`) makes QEMU throw away the translated code of that frame: 3000 cycles for
    // an alloc+free pair that takes 80.
    println!("cargo::rustc-link-arg-bins=-zseparate-code");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let is_static = flags
        .split('\x1f')
        .any(|f| f.ends_with("relocation-model=static"));
    if is_static {
        println!("cargo::rustc-link-arg-bins=--image-base={KERNEL_BASE:#x}");
    } else {
        println!("cargo::rustc-cfg=sheaf_pie");
    }
}
