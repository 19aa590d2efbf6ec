//! `dmesg`: the kernel log since boot (`kcore::console`'s ring), as util-linux's `dmesg`
//! prints it. Allocates nothing: it answers while memory is exhausted.

use core::fmt::Write;

use kcore::console::{LOG_LINE_MAX, LogCursor};

use crate::println;

const USAGE: &str = "usage: dmesg [-r] [-c|-C] [-l LEVEL[,LEVEL...]]";

/// One output line, built on the stack and written at once so lines from other CPUs do not cut
/// into it.
struct Line {
    buf: [u8; LOG_LINE_MAX + 32],
    len: usize,
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// `dmesg [-r] [-c|-C] [-l LEVELS]`: every record kept, oldest first, as
/// `[    1.234567] text` (`-r`: `<6>[    1.234567] text`, the level in front); `-l err,warn`
/// only the records of those levels; `-c` clears the log after printing it, `-C` clears it
/// without printing.
pub(super) fn dmesg(args: &[&str]) {
    let mut raw = false;
    let mut clear_after = false;
    let mut print = true;
    // Bit `level` set: records of that level are printed.
    let mut levels = 0xffu8;
    let mut words = args.iter();
    while let Some(&word) = words.next() {
        match word {
            "-r" | "--raw" => raw = true,
            "-c" | "--read-clear" => clear_after = true,
            "-C" | "--clear" => print = false,
            "-l" | "--level" => {
                let Some(&list) = words.next() else {
                    return println!("dmesg: option '{word}' requires an argument\n{USAGE}");
                };
                match logring::parse_levels(list) {
                    Ok(mask) => levels = mask,
                    Err(name) => return println!("dmesg: unknown level '{name}'"),
                }
            }
            _ => return println!("dmesg: invalid option '{word}'\n{USAGE}"),
        }
    }
    if print {
        print_log(raw, levels);
    }
    if clear_after || !print {
        kcore::console::log_clear();
    }
}

fn print_log(raw: bool, levels: u8) {
    let mut text = [0u8; LOG_LINE_MAX];
    let mut line = Line {
        buf: [0; LOG_LINE_MAX + 32],
        len: 0,
    };
    let mut cursor = LogCursor::START;
    while let Some((entry, next)) = kcore::console::log_read(cursor, &mut text) {
        cursor = next;
        if kcore::console::interrupted() {
            return;
        }
        if levels & (1 << entry.level.min(7)) == 0 {
            continue;
        }
        line.len = 0;
        if raw {
            // `Line::write_str` never fails.
            let _ = write!(line, "<{}>", entry.level);
        }
        let us = entry.timestamp_us;
        let _ = write!(line, "[{:5}.{:06}] ", us / 1_000_000, us % 1_000_000);
        line.push(&text[..entry.len]);
        line.push(b"\n");
        kcore::console::write_bytes(&line.buf[..line.len]);
    }
}
