//! The shell's general commands.

use alloc::string::String;
use alloc::vec::Vec;

use crate::{print, println};

/// `echo WORD...`, or `echo WORD... > FILE` (also `>FILE`) to write the words and a newline
/// into a writable `/sys` file, as a shell redirection does.
pub(super) fn echo(args: &[&str]) {
    let redirect = args.iter().position(|a| a.starts_with('>'));
    let Some(at) = redirect else {
        println!("{}", args.join(" "));
        return;
    };
    let target = match args[at].strip_prefix('>') {
        Some("") => args.get(at + 1).copied(),
        rest => rest,
    };
    let rest_ok = args.len() == at + 1 + usize::from(args[at] == ">");
    let Some(path) = target.filter(|_| rest_ok) else {
        println!("usage: echo [WORD...] > FILE");
        return;
    };
    let mut text = args[..at].join(" ");
    text.push('\n');
    if super::sysfs::is_sysfs(path) {
        super::sysfs::write(path, &text);
    } else {
        println!("echo: {path}: Read-only file system");
    }
}

pub(super) fn ls(args: &[&str]) {
    if let [path] = args
        && super::sysfs::is_sysfs(path)
    {
        return super::sysfs::ls(path);
    }
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

pub(super) fn cat(args: &[&str]) {
    if args.is_empty() {
        println!("usage: cat FILE...");
    }
    for path in args {
        if super::sysfs::is_sysfs(path) {
            super::sysfs::cat(path);
            continue;
        }
        if *path == "/proc/slabinfo" {
            let mut out = String::new();
            // Writing into a String cannot fail.
            let _ = crate::memory::kmalloc::slab().slabinfo_show(&mut out);
            print!("{out}");
            continue;
        }
        match crate::initramfs::file(path) {
            Some(data) => print!("{}", String::from_utf8_lossy(data)),
            None => println!("cat: {path}: no such file in the initramfs"),
        }
    }
}

pub(super) fn meminfo(_: &[&str]) {
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
    println!(
        "bootstrap heap: {} bytes used, {} bytes free",
        heap_used, heap_free
    );
    let blocks = crate::memory::page_alloc::free_blocks_per_order();
    let orders: Vec<String> = blocks
        .iter()
        .enumerate()
        .map(|(o, n)| alloc::format!("{o}:{n}"))
        .collect();
    println!("free blocks per order: {}", orders.join(" "));
}

pub(super) fn uptime(_: &[&str]) {
    let us = crate::time::uptime_us();
    let ticks = crate::time::jiffies();
    println!(
        "up {}.{:03} s ({ticks} ticks at {} Hz)",
        us / 1_000_000,
        us % 1_000_000 / 1000,
        crate::time::HZ
    );
}

pub(super) fn cpus(_: &[&str]) {
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
            kcore::memory::numa::cpu_to_node(c.id),
            if c.is_online() { "yes" } else { "no" },
            c.ticks.load(Relaxed),
            c.context_switches.load(Relaxed)
        );
    }
}

pub(super) fn numa(_: &[&str]) {
    let nodes = crate::memory::numa::node_count();
    println!("{nodes} NUMA node(s)");
    for node in 0..nodes {
        let cpus: Vec<String> = crate::cpu::all()
            .filter(|c| kcore::memory::numa::cpu_to_node(c.id) == node)
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

pub(super) fn rcu(_: &[&str]) {
    let (gp_seq, completed, pending) = crate::rcu::stats();
    let state = if gp_seq % 2 == 1 {
        "in progress"
    } else {
        "idle"
    };
    println!("gp_seq {gp_seq} (grace period {state}), {completed} grace periods completed");
    for (cpu, n) in pending {
        println!("CPU {cpu}: {n} callbacks queued");
    }
}

pub(super) fn ps(_: &[&str]) {
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

pub(super) fn poweroff(_: &[&str]) {
    println!("Powering off.");
    kcore::arch::poweroff()
}

/// `workqueues`: every worker pool (workers idle or busy and what they run, pending items,
/// items executed) and every workqueue, as `crate::workqueue::dump` formats them.
pub(super) fn workqueues(_: &[&str]) {
    print!("{}", crate::workqueue::dump());
}
