//! The format engine of Sheaf's C `printk`: the subset of Linux's `vsnprintf` that loadable
//! modules use, with no `unsafe` and no allocation.
//!
//! A C module calls `printk("\x016loaded %s, %d pages\n", name, n)`. The kernel's exported
//! `printk` is a C-variadic function: it receives the format and a `va_list`. This crate does
//! everything except reading the `va_list`, which needs `unsafe`: the kernel implements the
//! [`Args`] trait over it, and calls [`split_level`] and then [`format`]. Keeping the engine
//! here lets the host test it exhaustively (`cargo test -p sheaf-printf`).
//!
//! # A printf format in a nutshell
//!
//! Text is copied as it is, except for *conversion specifications*, which start with `%`:
//!
//! ```text
//! %  [flags]  [width]  [.precision]  [length]  conversion
//!    - 0 + #   12 or *   .3 or .*     hh h l ll  d i u x X o c s p %
//!    (space)                          z j t
//! ```
//!
//! - **conversion**: `%d`/`%i` signed decimal, `%u` unsigned decimal, `%x`/`%X` hex, `%o`
//!   octal, `%c` one character (an `int`, its low byte printed), `%s` a NUL-terminated string,
//!   `%p` a pointer, `%%` a percent sign.
//! - **length**: which C type the integer argument has. Without one it is an `int` (32 bits);
//!   `hh` and `h` still pass an `int` (C promotes small types) but print it truncated to
//!   `char` / `short`, so `%hhd` of `0x1ff` prints `-1`; `l`, `ll`, `z`, `j` and `t` (and
//!   Linux's `L` and `Z`) are 64 bits on x86_64.
//! - **width**: the minimum field width, padded with spaces on the left (or on the right with
//!   `-`). `*` takes it from the next argument, an `int`; a negative one means `-`.
//! - **precision**: for integers, the minimum number of digits (`%.3d` of 5 is `005`, and
//!   `%.0d` of 0 prints nothing); for `%s`, the maximum number of bytes read. `.*` takes it
//!   from the next argument; a negative one counts as not given.
//! - **flags**: `-` left-justify; `0` pad numbers with zeros after the sign (ignored with `-`
//!   or a precision, and padding with spaces for `%s %c %p`); `+` always a sign on signed
//!   conversions; space: a space instead of `+`; `#` the alternate form, `0x`/`0X` before a
//!   nonzero hex value and a leading `0` in octal.
//!
//! The rules are C's (C11 7.21.6.1), which Linux follows, with these choices:
//!
//! - `%p` prints `0x` and 16 lowercase hex digits. Linux hashes plain `%p` (to keep kernel
//!   addresses from leaking to unprivileged users); a teaching kernel wants the address. `%px`
//!   is the same; any other letter after `%p` (Linux's `%pS`, `%pK`, ...) is *not* an
//!   extension here and is printed as text after the address.
//! - `%s` of a NULL pointer prints `(null)`, as Linux and glibc do.
//! - `%#x` of 0 prints `0` as in C (Linux prints `0x0`).
//! - an unknown conversion (`%q`, `%n`, `%f`...) or a `%` at the end of the format is printed
//!   literally, flags and all, and consumes no argument (modern Linux stops formatting there;
//!   printing the rest shows the programmer the mistake). `%%` consumes no argument either.
//! - widths and precisions are clamped to 4096, so a format cannot make one conversion print
//!   megabytes.
//! - a NUL byte ends the format, as it ends a C string.
//!
//! # Bytes and text
//!
//! A C string is bytes, but `core::fmt::Write` takes `str`. The output is decoded as UTF-8
//! on the way out, exactly as `String::from_utf8_lossy` would decode the whole output: each
//! invalid sequence becomes U+FFFD, and a character cut between pieces (a literal byte, then a
//! `%c`) is still put back together. [`format`] returns the length in bytes of that text.
//!
//! # The log level
//!
//! `KERN_INFO` and the other levels are not arguments but a prefix of the format itself: the
//! byte `"\x01"` (KERN_SOH) and a digit. [`split_level`] takes it off, as Linux's
//! `printk_parse_prefix` does, before the format goes to [`format`].
//!
//! # Example
//!
//! ```
//! use printf::{Args, Level};
//!
//! /// Arguments from a slice; a string argument's "address" is its index plus one.
//! struct Slice<'a> { ints: &'a [u64], strs: &'a [&'a str], next: usize }
//!
//! impl Args for Slice<'_> {
//!     fn next_u32(&mut self) -> u32 { self.next_u64() as u32 }
//!     fn next_u64(&mut self) -> u64 {
//!         self.next += 1;
//!         self.ints.get(self.next - 1).copied().unwrap_or(0)
//!     }
//!     fn next_ptr(&mut self) -> usize { self.next_u64() as usize }
//!     fn with_str(&mut self, addr: usize, out: &mut dyn FnMut(&[u8])) {
//!         out(self.strs[addr - 1].as_bytes())
//!     }
//! }
//!
//! let (level, fmt) = printf::split_level(b"\x016%s: %d pages at %#x\n");
//! assert_eq!(level, Level::Info);
//! let mut args = Slice { ints: &[1, 12, 0x1000], strs: &["ramfs"], next: 0 };
//! let mut text = String::new();
//! let len = printf::format(fmt, &mut args, &mut text);
//! assert_eq!(text, "ramfs: 12 pages at 0x1000\n");
//! assert_eq!(len, text.len());
//! ```
//!
//! # Tests
//!
//! `src/tests.rs` holds the unit tests of every conversion, flag and level prefix, and
//! property tests: no format or argument list makes the engine panic, and integers formatted
//! with random flags, widths and precisions match C's rules computed independently.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod engine;
mod level;
mod sink;
#[cfg(test)]
mod tests;

