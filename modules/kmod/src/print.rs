//! `printk` from Rust: a `KERN_*` level and `core::fmt` formatting.

use core::fmt::{self, Write};

/// `KERN_EMERG`.
pub const KERN_EMERG: &[u8; 2] = b"\x010";
/// `KERN_ERR`.
pub const KERN_ERR: &[u8; 2] = b"\x013";
/// `KERN_WARNING`.
pub const KERN_WARNING: &[u8; 2] = b"\x014";
/// `KERN_INFO`.
pub const KERN_INFO: &[u8; 2] = b"\x016";
/// `KERN_DEBUG`.
pub const KERN_DEBUG: &[u8; 2] = b"\x017";

/// A line is formatted into this many bytes on the stack (longer output is cut).
const LINE: usize = 256;

struct Line {
    buf: [u8; LINE],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // Keep room for the NUL; a NUL inside the text would end the C string early.
            if self.len + 1 < LINE && b != 0 {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Formats `args` and prints it at `level` through the kernel's `printk`.
pub fn printk_fmt(level: &[u8; 2], args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; LINE],
        len: 0,
    };
    let _ = line.write_fmt(args);
    line.buf[line.len] = 0;
    let fmt = [level[0], level[1], b'%', b's', 0];
    // SAFETY: both strings are NUL-terminated and live across the call; "%s" takes exactly
    // the one `char *` argument given.
    unsafe {
        crate::ffi::printk(fmt.as_ptr().cast(), line.buf.as_ptr());
    }
}

/// `pr_info!("...", args)`: prints at `KERN_INFO` (add the `\n` yourself, as in C).
#[macro_export]
macro_rules! pr_info {
    ($($arg:tt)*) => { $crate::print::printk_fmt($crate::print::KERN_INFO, format_args!($($arg)*)) };
}

/// `pr_err!`: prints at `KERN_ERR`.
#[macro_export]
macro_rules! pr_err {
    ($($arg:tt)*) => { $crate::print::printk_fmt($crate::print::KERN_ERR, format_args!($($arg)*)) };
}

/// `pr_warn!`: prints at `KERN_WARNING`.
#[macro_export]
macro_rules! pr_warn {
    ($($arg:tt)*) => { $crate::print::printk_fmt($crate::print::KERN_WARNING, format_args!($($arg)*)) };
}
