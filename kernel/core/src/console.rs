//! The kernel console on the COM1 serial port: `print!`/`println!` and the `log` backend.
//!
//! All output goes through one lock so lines from different places do not interleave mid-line.
//! Log records are prefixed Linux-style with the time since boot: `[    0.012345] INFO message`.

use crate::sync::{IrqSpinLock, WaitQueue};
use core::fmt::{self, Write};
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

/// Writes formatted text to the console (used by [`print!`](crate::print)).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    if let Some(port) = CONSOLE.lock().as_mut() {
        // Serial output cannot fail.
        let _ = port.write_fmt(args);
    }
}

/// Bytes received by the serial interrupt and not read yet.
struct InputRing {
    bytes: [u8; INPUT_RING],
    head: usize,
    len: usize,
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
            if input.len < INPUT_RING {
                let tail = (input.head + input.len) % INPUT_RING;
                input.bytes[tail] = byte;
                input.len += 1;
            }
            received = true;
        }
    }
    if received {
        INPUT_WAITERS.wake_all();
    }
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

/// Breaks the console lock so a panic can still print, even if it struck while printing.
///
/// # Safety
/// Only for the panic path: whoever held the lock must never write again.
pub(crate) unsafe fn force_unlock() {
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
