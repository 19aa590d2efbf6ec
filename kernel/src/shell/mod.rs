//! A small shell on the serial console.
//!
//! Reads a line (echoing what is typed, with backspace), splits it into words, and runs the
//! command named by the first word. It works the same from a terminal (Enter sends `\r`) and from
//! a pipe (`printf 'help\npoweroff\n' | cargo run`, lines end in `\n`).

use alloc::string::String;
use alloc::vec::Vec;

use crate::{print, println};

mod commands;
mod slab;
mod sysfs;

use commands::*;
use slab::{destroybench, freeqbench, kmalloc_test, slabbench, slabinfo, staticbench};

/// The prompt printed before each command line.
pub const PROMPT: &str = "sheaf> ";

/// The longest command line the shell accepts; longer input is cut at this length.
const MAX_LINE: usize = 256;

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
        name: "uptime",
        usage: "",
        help: "time since boot",
        run: uptime,
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
    let mut line = String::new();
    loop {
        print!("{PROMPT}");
        read_line(&mut line);
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some((&name, args)) = words.split_first() else {
            continue;
        };
        match COMMANDS.iter().find(|c| c.name == name) {
            Some(command) => (command.run)(args),
            None => println!("unknown command: {name} (type `help` for the list)"),
        }
    }
}

/// Reads one line into `line`, echoing it and handling backspace. Returns on `\r` or `\n`.
fn read_line(line: &mut String) {
    line.clear();
    loop {
        let byte = next_byte();
        match byte {
            b'\r' | b'\n' => {
                println!();
                return;
            }
            // Backspace (^H) and DEL, which most terminals send for the backspace key.
            0x08 | 0x7f => {
                if line.pop().is_some() {
                    print!("\x08 \x08");
                }
            }
            // Printable ASCII; other control bytes and non-ASCII are ignored.
            0x20..=0x7e if line.len() < MAX_LINE => {
                line.push(byte as char);
                print!("{}", byte as char);
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
        let call = if c.usage.is_empty() {
            String::from(c.name)
        } else {
            alloc::format!("{} {}", c.name, c.usage)
        };
        println!("  {call:<16} {}", c.help);
    }
}
