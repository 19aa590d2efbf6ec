//! The shell's general commands.

use crate::{print, println};

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
    // Frames that no cache accounts for and no shrink gives back (docs/slab.md).
    let stacks = crate::memory::stack::slots_mapped();
    println!(
        "kept for reuse: {} frames of slab descriptors, {} kernel stacks mapped ({} in use, {} frames each)",
        crate::memory::kmalloc::slab_meta_frames(),
        stacks,
        crate::memory::stack::stacks_in_use(),
        crate::memory::stack::STACK_SIZE / 4096
    );
    let blocks = crate::memory::page_alloc::free_blocks_per_order();
    print!("free blocks per order:");
    for (o, n) in blocks.iter().enumerate() {
        print!(" {o}:{n}");
    }
    println!();
}

/// Prints the backtrace of this command (Linux's `dump_stack`), to show what one looks like.
pub(super) fn bt(_: &[&str]) {
    kcore::backtrace::dump_stack();
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
        print!("node {node}: CPUs [");
        let cpus = crate::cpu::all().filter(|c| kcore::memory::numa::cpu_to_node(c.id) == node);
        for (i, c) in cpus.enumerate() {
            print!("{}{}", if i == 0 { "" } else { "," }, c.id);
        }
        let mem = crate::memory::numa::node_memory(node);
        println!(
            "], memory {} MiB total, {} MiB free",
            mem.total_pages * 4 / 1024,
            mem.free_pages * 4 / 1024
        );
    }
}

pub(super) fn rcu(_: &[&str]) {
    let (gp_seq, completed) = crate::rcu::counters();
    let state = if gp_seq % 2 == 1 {
        "in progress"
    } else {
        "idle"
    };
    println!("gp_seq {gp_seq} (grace period {state}), {completed} grace periods completed");
    for c in crate::cpu::online() {
        println!(
            "CPU {}: {} callbacks queued",
            c.id,
            crate::rcu::pending_callbacks(c.id)
        );
    }
}

pub(super) fn ps(_: &[&str]) {
    let Some(threads) = crate::sched::try_threads() else {
        return println!("ps: out of memory");
    };
    println!("{:>5} {:<16} {:>4} {:<9}", "ID", "NAME", "CPU", "STATE");
    for t in threads {
        let state = match t.state() {
            crate::sched::State::Running => "Running",
            crate::sched::State::Runnable => "Runnable",
            crate::sched::State::Blocked => "Blocked",
            crate::sched::State::Exited => "Exited",
        };
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
    match crate::workqueue::try_dump() {
        Some(dump) => print!("{dump}"),
        None => println!("workqueues: out of memory"),
    }
}
