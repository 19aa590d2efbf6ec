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
        line: "bt",
        exhausted: Expect::Prints("Call Trace:"),
        back: "kernel::shell::execute+0x",
    },
    Case {
        line: "uptime",
        exhausted: Expect::Prints("ticks at"),
        back: "ticks at",
    },
    Case {
        line: "dmesg -r",
        exhausted: Expect::Prints(">["),
        back: ">[",
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
        line: "slabinfo -s",
        exhausted: Expect::Prints("alloc_fastpath="),
        back: "alloc_fastpath=",
    },
    Case {
        line: "slabinfo -d",
        exhausted: Expect::Prints("cache(s) waiting to be destroyed"),
        back: "cache(s) waiting to be destroyed",
    },
    Case {
        line: "sheaves kmalloc-64",
        exhausted: Expect::Prints("kmalloc-64: sheaves of"),
        back: "barn full",
    },
    Case {
        line: "kmalloc-overflow",
        exhausted: Expect::OutOfMemory,
        back: "nothing detected: boot with slub_debug=ZU",
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
        line: "insmod hello.ko times=2",
        exhausted: Expect::OutOfMemory,
        back: "hello: hello from Rust (2 of 2)",
    },
    Case {
        line: "lsmod",
        exhausted: Expect::Prints("Module                  Size  Used by"),
        back: "hello                  12288  0",
    },
    Case {
        line: "rmmod hello",
        exhausted: Expect::Prints("module hello is not loaded"),
        back: "hello: goodbye from Rust",
    },
    Case {
        line: "modinfo /lib/modules/hello_c.ko",
        exhausted: Expect::Prints("parm:           whom:who to greet (charp)"),
        back: "license:        GPL",
    },
    Case {
        line: "modbench 2",
        exhausted: Expect::OutOfMemory,
        back: "kmem_cache_create of a 64-byte cache",
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

/// Commands the memory test leaves out: `poweroff` ends the boot.
const NOT_UNDER_OOM: &[&str] = &["poweroff"];

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

/// Runs `line` and returns what it printed (up to 16 KiB).
fn output_of(line: &str) -> String {
    let mut out = String::with_capacity(16 << 10);
    run_captured(line, &mut out);
    out
}

#[crate::ktest]
fn numeric_arguments_are_refused_with_their_limits() {
    for (line, says) in [
        (
            "kmalloc-test 99999999999999999999",
            "ROUNDS `99999999999999999999` is too large: give a whole number from 1 to 1000000",
        ),
        (
            "kmalloc-test 18446744073709551615",
            "is too large: give a whole number from 1 to 1000000",
        ),
        ("kmalloc-test -1", "ROUNDS `-1` is not a decimal number"),
        ("kmalloc-test abc", "ROUNDS `abc` is not a decimal number"),
        ("kmalloc-test 0x10", "ROUNDS `0x10` is not a decimal number"),
        ("kmalloc-test 0", "ROUNDS `0` is too small"),
        (
            "destroybench -1",
            "N `-1` is not a decimal number: give a whole number from 1 to 1000000",
        ),
        (
            "freeqbench 500001",
            "N `500001` is too large: give a whole number from 1 to 500000",
        ),
        ("staticbench -1", "PAIRS `-1` is not a decimal number"),
        (
            "staticbench 0",
            "PAIRS `0` is too small: give a whole number from 1 to 100000000",
        ),
        (
            "staticbench 1 2",
            "unexpected argument `2` (usage: staticbench [PAIRS])",
        ),
    ] {
        let out = output_of(line);
        assert!(out.contains(says), "`{line}` printed:\n{out}");
        assert!(
            !out.contains("ok:") && !out.contains("cycles"),
            "`{line}` ran:\n{out}"
        );
    }
}

#[crate::ktest]
fn files_and_directories_answer_as_on_linux() {
    for (line, says, not) in [
        ("ls /proc/slabinfo", "/proc/slabinfo", "etc/motd"),
        ("ls /etc/motd", "/etc/motd", "cmdline"),
        ("ls etc /proc", "etc:", "cmdline"),
        ("ls etc /proc", "/proc:", "cmdline"),
        (
            "ls /nothing",
            "ls: cannot access '/nothing': No such file or directory",
            "etc",
        ),
        (
            "ls etc/motd/",
            "ls: cannot access 'etc/motd/': Not a directory",
            "17",
        ),
        (
            "cat etc/motd/",
            "cat: etc/motd/: Not a directory",
            "Welcome",
        ),
        ("cat /etc", "cat: /etc: Is a directory", "Welcome"),
        (
            "cat /proc/slabinfo/",
            "cat: /proc/slabinfo/: Not a directory",
            "version",
        ),
        (
            "echo 1 > etc/motd/",
            "echo: etc/motd/: Not a directory",
            "Read-only",
        ),
        ("echo 1 > /etc", "echo: /etc: Is a directory", "Read-only"),
        (
            "echo 1 > /etc/motd",
            "echo: /etc/motd: Read-only file system",
            "Not a",
        ),
        (
            "echo 1 > /sys/kernel/slab/kmalloc-64/shrink/",
            "echo: /sys/kernel/slab/kmalloc-64/shrink/: Not a directory",
            "Permission",
        ),
        (
            "cat /sys/kernel/slab/kmalloc-64/object_size/",
            "cat: /sys/kernel/slab/kmalloc-64/object_size/: Not a directory",
            "64\n",
        ),
        (
            "ls /sys/kernel/slab/kmalloc-64/object_size/",
            "ls: cannot access '/sys/kernel/slab/kmalloc-64/object_size/': Not a directory",
            "objects",
        ),
        ("meminfö", "unknown command: meminfö", "frames"),
    ] {
        let out = output_of(line);
        assert!(
            out.contains(says) && !out.contains(not),
            "`{line}` printed:\n{out}"
        );
    }
}

/// Reads one line from bytes queued as typed input, as the shell's loop does.
fn read_typed(bytes: &[u8]) -> Result<String, &'static str> {
    kcore::console::push_input(bytes);
    let mut line = [0u8; super::MAX_LINE];
    let mut out = String::with_capacity(4096);
    kcore::console::capture_start();
    let read = super::read_line(&mut line);
    kcore::console::capture_stop(&mut out);
    match read {
        Ok(len) => match core::str::from_utf8(&line[..len]) {
            Ok(text) => Ok(String::from(text)),
            Err(_) => Err("not UTF-8"),
        },
        Err(super::LineError::TooLong) => Err("too long"),
        Err(super::LineError::Interrupted) => Err("interrupted"),
    }
}

