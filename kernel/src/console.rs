//! The kernel console on the COM1 serial port: `print!`/`println!` and the `log` backend.
//!
//! All output goes through one lock so lines from different places do not interleave mid-line.
//! Log records are prefixed Linux-style with the time since boot: `[    0.012345] INFO message`.

use core::fmt::{self, Write};
use drivers::serial::{COM1, SerialPort};
use spin::Mutex;

static CONSOLE: Mutex<Option<SerialPort>> = Mutex::new(None);

/// Initialises COM1 and installs the console as the `log` backend.
pub fn init() {
    // SAFETY: COM1 is the PC's first UART and the console is its only driver.
    let port = unsafe { SerialPort::init(COM1) };
    *CONSOLE.lock() = port;
    // `set_logger` fails only if a logger is already set, which would be this one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Writes formatted text to the console (used by [`print!`](crate::print)).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    if let Some(port) = CONSOLE.lock().as_mut() {
        // Serial output cannot fail.
        let _ = port.write_fmt(args);
    }
}

/// Returns the next byte typed on the console, if one is waiting.
pub fn try_read() -> Option<u8> {
    CONSOLE.lock().as_mut().and_then(SerialPort::try_receive)
}

/// Breaks the console lock so a panic can still print, even if it struck while printing.
///
/// # Safety
/// Only for the panic path: whoever held the lock never runs again (only one CPU runs so far).
pub unsafe fn force_unlock() {
    if CONSOLE.is_locked() {
        // SAFETY: the caller guarantees the holder will not touch the port again.
        unsafe { CONSOLE.force_unlock() };
    }
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints to the serial console, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let us = crate::time::uptime_us();
            crate::println!(
                "[{:5}.{:06}] {:5} {}",
                us / 1_000_000,
                us % 1_000_000,
                record.level(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}
