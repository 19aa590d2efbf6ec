//! The kernel console on the COM1 serial port: `print!`/`println!` and the `log` backend.
//!
//! All output goes through one lock so lines from different places do not interleave mid-line.
//! Log records are prefixed Linux-style with the time since boot: `[    0.012345] INFO message`.
//!
//! Every log record and every module `printk` is also kept in the kernel log ([`LOG`], a
//! static ring of the `logring` crate, which the shell's `dmesg` reads), as Linux's printk
//! ring keeps them: whatever the console log level, with no allocation, from any context.

use crate::sync::{IrqSpinLock, WaitQueue};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use drivers::serial::{COM1, SerialPort};

static CONSOLE: IrqSpinLock<Option<SerialPort>> = IrqSpinLock::new(None);

/// Initialises COM1 and installs the console as the `log` backend.
pub(crate) fn init() {
    // SAFETY: COM1 is the PC's first UART and the console is its only driver.
    let port = unsafe { SerialPort::init(COM1) };
    *CONSOLE.lock() = port;
    // `set_logger` fails only if a logger is already set, which would be this one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Writes formatted text to the console (used by [`print!`](crate::print)), and into the
/// capture buffer while a test captures ([`capture_start`]).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let mut console = CONSOLE.lock();
    if let Some(port) = console.as_mut() {
        // Serial output cannot fail.
        let _ = port.write_fmt(args);
    }
    let mut capture = CAPTURE.lock();
    if capture.on {
        // A full buffer drops the rest (`Capture::write_str` never fails).
        let _ = capture.write_fmt(args);
    }
}

/// The console as a [`fmt::Write`]: [`write_fmt`] for each piece (backtraces and slab
/// reports print their lines with it).
pub struct Writer;

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_fmt(format_args!("{s}"));
        Ok(())
    }
}

/// Writes raw bytes to the console (the shell echoes typed bytes with it, UTF-8 or not), and
/// into the capture buffer while a test captures.
pub fn write_bytes(bytes: &[u8]) {
    let mut console = CONSOLE.lock();
    if let Some(port) = console.as_mut() {
        for &b in bytes {
            port.send(b);
        }
    }
    let mut capture = CAPTURE.lock();
    if capture.on {
        let n = bytes.len().min(CAPTURE_BYTES - capture.len);
        let at = capture.len;
        capture.bytes[at..at + n].copy_from_slice(&bytes[..n]);
        capture.len += n;
    }
}

/// Linux's `console_loglevel`: a `printk` message reaches the console if its level (0
/// `KERN_EMERG` to 7 `KERN_DEBUG`) is below this. 7 by default, as Linux's: everything but
/// debug messages; the command line's `loglevel=N`, `debug` (10) and `quiet` (4) change it.
static LOGLEVEL: AtomicU8 = AtomicU8::new(7);

/// The console log level ([`LOGLEVEL`]).
pub fn loglevel() -> u8 {
    LOGLEVEL.load(Ordering::Relaxed)
}

/// Sets the console log level; returns the old one (Linux's `dmesg -n`).
pub fn set_loglevel(level: u8) -> u8 {
    LOGLEVEL.swap(level, Ordering::Relaxed)
}

/// Bytes of console output a capture keeps; later output is not kept.
const CAPTURE_BYTES: usize = 16 * 1024;

/// Console output kept for a test ([`capture_start`], [`capture_stop`]): a static buffer, so
/// capturing works while memory is exhausted.
struct Capture {
    on: bool,
    len: usize,
    bytes: [u8; CAPTURE_BYTES],
}