pub use level::{Level, split_level};

/// Where the conversions get their arguments (the kernel implements it over a C `va_list`).
///
/// The engine asks for each argument at the C type its conversion names, in the order of the
/// format (a `*` width or precision comes before its conversion's argument), and never asks for
/// an argument that an unknown conversion would have taken. An implementation over a
/// `va_list` cannot tell when the arguments run out; that is the caller's contract, as in C.
pub trait Args {
    /// The next argument as a C `int`/`unsigned int` (32 bits; `va_arg` of `int`).
    fn next_u32(&mut self) -> u32;
    /// The next argument as a 64-bit value (`long`, `unsigned long`, `long long`, `size_t`,
    /// `ssize_t`).
    fn next_u64(&mut self) -> u64;
    /// The next argument as a pointer (its address).
    fn next_ptr(&mut self) -> usize;
    /// Reads the NUL-terminated string at `addr` (never called with 0: the engine prints
    /// `(null)` itself), calling `out` with its bytes (the kernel bounds the length).
    ///
    /// `out` may be called several times, with consecutive pieces of the string. The engine
    /// may read the same string twice for one `%s` (to measure it, when it is right-justified
    /// in a field, and then to print it), so reading must have no side effects.
    fn with_str(&mut self, addr: usize, out: &mut dyn FnMut(&[u8]));
}

/// Formats `fmt` with `args` into `out`, as C's `vsnprintf` would, and returns the length in
/// bytes of the text written.
///
/// Bytes that are not valid UTF-8 are written as U+FFFD (see the crate documentation), and
/// the count is of the text as written, so with a `String` as `out` the return value is its
/// length. If `out` fails, nothing more is written to it, but formatting goes on and the
/// return value is still the length the whole text would have had (vsnprintf's return value
/// after truncation).
///
/// Never panics, whatever the format: unknown conversions are printed as text, widths and
/// precisions are clamped to 4096, and a NUL byte ends the format.
pub fn format(fmt: &[u8], args: &mut dyn Args, out: &mut dyn core::fmt::Write) -> usize {
    let mut sink = sink::Sink::new(out);
    engine::run(fmt, args, &mut sink);
    sink.finish()
}
