//! A small shell on the serial console.
//!
//! Reads a line (echoing what is typed, with backspace), splits it into words, and runs the
//! command named by the first word. It works the same from a terminal (Enter sends `\r`) and from
//! a pipe (`printf 'help\npoweroff\n' | cargo run`, lines end in `\n`).

use alloc::string::String;
use alloc::vec::Vec;
use drivers::qemu_exit::{ExitCode, exit};

use crate::{print, println};

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
        usage: "[WORD...]",
        help: "print the words",
        run: echo,
    },
    Command {
        name: "ls",
        usage: "",
        help: "list the files in the initramfs",
        run: ls,
    },
    Command {
        name: "cat",
        usage: "FILE...",
        help: "print files from the initramfs",
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

fn echo(args: &[&str]) {
    println!("{}", args.join(" "));
}

fn ls(_: &[&str]) {
    for entry in crate::initramfs::archive().entries() {
        match entry {
            Ok(e) if e.is_dir() => println!("{:>10}  {}/", "-", e.name()),
            Ok(e) => println!("{:>10}  {}", e.data().len(), e.name()),
            Err(err) => {
                println!("ls: initramfs is damaged: {err}");
                return;
            }
        }
    }
}

fn cat(args: &[&str]) {
    if args.is_empty() {
        println!("usage: cat FILE...");
    }
    for path in args {
        match crate::initramfs::file(path) {
            Some(data) => print!("{}", String::from_utf8_lossy(data)),
            None => println!("cat: {path}: no such file in the initramfs"),
        }
    }
}

fn meminfo(_: &[&str]) {
    let frames = crate::memory::page_alloc::stats();
    let (heap_used, heap_free) = crate::memory::heap::usage();
    println!(
        "frames: {} total, {} used, {} free (4 KiB each)",
        frames.total,
        frames.used,
        frames.free()
    );
    println!(
        "memory: {} KiB total, {} KiB used, {} KiB free",
        frames.total * 4,
        frames.used * 4,
        frames.free() * 4
    );
    println!("heap:   {} bytes used, {} bytes free", heap_used, heap_free);
}

fn uptime(_: &[&str]) {
    let us = crate::time::uptime_us();
    let ticks = crate::time::jiffies();
    println!(
        "up {}.{:03} s ({ticks} ticks at {} Hz)",
        us / 1_000_000,
        us % 1_000_000 / 1000,
        crate::time::HZ
    );
}

fn cpus(_: &[&str]) {
    use core::sync::atomic::Ordering::Relaxed;
    println!(
        "{:>4} {:>7} {:>5} {:>7} {:>10} {:>10}",
        "CPU", "APIC id", "node", "online", "ticks", "switches"
    );
    for c in crate::cpu::all() {
        println!(
            "{:>4} {:>7} {:>5} {:>7} {:>10} {:>10}",
            c.id,
            c.apic_id.load(Relaxed),
            c.node.load(Relaxed),
            if c.online.load(Relaxed) { "yes" } else { "no" },
            c.ticks.load(Relaxed),
            c.context_switches.load(Relaxed)
        );
    }
}

fn numa(_: &[&str]) {
    use core::sync::atomic::Ordering::Relaxed;
    let nodes = crate::memory::numa::node_count();
    println!("{nodes} NUMA node(s)");
    for node in 0..nodes {
        let cpus: Vec<String> = crate::cpu::all()
            .filter(|c| c.node.load(Relaxed) == node)
            .map(|c| alloc::format!("{}", c.id))
            .collect();
        let mem = crate::memory::numa::node_memory(node);
        println!(
            "node {node}: CPUs [{}], memory {} MiB total, {} MiB free",
            cpus.join(","),
            mem.total_pages * 4 / 1024,
            mem.free_pages * 4 / 1024
        );
    }
}

fn ps(_: &[&str]) {
    println!("{:>5} {:<16} {:>4} {:<9}", "ID", "NAME", "CPU", "STATE");
    for t in crate::sched::threads() {
        let state = alloc::format!("{:?}", t.state());
        println!(
            "{:>5} {:<16} {:>4} {:<9}{}",
            t.id,
            t.name,
            t.cpu(),
            state,
            if t.pinned { " pinned" } else { "" }
        );
    }
}

fn poweroff(_: &[&str]) {
    println!("Powering off.");
    exit(ExitCode::Success);
}
