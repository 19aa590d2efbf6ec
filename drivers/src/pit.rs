//! The 8254 programmable interval timer (PIT), as a reference clock.
//!
//! The PIT counts down at a fixed 1.193182 MHz on every PC, which makes it a trustworthy ruler
//! for measuring other clocks, such as the CPU's time-stamp counter. Channel 2 is used because
//! its gate is software controlled (port 0x61) and it raises no interrupt.

use x86_64::instructions::port::Port;

/// The PIT input frequency in Hz.
pub const FREQUENCY_HZ: u64 = 1_193_182;

/// Busy-waits for `ticks` PIT ticks (at most 65535, about 55 ms) using channel 2 in one-shot mode.
///
/// Returns when the count reaches zero. Interrupts are not needed.
pub fn wait_ticks(ticks: u16) {
    let mut gate = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x42, 0x43 and 0x61 belong to the PIT and the speaker gate on every PC;
    // only channel 2 (not used by anything else in Sheaf) is reprogrammed, speaker output stays off.
    unsafe {
        // Gate on (bit 0), speaker off (bit 1).
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        // Channel 2, access lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
        command.write(0b1011_0000);
        channel2.write(ticks as u8);
        channel2.write((ticks >> 8) as u8);
        // Bit 5 of port 0x61 mirrors channel 2's output, which goes high at terminal count.
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
    }
}
