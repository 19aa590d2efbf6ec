//! On-target tests of the shell as a user meets it: each command line run through
//! [`super::execute`] with the console captured (`kcore::console::capture_start`).

use alloc::string::String;
use alloc::vec::Vec;

/// What a command line must print.
#[derive(Clone, Copy)]
enum Expect {
    /// An error saying memory is out.
    OutOfMemory,
    /// Its usual answer, which contains this text (it needs no memory).
    Prints(&'static str),
}

/// A command line; what it prints while memory is exhausted; what it prints once memory is
/// back.
struct Case {
    line: &'static str,
    exhausted: Expect,
    back: &'static str,
}

/// Every command (but `poweroff`) at least once: checked against the shell's table below, so a
/// new command needs a line here.
const CASES: &[Case] = &[
    Case {
        line: "help",
        exhausted: Expect::Prints("Commands:"),
        back: "Commands:",
    },
    Case {
        line: "echo hello  world",
        exhausted: Expect::Prints("hello world"),
        back: "hello world",
    },
    Case {
        line: "ls",
        exhausted: Expect::Prints("etc/motd"),
        back: "etc/motd",
    },
    Case {
        line: "ls /sys/kernel/slab",
        exhausted: Expect::Prints("kmalloc-64 -> "),
        back: "kmalloc-64 -> ",
    },
    Case {
        line: "cat /etc/motd",
        exhausted: Expect::Prints("Welcome to Sheaf"),
        back: "Welcome to Sheaf",
    },
    Case {
        line: "cat /proc/slabinfo",
        exhausted: Expect::Prints("slabinfo - version: 2.1"),
        back: "slabinfo - version: 2.1",
    },
    Case {
        line: "cat /sys/kernel/slab/kmalloc-64/object_size",
        exhausted: Expect::Prints("64"),
        back: "64",
    },
    Case {
        line: "meminfo",
        exhausted: Expect::Prints("frames:"),
        back: "frames:",
    },
    Case {
        line: "uptime",
        exhausted: Expect::Prints("ticks at"),
        back: "ticks at",
    },
    Case {
        line: "cpus",
        exhausted: Expect::Prints("APIC id"),
        back: "APIC id",
    },
    Case {
        line: "numa",
        exhausted: Expect::Prints("NUMA node(s)"),
        back: "NUMA node(s)",
    },
    Case {
        line: "ps",
        exhausted: Expect::OutOfMemory,
        back: "idle/0",
    },
    Case {
        line: "rcu",
        exhausted: Expect::Prints("grace periods completed"),
        back: "grace periods completed",
    },
    Case {
        line: "workqueues",
        exhausted: Expect::OutOfMemory,
        back: "events_unbound",
    },
    Case {
        line: "slabinfo -d",
        exhausted: Expect::Prints("cache(s) waiting to be destroyed"),
        back: "cache(s) waiting to be destroyed",
    },
    Case {
        line: "kmalloc-test 5",
        exhausted: Expect::OutOfMemory,
        back: "every one intact",
    },
    Case {
        line: "freeqbench 100",
        exhausted: Expect::OutOfMemory,
        back: "(cycles with the lock held",
    },
    Case {
        line: "staticbench 1000",
        exhausted: Expect::OutOfMemory,
        back: "static cache",
    },
    Case {
        line: "destroybench 100",
        exhausted: Expect::OutOfMemory,
        back: "kmem_cache_destroy with 100 objects",
    },
    Case {
        line: "slabbench",
        exhausted: Expect::OutOfMemory,
        back: "live objects",
    },
    Case {
        line: "kmalloc-test abc",
        exhausted: Expect::Prints("is not a decimal number"),
        back: "is not a decimal number",
    },
    Case {
        line: "frobnicate",
        exhausted: Expect::Prints("unknown command: frobnicate"),
        back: "unknown command: frobnicate",
    },
];

/// Commands the memory test leaves out: `poweroff` ends the boot; `slabinfo` (without `-d`)
/// lists the caches through `SlabAllocator::caches`, which allocates its list infallibly
/// (docs/slab.md, "When memory runs out").
const NOT_UNDER_OOM: &[&str] = &["poweroff", "slabinfo"];

/// Runs `line` with the console captured into `out` (whose capacity bounds what is kept).
fn run_captured(line: &str, out: &mut String) {
    out.clear();
    kcore::console::capture_start();
    super::execute(line);
    kcore::console::capture_stop(out);
}

#[crate::ktest]
fn every_command_answers_while_memory_is_exhausted_and_works_once_it_is_back() {
    for command in super::COMMANDS {
        assert!(
            NOT_UNDER_OOM.contains(&command.name)
                || CASES
                    .iter()
                    .any(|c| c.line.split(' ').next() == Some(command.name)),
            "`{}` has no line in CASES",
            command.name
        );
    }
    kcore::selftest::quiesce();
    // Every output buffer is allocated before memory is taken.
    let mut outs: Vec<String> = CASES
        .iter()
        .map(|_| String::with_capacity(16 << 10))
        .collect();
    let exhausted = kcore::selftest::exhaust_all_cpus();
    for (case, out) in CASES.iter().zip(&mut outs) {
        run_captured(case.line, out);
    }
    exhausted.give_back();
    for (case, out) in CASES.iter().zip(&outs) {
        match case.exhausted {
            Expect::OutOfMemory => assert!(
                out.contains("out of memory"),
                "`{}` with memory exhausted printed:\n{out}",
                case.line
            ),
            Expect::Prints(text) => assert!(
                out.contains(text),
                "`{}` with memory exhausted printed:\n{out}",
                case.line
            ),
        }
    }
    let mut out = String::with_capacity(16 << 10);
    for case in CASES {
        run_captured(case.line, &mut out);
        assert!(
            out.contains(case.back) && !out.contains("out of memory"),
            "`{}` with memory back printed:\n{out}",
            case.line
        );
    }
}