#[crate::ktest]
fn typed_lines_keep_every_byte_and_long_ones_are_refused_whole() {
    kcore::console::clear_interrupt();
    assert_eq!(read_typed(b"meminfo\n").as_deref(), Ok("meminfo"));
    // Not dropped: `mem\xe9info` is not `meminfo`.
    assert_eq!(read_typed(b"mem\xe9info\n"), Err("not UTF-8"));
    assert_eq!(read_typed("meminfö\r".as_bytes()).as_deref(), Ok("meminfö"));
    // Backspace takes a whole character; a tab is a space.
    assert_eq!(
        read_typed("ab\u{e9}\x7f\x08c\td\n".as_bytes()).as_deref(),
        Ok("ac d")
    );
    // A line of exactly the limit works; one byte more is refused whole (not cut).
    let mut long = [b'x'; super::MAX_LINE + 2];
    long[super::MAX_LINE] = b'\n';
    assert_eq!(
        read_typed(&long[..=super::MAX_LINE]).map(|l| l.len()),
        Ok(super::MAX_LINE)
    );
    long[super::MAX_LINE] = b'x';
    long[super::MAX_LINE + 1] = b'\n';
    assert_eq!(read_typed(&long), Err("too long"));
    // Ctrl-C drops the line typed so far.
    assert_eq!(read_typed(b"kmalloc-te\x03"), Err("interrupted"));
    kcore::console::clear_interrupt();
    assert_eq!(read_typed(b"uptime\n").as_deref(), Ok("uptime"));
}

#[crate::ktest]
fn ctrl_c_stops_a_long_command_and_the_prompt_returns() {
    use core::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    // Minutes each without Ctrl-C.
    for line in [
        "kmalloc-test 1000000",
        "destroybench 1000000",
        "freeqbench 500000",
        "staticbench 100000000",
    ] {
        DONE.store(false, Ordering::Release);
        // Ctrl-C every 100 ms until the command returns (the shell forgets an earlier one
        // when the command starts).
        let typist = crate::sched::spawn("ktest-ctrl-c", || {
            while !DONE.load(Ordering::Acquire) {
                let until = crate::time::uptime_us() + 100_000;
                while crate::time::uptime_us() < until {
                    crate::sched::yield_now();
                }
                kcore::console::raise_interrupt();
            }
        })
        .expect("memory for a thread");
        let start = crate::time::uptime_us();
        let out = output_of(line);
        let took = crate::time::uptime_us() - start;
        DONE.store(true, Ordering::Release);
        typist.join();
        kcore::console::clear_interrupt();
        assert!(out.contains("interrupted"), "`{line}` printed:\n{out}");
        assert!(out.contains("^C"), "`{line}` printed:\n{out}");
        assert!(took < 20_000_000, "`{line}` took {took} us to stop");
    }
}

