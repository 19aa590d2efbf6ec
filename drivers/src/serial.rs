//! The COM1 serial port: the kernel console.
//!
//! A thin layer over the [`uart_16550`] crate that adds the one terminal nicety a console needs
//! on output: `\n` is sent as `\r\n`, so the text lines up both in a raw terminal and in a log
//! file. Input is returned raw; line editing is the shell's job.

use core::fmt;
use uart_16550::{Config, Uart16550, backend::PioBackend};
use x86_64::instructions::port::Port;

/// I/O port base of COM1 on every PC.
pub const COM1: u16 = 0x3f8;

/// A 16550 UART driven through x86 port I/O.
pub struct SerialPort {
    uart: Uart16550<PioBackend>,
    /// Bytes that had arrived before `init` (which resets the FIFOs), oldest first.
    early: [u8; EARLY_BYTES],
    early_len: usize,
    early_pos: usize,
}

/// How many bytes received before initialisation are kept.
const EARLY_BYTES: usize = 256;

/// How long the receiver must stay empty before initialisation may reset it.
const QUIET_POLLS: u32 = 20_000;

impl SerialPort {
    /// Takes the UART at `base` and initialises it (115200 baud, 8N1, FIFOs on).
    ///
    /// Returns `None` when no UART answers at that port.
    ///
    /// # Safety
    /// `base` must be the I/O base of a 16550 UART that nothing else drives for as long as the
    /// returned value lives.
    pub unsafe fn init(base: u16) -> Option<Self> {
        // Input may already be waiting (typed or piped while the firmware ran): initialising
        // resets the receive FIFO, so take those bytes first. The emulator hands over the next
        // byte only after the previous one is read, and not instantly, so keep polling until
        // the receiver has stayed empty for a while.
        let mut early = [0; EARLY_BYTES];
        let mut early_len = 0;
        let mut lsr = Port::<u8>::new(base + 5);
        let mut data = Port::<u8>::new(base);
        let mut quiet = 0;
        // SAFETY: the caller guarantees `base` is a 16550 UART; reading LSR has no side effect
        // and reading RBR only takes a received byte, which we keep.
        unsafe {
            while early_len < EARLY_BYTES && quiet < QUIET_POLLS {
                if lsr.read() & 1 != 0 {
                    early[early_len] = data.read();
                    early_len += 1;
                    quiet = 0;
                } else {
                    quiet += 1;
                }
            }
        }
        // SAFETY: the caller guarantees `base` is an unshared 16550 UART.
        let mut uart = unsafe { Uart16550::new_port(base) }.ok()?;
        uart.init(Config::default()).ok()?;
        Some(Self {
            uart,
            early,
            early_len,
            early_pos: 0,
        })
    }

    /// Sends one byte, waiting while the transmit FIFO is full.
    pub fn send(&mut self, byte: u8) {
        self.uart.send_bytes_exact(&[byte]);
    }

    /// Makes the UART raise its interrupt (IRQ 4 for COM1) whenever received data is waiting.
    pub fn enable_receive_interrupt(&mut self) {
        self.uart
            .enable_interrupts(uart_16550::spec::registers::IER::DATA_READY);
    }

    /// Returns the next received byte, or `None` when nothing is waiting.
    pub fn try_receive(&mut self) -> Option<u8> {
        if self.early_pos < self.early_len {
            self.early_pos += 1;
            return Some(self.early[self.early_pos - 1]);
        }
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
