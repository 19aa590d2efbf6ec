//! A small shell on the serial console.
//!
//! Reads a line (echoing what is typed, with backspace), splits it into words, and runs the
//! command named by the first word. It works the same from a terminal (Enter sends `\r`) and from
//! a pipe (`printf 'help\npoweroff\n' | cargo run`, lines end in `\n`).

use alloc::string::String;

use crate::{print, println};

mod args;
mod commands;
mod dmesg;
mod files;
mod modules;
mod slab;
mod sysfs;
#[cfg(feature = "ktest")]
mod tests;

use commands::*;
use dmesg::dmesg;
use files::{cat, echo, ls};
use modules::{insmod, lsmod, modbench, modinfo, rmmod};
use slab::{
    destroybench, freeqbench, kmalloc_overflow, kmalloc_test, sheaves, slabbench, slabinfo,
    staticbench,
};

/// The prompt printed before each command line.
pub const PROMPT: &str = "sheaf> ";

/// The longest command line the shell accepts, in bytes; a longer one is refused whole, with a
/// message (the console's input ring holds 1024 bytes: a line must fit while it is echoed).
pub(crate) const MAX_LINE: usize = 1000;

/// A shell command: its name, a one-line description and what it runs.
struct Command {
    name: &'static str,
    usage: &'static str,
    help: &'static str,
    run: fn(&[&str]),
}

const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        usage: "",
        help: "list the commands",
        run: help,
    },
    Command {
        name: "echo",
        usage: "[WORD...] [> /sys/FILE]",
        help: "print the words, or write them to a /sys file",
        run: echo,
    },
    Command {
        name: "ls",
        usage: "[/sys/...]",
        help: "list the initramfs, or a /sys directory",
        run: ls,
    },
    Command {
        name: "cat",
        usage: "FILE...",
        help: "print files from the initramfs, /sys or /proc/slabinfo",
        run: cat,
    },
    Command {
        name: "meminfo",
        usage: "",
        help: "physical frames and heap in use",
        run: meminfo,
    },
    Command {
        name: "bt",
        usage: "",
        help: "print the shell's backtrace (docs/debugging.md)",
        run: bt,
    },
    Command {
        name: "uptime",
        usage: "",
        help: "time since boot",
        run: uptime,
    },
    Command {
        name: "dmesg",
        usage: "[-r] [-c|-C] [-l LVL]",
        help: "the kernel log since boot (-l err,warn: those levels; -r: raw; -c: clear)",
        run: dmesg,
    },
    Command {
        name: "cpus",
        usage: "",
        help: "CPUs: APIC id, node, ticks, context switches",
        run: cpus,
    },
    Command {
        name: "numa",
        usage: "",
        help: "NUMA nodes: their CPUs and free memory",
        run: numa,
    },
    Command {
        name: "ps",
        usage: "",
        help: "kernel threads: id, name, CPU, state",
        run: ps,
    },
    Command {
        name: "rcu",
        usage: "",
        help: "RCU: grace periods completed, callbacks queued per CPU",
        run: rcu,
    },
    Command {
        name: "workqueues",
        usage: "",
        help: "workqueues and worker pools: workers idle/busy, pending and running items",
        run: workqueues,
    },
    Command {
        name: "slabinfo",
        usage: "[-s] [-d]",
        help: "slab caches (-s: statistics too; -d: destruction pending)",
        run: slabinfo,
    },
    Command {
        name: "sheaves",
        usage: "CACHE",
        help: "a cache's per-CPU sheaves (main, spare, rcu_free) and barns",
        run: sheaves,
    },
    Command {
        name: "kmalloc-overflow",
        usage: "[SIZE [OFFSET]]",
        help: "kmalloc(SIZE), write byte OFFSET (default: just past SIZE), kfree: caught under slub_debug=ZU",
        run: kmalloc_overflow,
    },
    Command {
        name: "kmalloc-test",
        usage: "[N]",
        help: "alloc/free storm on every CPU, checked",
        run: kmalloc_test,
    },
    Command {
        name: "slabbench",
        usage: "",
        help: "kmalloc vs linked_list_allocator",
        run: slabbench,
    },
    Command {
        name: "freeqbench",
        usage: "[N]",
        help: "lock hold time of N frees, direct vs deferred free queue",
        run: freeqbench,
    },
    Command {
        name: "staticbench",
        usage: "[PAIRS]",
        help: "alloc+free cycles through a static cache vs a dynamic one",
        run: staticbench,
    },
    Command {
        name: "destroybench",
        usage: "[N]",
        help: "kmem_cache_destroy with N objects in kfree_rcu flight, async vs sync",
        run: destroybench,
    },
    Command {
        name: "insmod",
        usage: "FILE [name=value...]",
        help: "load a module (from the initramfs; /lib/modules has the examples)",
        run: insmod,
    },
    Command {
        name: "rmmod",
        usage: "[-f] NAME",
        help: "unload a module (-f: even in use, tainting the kernel)",
        run: rmmod,
    },
    Command {
        name: "lsmod",
        usage: "",
        help: "loaded modules: size, users, used by",
        run: lsmod,
    },
    Command {
        name: "modinfo",
        usage: "FILE",
        help: "a module file's .modinfo and parameters",
        run: modinfo,
    },
    Command {
        name: "modbench",
        usage: "[N]",
        help: "insmod hello: cycles and instructions, next to a cache create",
        run: modbench,
    },
    Command {
        name: "poweroff",
        usage: "",
        help: "leave QEMU (exit status 0)",
        run: poweroff,
    },
];