#[crate::ktest]
fn modules_load_list_and_unload_from_the_shell() {
    let out = output_of("insmod /lib/modules/exporter.ko");
    assert!(out.contains("exporter: loaded"), "{out}");
    // Found by its name at the root of the initramfs or under /lib/modules, `.ko` optional.
    let out = output_of("insmod user");
    assert!(out.contains("user: exporter_add(40, 2) = 42"), "{out}");
    let out = output_of("lsmod");
    assert!(
        out.contains("exporter               12288  1 user"),
        "{out}"
    );
    let out = output_of("cat /proc/modules");
    assert!(out.contains("user 8192 0 - Live 0xffffffff"), "{out}");
    assert!(
        out.contains("exporter 12288 1 user, Live 0xffffffff"),
        "{out}"
    );
    let out = output_of("ls /sys/module/exporter/holders");
    assert!(out.contains("user -> /sys/module/user"), "{out}");
    let out = output_of("rmmod exporter");
    assert!(
        out.contains("could not remove module exporter: -EWOULDBLOCK")
            && out.contains("in use by: user"),
        "{out}"
    );
    let out = output_of("rmmod user.ko exporter");
    assert!(
        out.contains("user: bye") && out.contains("exporter: unloaded after 1 calls"),
        "{out}"
    );
    let out = output_of("insmod nodev.ko");
    assert!(
        out.contains("could not insert module nodev.ko: -ENODEV (No such device)"),
        "{out}"
    );
    let out = output_of("insmod /etc/motd");
    assert!(
        out.contains("-ENOEXEC (Exec format error): truncated file"),
        "{out}"
    );
    // A module at the root of the initramfs, where `cargo run -- --initrd-add` puts one (the
    // test runner adds hello_c there as `added-hello.ko`): found by its file name, named by
    // its `.modinfo`.
    let out = output_of("insmod added-hello.ko whom=initrd");
    assert!(out.contains("hello_c: hello, initrd (1 of 1)"), "{out}");
    let out = output_of("rmmod hello_c");
    assert!(out.contains("hello_c: goodbye, initrd"), "{out}");
    let out = output_of("insmod nosuch.ko");
    assert!(out.contains("could not find module nosuch.ko"), "{out}");
    let out = output_of("rmmod hello_c");
    assert!(out.contains("-ENOENT"), "{out}");
    let out = output_of("lsmod");
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[crate::ktest]
fn dmesg_prints_the_boot_log_filters_levels_and_clears() {
    let (first, _) = kcore::console::log_seqs();
    let out = output_of("dmesg");
    // The boot's lines, unless the tests before this one logged more than the ring holds.
    if first == 0 {
        assert!(out.contains("CPU(s) online"), "{out}");
    }
    // Linux's format: `[    1.234567] text`.
    let first_line = out.lines().next().expect("the log is not empty");
    assert!(
        first_line.starts_with('[') && first_line.as_bytes().get(13) == Some(&b']'),
        "{first_line}"
    );

    log::error!("dmesg-test: an error");
    log::warn!("dmesg-test: a warning");
    log::info!("dmesg-test: some news");
    let out = output_of("dmesg -l err,warn");
    assert!(out.contains("] dmesg-test: an error\n"), "{out}");
    assert!(out.contains("] dmesg-test: a warning\n"), "{out}");
    assert!(!out.contains("dmesg-test: some news"), "{out}");
    assert!(!out.contains("CPU(s) online"), "{out}");
    let out = output_of("dmesg -r -l info");
    assert!(out.contains("dmesg-test: some news"), "{out}");
    assert!(out.lines().all(|l| l.starts_with("<6>[")), "{out}");
    let out = output_of("dmesg -r -l err");
    assert!(out.contains("<3>["), "{out}");

    for (line, says) in [
        ("dmesg -l bogus", "dmesg: unknown level 'bogus'"),
        ("dmesg -l", "requires an argument"),
        ("dmesg -x", "dmesg: invalid option '-x'"),
    ] {
        let out = output_of(line);
        assert!(out.contains(says), "`{line}` printed:\n{out}");
    }

    // `-c` prints, then clears.
    let out = output_of("dmesg -c -l err");
    assert!(out.contains("dmesg-test: an error"), "{out}");
    let out = output_of("dmesg");
    assert!(!out.contains("dmesg-test"), "{out}");
    log::info!("dmesg-test: after the clear");
    let out = output_of("dmesg");
    assert!(out.contains("dmesg-test: after the clear"), "{out}");
    // `-C` clears without printing.
    let out = output_of("dmesg -C");
    assert!(out.is_empty(), "{out}");
    assert!(!output_of("dmesg").contains("dmesg-test"));
    // The log is not left empty for the tests after this one.
    log::info!("dmesg-test: done");
}
