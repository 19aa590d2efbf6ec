//! The shell's slab allocator commands: `slabinfo`, `kmalloc-test`, `slabbench`.

use alloc::string::String;
use slab::Stat;

use crate::memory::kmalloc::slab;
use crate::println;
use kcore::selftest::{bench, storm};

/// `slabinfo [-s]`: every cache with its geometry, aliases and sheaf capacity; `-s` adds the
/// statistics.
pub(super) fn slabinfo(args: &[&str]) {
    let stats = args.contains(&"-s");
    println!(
        "{:<18} {:>8} {:>8} {:>7} {:>6} {:>5} {:>6}  aliases",
        "name", "active", "total", "objsize", "objper", "pages", "sheaf"
    );
    for (cache, aliases) in slab().caches() {
        let info = cache.slabinfo();
        println!(
            "{:<18} {:>8} {:>8} {:>7} {:>6} {:>5} {:>6}  {}",
            cache.name(),
            info.active_objs,
            info.num_objs,
            cache.object_size(),
            cache.objs_per_slab(),
            1usize << cache.order(),
            cache.sheaf_capacity(),
            aliases.join(",")
        );
        if stats {
            let mut line = String::from("    ");
            for stat in Stat::ALL {
                let value = cache.stat(stat);
                if value != 0 {
                    line.push_str(&alloc::format!(" {}={}", stat.name(), value));
                }
            }
            println!("{line}");
        }
    }
}

/// `kmalloc-test [ROUNDS]`: a checked alloc/free storm on every CPU.
pub(super) fn kmalloc_test(args: &[&str]) {
    let rounds = args.first().and_then(|a| a.parse().ok()).unwrap_or(50);
    let start = crate::time::uptime_us();
    match storm::storm(rounds) {
        Ok(report) => println!(
            "ok: {} objects allocated on {} CPUs, {} freed on another CPU, every one intact ({} ms)",
            report.allocs,
            crate::cpu::online().count(),
            report.cross_cpu_frees,
            (crate::time::uptime_us() - start) / 1000
        ),
        Err(e) => println!("FAILED: {e}"),
    }
}

/// `slabbench`: kmalloc against linked_list_allocator with 10,000 live objects.
pub(super) fn slabbench(_: &[&str]) {
    let _pin = crate::cpu::PreemptGuard::new();
    println!(
        "kmalloc(64)+kfree fast path: {} cycles/pair",
        bench::fastpath_pair_cycles(100_000)
    );
    match bench::bench(10_000, 10_000) {
        Some(r) => println!(
            "{} live objects, {} replace operations: kmalloc {} cycles/op, linked_list_allocator {} cycles/op ({}x)",
            r.live,
            r.ops,
            r.kmalloc_cycles,
            r.linked_list_cycles,
            r.linked_list_cycles / r.kmalloc_cycles.max(1)
        ),
        None => println!("slabbench: out of memory"),
    }
}
