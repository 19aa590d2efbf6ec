//! `printk` for modules: a `KERN_*` level and a C format, through the `printf` crate.

use core::ffi::{CStr, VaList, c_char, c_int};
use core::fmt::Write;
use core::sync::atomic::{AtomicU8, Ordering};

use kcore::module::KernelSymbol;

/// This file's exports.
pub(super) static SYMBOLS: [KernelSymbol; 1] = [export_symbol!(printk)];

/// The longest message one `printk` prints (Linux's `LOG_LINE_MAX` is 1024 less a header);
/// the rest is cut, and the count returned is still the full length.
const PRINTK_MAX: usize = 1024;

/// Linux's `default_message_loglevel`: the level of a message without a `KERN_*` prefix.
const DEFAULT_MESSAGE_LOGLEVEL: u8 = 4;

/// The level of the last message, which a `KERN_CONT` message continues.
static LAST_LEVEL: AtomicU8 = AtomicU8::new(DEFAULT_MESSAGE_LOGLEVEL);

/// A message's level as a number (0 `KERN_EMERG` to 7 `KERN_DEBUG`).
fn level_number(level: printf::Level) -> u8 {
    use printf::Level as L;
    match level {
        L::Emerg => 0,
        L::Alert => 1,
        L::Crit => 2,
        L::Err => 3,
        L::Warning => 4,
        L::Notice => 5,
        L::Info => 6,
        L::Debug => 7,
        L::Default => DEFAULT_MESSAGE_LOGLEVEL,
        L::Cont => LAST_LEVEL.load(Ordering::Relaxed),
    }
}

/// A message being formatted, on the stack.
struct Line {
    buf: [u8; PRINTK_MAX],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(PRINTK_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// The arguments of a `printk` (or `alloc_workqueue`), read from its C `va_list` in the order
/// the format asks.
pub(super) struct VaArgs<'a, 'f>(pub(super) &'a mut VaList<'f>);

impl printf::Args for VaArgs<'_, '_> {
    fn next_u32(&mut self) -> u32 {
        // SAFETY: the format (checked by gcc's `format(printf)` attribute in the header)
        // says the next argument is an int; reading it as one is what C's va_arg does.
        unsafe { self.0.next_arg::<u32>() }
    }

    fn next_u64(&mut self) -> u64 {
        // SAFETY: as above, a 64-bit argument.
        unsafe { self.0.next_arg::<u64>() }
    }

    fn next_ptr(&mut self) -> usize {
        // SAFETY: as above, a pointer.
        unsafe { self.0.next_arg::<usize>() }
    }

    fn with_str(&mut self, addr: usize, out: &mut dyn FnMut(&[u8])) {
        // SAFETY: `%s` takes a NUL-terminated string (caller contract of `printk`); it is read
        // up to its NUL or `PRINTK_MAX` bytes, whichever comes first.
        let bytes = unsafe {
            let p = addr as *const u8;
            let mut n = 0;
            while n < PRINTK_MAX && *p.add(n) != 0 {
                n += 1;
            }
            core::slice::from_raw_parts(p, n)
        };
        out(bytes);
    }
}

/// Prints a message to the console (Linux's `printk`): an optional `KERN_*` level prefix,
/// then a format with `%s %c %d %i %u %ld %lu %lld %llu %x %lx %llx %p %zu %%`, widths and
/// the `-` and `0` flags (the `printf` crate). The message reaches the console if its level is
/// below the console log level (`kcore::console::loglevel`: all but `KERN_DEBUG` by
/// default); the kernel log (`dmesg`) keeps it whatever its level. Returns the message's length.
///
/// # Safety
/// `fmt` is a NUL-terminated string (or null: nothing is printed), and the arguments are what
/// its conversions say, as for C's `printf`; each `%s` a NUL-terminated string or null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn printk(fmt: *const c_char, mut args: ...) -> c_int {
    if fmt.is_null() {
        return 0;
    }
    // SAFETY: NUL-terminated (caller contract).
    let fmt = unsafe { CStr::from_ptr(fmt) }.to_bytes();
    let (level, body) = printf::split_level(fmt);
    let level = level_number(level);
    LAST_LEVEL.store(level, Ordering::Relaxed);
    let mut line = Line {
        buf: [0; PRINTK_MAX],
        len: 0,
    };
    let n = printf::format(body, &mut VaArgs(&mut args), &mut line);
    // The kernel log keeps every message, whatever the console shows (`dmesg`). A `KERN_CONT`
    // message is a record of its own there, at the level of the one it continues.
    kcore::console::printk_record(level, &line.buf[..line.len]);
    if level < kcore::console::loglevel() {
        kcore::console::write_bytes(&line.buf[..line.len]);
    }
    c_int::try_from(n).unwrap_or(c_int::MAX)
}
