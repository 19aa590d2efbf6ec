//! Everything a Rust module for Sheaf links against: the kernel's exports (the same list as
//! `include/sheaf/module.h`, declared in [`ffi`]), safe wrappers over them, and the macros
//! that fill the sections the module loader reads (`docs/modules.md`):
//!
//! - [`module!`]: `.modinfo` (name, license, description, author), `init_module` and
//!   `cleanup_module`, and the parameters;
//! - [`module_param!`]: one parameter (a `.sheaf.params` descriptor and its `parmtype=`);
//! - [`export_symbol!`] and [`export_symbol_gpl!`]: the module's exports;
//! - [`pr_info!`] and its siblings: `printk` with a `KERN_*` level and Rust formatting.
//!
//! A module crate is a `no_std` `staticlib` in `modules/`; `cargo modbuild rust NAME` builds
//! it for `x86_64-unknown-none` (kernel code model, static relocation model, fat LTO) and
//! links it into one relocatable object with `ld -r`.

#![no_std]
#![warn(missing_docs)]

pub mod ffi;
mod macros;
pub mod mem;
pub mod print;
pub mod static_cache;
pub mod sync;

pub use core::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64};

/// A Linux error number (positive; `init_module` returns it negated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(1);
    /// No such file or directory.
    pub const ENOENT: Errno = Errno(2);
    /// I/O error.
    pub const EIO: Errno = Errno(5);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Device or resource busy.
    pub const EBUSY: Errno = Errno(16);
    /// No such device.
    pub const ENODEV: Errno = Errno(19);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(22);
}

/// A parameter variable's type: which `module_param` type it is (Linux's `param_ops_*`).
pub trait ParamType: Sync {
    /// The descriptor's type number (1 int, 2 uint, 3 long, 4 ulong, 5 bool, 6 charp).
    const KIND: u32;
    /// The type's name in `parmtype=NAME:TYPE`.
    const NAME: &'static str;
}

macro_rules! param_type {
    ($t:ty, $kind:expr, $name:expr) => {
        impl ParamType for $t {
            const KIND: u32 = $kind;
            const NAME: &'static str = $name;
        }
    };
}
param_type!(AtomicI32, 1, "int");
param_type!(AtomicU32, 2, "uint");
param_type!(AtomicI64, 3, "long");
param_type!(AtomicU64, 4, "ulong");
param_type!(AtomicBool, 5, "bool");
param_type!(AtomicPtr<u8>, 6, "charp");

/// A parameter descriptor in `.sheaf.params` (the layout the loader reads and
/// `struct sheaf_param` of the C header).
#[repr(C)]
pub struct ParamDesc {
    /// The NUL-terminated name.
    pub name: *const u8,
    /// The variable (an atomic of the parameter's type).
    pub arg: *const (),
    /// [`ParamType::KIND`].
    pub kind: u32,
    /// sysfs mode bits.
    pub perm: u16,
    /// 0.
    pub flags: u16,
}

// SAFETY: a descriptor is immutable data the loader reads; its pointers point to immutable
// names and to atomics, which are themselves `Sync`.
unsafe impl Sync for ParamDesc {}

const _: () = assert!(core::mem::size_of::<ParamDesc>() == 24);

/// Copies `s` into an array of exactly its length (for `#[used]` statics of macros).
pub const fn bytes<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    assert!(b.len() == N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// Concatenates `parts` into an array of exactly their total length.
pub const fn concat_bytes<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let (mut p, mut at) = (0, 0);
    while p < parts.len() {
        let b = parts[p].as_bytes();
        let mut i = 0;
        while i < b.len() {
            out[at] = b[i];
            at += 1;
            i += 1;
        }
        p += 1;
    }
    assert!(at == N);
    out
}

/// The total length of `parts`.
pub const fn concat_len(parts: &[&str]) -> usize {
    let (mut p, mut n) = (0, 0);
    while p < parts.len() {
        n += parts[p].len();
        p += 1;
    }
    n
}

/// A module's panic: printed, then an invalid-opcode trap (`ud2`), which the kernel reports
/// as an oops in the module (a module cannot unwind).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    print::printk_fmt(
        print::KERN_EMERG,
        format_args!("module panic: {}\n", info.message()),
    );
    // SAFETY: `ud2` touches no memory; it raises #UD, which the kernel handles as an oops.
    unsafe { core::arch::asm!("ud2", options(noreturn, nomem, nostack)) }
}