/// Runs the shell forever (until `poweroff`).
pub fn run() -> ! {
    if let Some(motd) = crate::initramfs::file("etc/motd") {
        print!("{}", String::from_utf8_lossy(motd));
    }
    println!("Type `help` for the list of commands.");
    // The line lives on the stack: reading and splitting it allocates nothing, so the shell
    // answers even when memory is exhausted.
    let mut line = [0u8; MAX_LINE];
    loop {
        print!("{PROMPT}");
        match read_line(&mut line) {
            Ok(len) => match core::str::from_utf8(&line[..len]) {
                Ok(text) => execute(text),
                Err(e) => println!(
                    "shell: byte {:#04x} at column {} is not UTF-8 text: line ignored",
                    line[e.valid_up_to()],
                    e.valid_up_to() + 1
                ),
            },
            Err(LineError::TooLong) => {
                println!("shell: line longer than {MAX_LINE} bytes: ignored")
            }
            Err(LineError::Interrupted) => {}
        }
    }
}

/// The most words a command line may have (the command's name included).
const MAX_WORDS: usize = 64;

/// Runs one command line as typed at the prompt: splits it into words at ASCII white space and
/// runs the command named by the first. Returns when the command is done (or interrupted by
/// Ctrl-C, which it clears first). Allocates nothing itself.
pub fn execute(line: &str) {
    let mut words = [""; MAX_WORDS];
    let mut n = 0;
    for word in line.split_ascii_whitespace() {
        if n == MAX_WORDS {
            println!("shell: more than {MAX_WORDS} words: line ignored");
            return;
        }
        words[n] = word;
        n += 1;
    }
    let Some((&name, args)) = words[..n].split_first() else {
        return;
    };
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(command) => {
            kcore::console::clear_interrupt();
            (command.run)(args);
            if kcore::console::interrupted() {
                println!("^C");
                // The Ctrl-C and what was typed ahead go, as on Linux.
                kcore::console::flush_input();
                kcore::console::clear_interrupt();
            }
        }
        None => println!("unknown command: {name} (type `help` for the list)"),
    }
}

/// Why [`read_line`] returned no line.
pub(crate) enum LineError {
    /// The line was longer than [`MAX_LINE`] bytes (read to its end and dropped).
    TooLong,
    /// Ctrl-C dropped it.
    Interrupted,
}

/// Reads one line into `line`, echoing it and handling backspace, and returns its length.
/// Returns on `\r` or `\n`. Bytes are kept as typed, non-ASCII ones included (the caller
/// refuses a line that is not UTF-8); tabs count as spaces; other control bytes are ignored.
pub(crate) fn read_line(line: &mut [u8; MAX_LINE]) -> Result<usize, LineError> {
    let mut len = 0;
    let mut too_long = false;
    loop {
        let byte = next_byte();
        match byte {
            b'\r' | b'\n' => {
                println!();
                return if too_long {
                    Err(LineError::TooLong)
                } else {
                    Ok(len)
                };
            }
            kcore::console::CTRL_C => {
                println!("^C");
                return Err(LineError::Interrupted);
            }
            // Backspace (^H) and DEL, which most terminals send for the backspace key: one
            // character goes, all the bytes of a UTF-8 one.
            0x08 | 0x7f if !too_long => {
                if len > 0 {
                    len -= 1;
                    while len > 0 && line[len] & 0xc0 == 0x80 {
                        len -= 1;
                    }
                    print!("\x08 \x08");
                }
            }
            _ if too_long => {}
            b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                if len == MAX_LINE {
                    too_long = true;
                    continue;
                }
                line[len] = if byte == b'\t' { b' ' } else { byte };
                len += 1;
                // Echo the byte as it came: a terminal shows a UTF-8 character once its
                // last byte is back.
                kcore::console::write_bytes(&[line[len - 1]]);
            }
            _ => {}
        }
    }
}
/// Waits for the next byte from the console. A `\n` right after a `\r` (a terminal's CR LF)
/// is swallowed so it does not count as a second, empty line.
fn next_byte() -> u8 {
    static LAST_WAS_CR: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    use core::sync::atomic::Ordering::Relaxed;
    loop {
        // Sleeps until the serial interrupt delivers a byte.
        let byte = crate::console::read_byte();
        let after_cr = LAST_WAS_CR.swap(byte == b'\r', Relaxed);
        if !(after_cr && byte == b'\n') {
            return byte;
        }
    }
}

fn help(_: &[&str]) {
    println!("Commands:");
    for c in COMMANDS {
        let width = c.name.len()
            + if c.usage.is_empty() {
                0
            } else {
                1 + c.usage.len()
            };
        let space = if c.usage.is_empty() { "" } else { " " };
        let pad = 16usize.saturating_sub(width);
        println!("  {}{space}{} {:pad$}{}", c.name, c.usage, "", c.help);
    }
}