impl fmt::Write for Capture {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(CAPTURE_BYTES - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

static CAPTURE: IrqSpinLock<Capture> = IrqSpinLock::new(Capture {
    on: false,
    len: 0,
    bytes: [0; CAPTURE_BYTES],
});

/// Starts keeping what is printed on the console (everything, from every CPU, log lines
/// included), forgetting an earlier capture. For tests of what commands print.
pub fn capture_start() {
    let mut capture = CAPTURE.lock();
    capture.on = true;
    capture.len = 0;
}

/// Stops the capture and appends what it kept (its first 16 KiB) to `out`, as far as `out`'s
/// capacity goes: nothing is allocated, so a test may call it while memory is exhausted.
pub fn capture_stop(out: &mut alloc::string::String) {
    let mut capture = CAPTURE.lock();
    capture.on = false;
    let kept = &capture.bytes[..capture.len];
    // Bytes that are not UTF-8 (echoed as typed) become U+FFFD, as `from_utf8_lossy` has it.
    for chunk in kept.utf8_chunks() {
        for text in [
            chunk.valid(),
            if chunk.invalid().is_empty() {
                ""
            } else {
                "\u{fffd}"
            },
        ] {
            let room = out.capacity() - out.len();
            let mut end = text.len().min(room);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&text[..end]);
        }
    }
}

/// Bytes received by the serial interrupt and not read yet.
struct InputRing {
    bytes: [u8; INPUT_RING],
    head: usize,
    len: usize,
}

impl InputRing {
    /// Queues a received byte (dropped when the ring is full). A Ctrl-C raises the flag and is
    /// queued too: the shell's line editor sees it and drops the line typed so far.
    fn push(&mut self, byte: u8) {
        if byte == CTRL_C {
            INTERRUPT.store(true, Ordering::Relaxed);
        }
        if self.len < INPUT_RING {
            let tail = (self.head + self.len) % INPUT_RING;
            self.bytes[tail] = byte;
            self.len += 1;
        }
    }
}

/// Capacity of the input ring; bytes arriving when it is full are dropped.
const INPUT_RING: usize = 1024;

static INPUT: IrqSpinLock<InputRing> = IrqSpinLock::new(InputRing {
    bytes: [0; INPUT_RING],
    head: 0,
    len: 0,
});
static INPUT_WAITERS: WaitQueue = WaitQueue::new();

/// Switches console input to interrupts: COM1's IRQ 4 is routed to the boot CPU and every
/// received byte wakes the readers.
pub(crate) fn enable_input_interrupt() {
    if let Some(port) = CONSOLE.lock().as_mut() {
        port.enable_receive_interrupt();
    }
    let bsp = crate::cpu::cpu(0).expect("the boot CPU exists");
    crate::arch::apic::route_isa_irq(
        4,
        crate::arch::vectors::SERIAL,
        bsp.apic_id.load(core::sync::atomic::Ordering::Relaxed),
    );
    // Bytes that arrived before the interrupt was on would not raise one: collect them now.
    handle_irq();
}

/// The serial interrupt handler's work: move received bytes into the input ring.
pub(crate) fn handle_irq() {
    let mut received = false;
    {
        let mut port = CONSOLE.lock();
        let mut input = INPUT.lock();
        while let Some(byte) = port.as_mut().and_then(SerialPort::try_receive) {
            input.push(byte);
            received = true;
        }
    }
    if received {
        INPUT_WAITERS.wake_all();
    }
}

/// Ctrl-C (ETX), which asks the command running at the console to stop.
pub const CTRL_C: u8 = 0x03;

/// Set by the serial interrupt when Ctrl-C arrives; the shell clears it before each command.
static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was typed since [`clear_interrupt`]: long-running commands check it in their
/// loops and stop early (as Linux's long loops check `fatal_signal_pending`). One relaxed load.
pub fn interrupted() -> bool {
    INTERRUPT.load(Ordering::Relaxed)
}

/// Forgets an earlier Ctrl-C (the shell calls it before running a command).
pub fn clear_interrupt() {
    INTERRUPT.store(false, Ordering::Relaxed);
}

/// Raises the Ctrl-C flag as a typed Ctrl-C does (for tests, which cannot type).
pub fn raise_interrupt() {
    INTERRUPT.store(true, Ordering::Relaxed);
}

/// Queues `bytes` as if they had been typed (a Ctrl-C among them raises the flag, as typed):
/// for tests of what reads the console. Bytes that do not fit in the input ring are dropped,
/// as typed ones are.
pub fn push_input(bytes: &[u8]) {
    {
        let mut input = INPUT.lock();
        for &byte in bytes {
            input.push(byte);
        }
    }
    INPUT_WAITERS.wake_all();
}

/// Discards every byte typed and not read yet, as Linux's terminal does when Ctrl-C interrupts
/// (the `INTR` character flushes the input queue): the Ctrl-C itself, and whatever was typed
/// ahead for the interrupted command.
pub fn flush_input() {
    let mut input = INPUT.lock();
    input.head = 0;
    input.len = 0;
}

/// Returns the next byte typed on the console, if one is waiting.
pub fn try_read() -> Option<u8> {
    let mut input = INPUT.lock();
    if input.len == 0 {
        return None;
    }
    let byte = input.bytes[input.head];
    input.head = (input.head + 1) % INPUT_RING;
    input.len -= 1;
    Some(byte)
}

/// Sleeps until a byte arrives on the console and returns it.
pub fn read_byte() -> u8 {
    INPUT_WAITERS.wait_until(try_read)
}

/// Bytes of the kernel log ring (Linux's `log_buf_len`; 64 KiB holds about a thousand lines).
pub const LOG_BYTES: usize = 64 * 1024;

/// The longest record text kept (Linux's `LOG_LINE_MAX`, about 1 KiB); the rest is cut.
pub const LOG_LINE_MAX: usize = 1024;

pub use logring::{Cursor as LogCursor, Entry as LogEntry};

/// The kernel log: every record since boot (or since [`log_clear`]), the oldest dropped first
/// when it is full. Taken alone or before [`CONSOLE`], never inside it.
static LOG: IrqSpinLock<logring::LogRing<LOG_BYTES>> = IrqSpinLock::new(logring::LogRing::new());

/// Adds a record to the kernel log at Linux level `level` (0 `KERN_EMERG` to 7 `KERN_DEBUG`),
/// stamped with the time since boot; one trailing newline is dropped, the text is cut to
/// [`LOG_LINE_MAX`] bytes. Does not print it: modules' `printk` prints to the console itself
/// when the level is below [`loglevel`], and keeps every message here. Allocates nothing and
/// may be called from interrupt handlers. Returns the record's sequence number.
pub fn printk_record(level: u8, text: &[u8]) -> u64 {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = &text[..text.len().min(LOG_LINE_MAX)];
    let now = crate::time::uptime_us();
    LOG.lock().push(level.min(7), now, text)
}

/// Reads the kernel log record at `cursor` (start with [`LogCursor::START`]; a record dropped
/// since moves it to the oldest one kept), copying its text into `buf` as far as it goes.
/// Returns the record and where the next one is, or `None` after the newest. The log's lock is
/// held only while the one record is copied, so a reader may print between calls.
pub fn log_read(cursor: LogCursor, buf: &mut [u8]) -> Option<(LogEntry, LogCursor)> {
    LOG.lock().read(cursor, buf)
}

/// A cursor after the newest record of the kernel log: reads only what is logged from now on.
pub fn log_end() -> LogCursor {
    LOG.lock().end()
}

/// The kernel log's first kept and next sequence numbers (`dmesg` and tests).
pub fn log_seqs() -> (u64, u64) {
    let log = LOG.lock();
    (log.first_seq(), log.next_seq())
}

/// Forgets every record of the kernel log (`dmesg -C`); sequence numbers go on.
pub fn log_clear() {
    LOG.lock().clear();
}

/// The Linux level of a `log` record: error 3, warn 4, info 6, debug and trace 7.
fn linux_level(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// A log record's text being formatted on the stack for the kernel log.
struct LogLine {
    buf: [u8; LOG_LINE_MAX],
    len: usize,
}

impl fmt::Write for LogLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(LOG_LINE_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Breaks the console lock so a panic can still print, even if it struck while printing.
///
/// # Safety
/// Only for the panic path: whoever held the lock must never write again.
pub(crate) unsafe fn force_unlock() {
    if CONSOLE.is_locked() {
        // SAFETY: the caller guarantees the holder will not touch the port again.
        unsafe { CONSOLE.force_unlock() };
    }
    if CAPTURE.is_locked() {
        // SAFETY: as above: its holder was printing and will not touch the buffer again.
        unsafe { CAPTURE.force_unlock() };
    }
    if LOG.is_locked() {
        // SAFETY: as above: its holder was logging and will not touch the ring again (a record it
        // was writing may come back cut or garbled: `logring` never reads out of its array).
        unsafe { LOG.force_unlock() };
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
            let mut line = LogLine {
                buf: [0; LOG_LINE_MAX],
                len: 0,
            };
            // A full line drops the rest (`LogLine::write_str` never fails).
            let _ = line.write_fmt(*record.args());
            let us = crate::time::uptime_us();
            // The ring's lock is let go before the console's is taken ([`LOG`]).
            LOG.lock()
                .push(linux_level(record.level()), us, &line.buf[..line.len]);
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
