//! The COM1 serial port: the kernel console.
//!
//! A thin layer over the [`uart_16550`] crate that adds the one terminal nicety a console needs
//! on output: `\n` is sent as `\r\n`, so the text lines up both in a raw terminal and in a log
//! file. Input is returned raw; line editing is the shell's job.

use core::fmt;
use uart_16550::{Config, Uart16550, backend::PioBackend};

/// I/O port base of COM1 on every PC.
pub const COM1: u16 = 0x3f8;

/// A 16550 UART driven through x86 port I/O.
pub struct SerialPort {
    uart: Uart16550<PioBackend>,
}

impl SerialPort {
    /// Takes the UART at `base` and initialises it (115200 baud, 8N1, FIFOs on).
    ///
    /// Returns `None` when no UART answers at that port.
    ///
    /// # Safety
    /// `base` must be the I/O base of a 16550 UART that nothing else drives for as long as the
    /// returned value lives.
    pub unsafe fn init(base: u16) -> Option<Self> {
        // SAFETY: the caller guarantees `base` is an unshared 16550 UART.
        let mut uart = unsafe { Uart16550::new_port(base) }.ok()?;
        uart.init(Config::default()).ok()?;
        Some(Self { uart })
    }

    /// Sends one byte, waiting while the transmit FIFO is full.
    pub fn send(&mut self, byte: u8) {
        self.uart.send_bytes_exact(&[byte]);
    }

    /// Returns the next received byte, or `None` when nothing is waiting.
    pub fn try_receive(&mut self) -> Option<u8> {
        self.uart.try_receive_byte().ok()
    }
}

impl fmt::Write for SerialPort {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.send(b'\r');
            }
            self.send(byte);
        }
        Ok(())
    }
}
