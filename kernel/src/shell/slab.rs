//! The shell's slab allocator commands: `slabinfo`, `sheaves`, `kmalloc-test`, `slabbench`,
//! `freeqbench`, `destroybench`.

use slab::Stat;

use super::args::Number;
use crate::memory::kmalloc::{slab, with_reserve};
use crate::{print, println};

/// `kmalloc-test`'s ROUNDS: 64 objects per CPU each (about 1 ms); a million is minutes.
const KMALLOC_TEST_ROUNDS: Number = Number {
    name: "ROUNDS",
    min: 1,
    max: 1_000_000,
    default: 50,
};

/// `freeqbench`'s N: N objects of 64 bytes are live at once, with an array of N pointers, one
/// block of at most 4 MiB (the largest the page allocator gives: order 10), so 500,000.
const FREEQBENCH_OBJECTS: Number = Number {
    name: "N",
    min: 1,
    max: 500_000,
    default: 1000,
};

/// `destroybench`'s N: objects of 64 bytes in `kfree_rcu` flight (64 MiB at the maximum).
const DESTROYBENCH_OBJECTS: Number = Number {
    name: "N",
    min: 1,
    max: 1_000_000,
    default: 10_000,
};

/// `staticbench`'s PAIRS: alloc+free pairs per timed round (best of 5 rounds).
const STATICBENCH_PAIRS: Number = Number {
    name: "PAIRS",
    min: 1,
    max: 100_000_000,
    default: 100_000,
};

/// `a / b` with two decimals (`0.42x`), for the benchmarks' ratios; `b` of 0 counts as 1.
struct Ratio(u64, u64);

impl core::fmt::Display for Ratio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (a, b) = (self.0, self.1.max(1));
        let hundredths = u128::from(a % b) * 100 / u128::from(b);
        write!(f, "{}.{hundredths:02}", a / b)
    }
}
use bench::{freeq, kmalloc, storm};

/// `slabinfo [-s] [-d]`: every cache with its geometry, aliases and sheaf capacity; `-s` adds
/// the statistics; `-d` lists the caches whose destruction is pending (waiting for `kfree_rcu`
/// objects in flight) instead.
pub(super) fn slabinfo(args: &[&str]) {
    let (mut stats, mut pending) = (false, false);
    for arg in args {
        match *arg {
            "-s" => stats = true,
            "-d" => pending = true,
            other => {
                return println!("slabinfo: unknown option `{other}` (usage: slabinfo [-s] [-d])");
            }
        }
    }
    // The slab crate builds these lists infallibly: from the emergency reserve if kmalloc
    // cannot (`with_reserve`), so the listing works when memory is exhausted.
    if pending {
        let pending = with_reserve(|| slab().destroy_pending());
        println!("{:<18} {:>8}", "destroying", "objects");
        for (name, objects) in &pending {
            println!("{name:<18} {objects:>8}");
        }
        println!("{} cache(s) waiting to be destroyed", pending.len());
        return;
    }
    let caches = with_reserve(|| slab().caches());
    println!(
        "{:<18} {:>8} {:>8} {:>7} {:>6} {:>5} {:>6}  aliases",
        "name", "active", "total", "objsize", "objper", "pages", "sheaf"
    );
    for (cache, aliases) in caches {
        let info = cache.slabinfo();
        print!(
            "{:<18} {:>8} {:>8} {:>7} {:>6} {:>5} {:>6}  ",
            cache.name(),
            info.active_objs,
            info.num_objs,
            cache.object_size(),
            cache.objs_per_slab(),
            1usize << cache.order(),
            cache.sheaf_capacity(),
        );
        for (i, alias) in aliases.iter().enumerate() {
            print!("{}{alias}", if i == 0 { "" } else { "," });
        }
        println!();
        if stats {
            print!("    ");
            for stat in Stat::ALL {
                let value = cache.stat(stat);
                if value != 0 {
                    print!(" {}={}", stat.name(), value);
                }
            }
            println!();
        }
    }
}

/// `sheaves CACHE`: what the per-CPU layer of a cache holds: each CPU's main, spare and
/// `rcu_free` sheaves, each node's barn, and the objects parked there in all.
pub(super) fn sheaves(args: &[&str]) {
    let [name] = args else {
        return println!("usage: sheaves CACHE (a name from slabinfo)");
    };
    let Some(cache) = slab().find_cache(name) else {
        return println!("sheaves: no cache named `{name}`");
    };
    let primary = cache.primary();
    if primary.name() != cache.name() {
        println!(
            "{name} is an alias of {0}: its objects live in {0}'s sheaves",
            primary.name()
        );
    }
    let (cache, name) = (primary, primary.name());
    let capacity = cache.sheaf_capacity();
    if capacity == 0 {
        return println!("{name}: no sheaves (a debug cache: every operation goes to the slabs)");
    }
    println!("{name}: sheaves of {capacity} objects");
    println!(
        "{:>4} {:>6} {:>6} {:>9}",
        "CPU", "main", "spare", "rcu_free"
    );
    let (mut in_cpus, mut rows) = (0, 0);
    cache.cpu_sheaves(|cpu, s| {
        in_cpus += s.main + s.spare.unwrap_or(0) + s.rcu_free.unwrap_or(0);
        rows += 1;
        print!("{cpu:>4} {:>6}", s.main);
        for (v, width) in [(s.spare, 7), (s.rcu_free, 10)] {
            match v {
                Some(n) => print!("{n:>width$}"),
                None => print!("{:>width$}", "-"),
            }
        }
        println!();
    });
    let cpus = kcore::cpu::online().count();
    if rows < cpus {
        println!(
            "(only {rows} of {cpus} CPUs: no thread could be started on the others: out of memory?)"
        );
    }
    println!("{:>4} {:>11} {:>11}", "node", "barn full", "barn empty");
    let mut in_barns = 0;
    for node in 0..cache.nr_nodes() {
        let (full, empty) = cache.barn_counts(node);
        in_barns += full * capacity;
        println!("{node:>4} {full:>11} {empty:>11}");
    }
    let info = cache.slabinfo();
    println!(
        "parked: {} objects ({in_cpus} in CPU sheaves, {in_barns} in full barn sheaves) of {} \
         active in slabs; callers hold the rest",
        in_cpus + in_barns,
        info.active_objs
    );
}

/// `kmalloc-overflow [SIZE [OFFSET]]`'s SIZE.
const OVERFLOW_SIZE: Number = Number {
    name: "SIZE",
    min: 1,
    max: 8192,
    default: 13,
};

/// `kmalloc-overflow [SIZE [OFFSET]]`: the classic bug of lab 01, on purpose and contained:
/// `kmalloc(SIZE)`, one byte written at OFFSET (default: the first byte past SIZE, still
/// inside the object of its size class, so that no other object is touched), then `kfree`,
/// which reports the write when the kmalloc caches red-zone what was not asked for
/// (`slub_debug=ZU`) and sees nothing otherwise.
pub(super) fn kmalloc_overflow(args: &[&str]) {
    let usage = "usage: kmalloc-overflow [SIZE [OFFSET]]";
    if args.len() > 2 {
        return println!("{usage}");
    }
    let Some(size) = OVERFLOW_SIZE.only_arg("kmalloc-overflow", &args[..args.len().min(1)]) else {
        return;
    };
    let size = size as usize;
    let Some(class) = slab().kmalloc_cache(size) else {
        return println!("kmalloc-overflow: no kmalloc cache for {size} bytes");
    };
    let object = class.object_size();
    let offset = Number {
        name: "OFFSET",
        min: 0,
        max: object as u64 - 1,
        default: size.min(object - 1) as u64,
    };
    let Some(offset) = offset.only_arg("kmalloc-overflow", &args[args.len().min(1)..]) else {
        return println!(
            "(past byte {} the write would reach the next object)",
            object - 1
        );
    };
    let offset = offset as usize;
    println!(
        "kmalloc({size}): an object of {} ({object} bytes); writing byte {offset} ({})",
        class.name(),
        if offset >= size {
            "past the size asked for"
        } else {
            "inside the size asked for"
        }
    );
    let errors = crate::memory::kmalloc::slab_errors();
    let Some(r) = crate::memory::kmalloc::write_byte_and_free(size, offset) else {
        return println!("kmalloc-overflow: out of memory");
    };
    if r.is_err() || crate::memory::kmalloc::slab_errors() != errors {
        println!("kfree: the write was reported (above), the object isolated");
    } else if offset >= size {
        println!(
            "kfree: nothing detected: boot with slub_debug=ZU (cargo run -- --append \
             slub_debug=ZU) to red-zone the bytes past the size asked for"
        );
    } else {
        println!("kfree: nothing to detect: the byte was the caller's to write");
    }
}

/// `kmalloc-test [ROUNDS]`: a checked alloc/free storm on every CPU.
pub(super) fn kmalloc_test(args: &[&str]) {
    let Some(rounds) = KMALLOC_TEST_ROUNDS.only_arg("kmalloc-test", args) else {
        return;
    };
    let rounds = rounds as usize;
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

/// `slabbench`: kmalloc against linked_list_allocator with 10,000 live objects. Gives back
/// everything it takes, the benchmark heap's 24 MiB included.
pub(super) fn slabbench(_: &[&str]) {
    let pairs = {
        let _pin = crate::cpu::PreemptGuard::new();
        kmalloc::fastpath_pair_cycles(100_000)
    };
    match pairs {
        Ok(cycles) => println!("kmalloc(64)+kfree fast path: {cycles} cycles/pair"),
        Err(e) => return println!("slabbench: {e}"),
    }
    println!(
        "free checks (page owner, cache, object boundary): {}",
        if slab().hardened() {
            "on (the default; boot with slab_nohardened to measure without them)"
        } else {
            "off (slab_nohardened; boot without it to measure with them)"
        }
    );
    match kmalloc::fastpath_instructions() {
        Some(n) => println!(
            "fast path instructions (single-stepped): kmalloc(64) {} + kfree {}, pair function {}; kmem_cache alloc {} + free {}, pair function {}",
            n.kmalloc, n.kfree, n.kmalloc_pair, n.cache_alloc, n.cache_free, n.cache_pair
        ),
        None => return println!("slabbench: out of memory"),
    }
    match kmalloc::bench(10_000, 10_000) {
        Ok(r) => println!(
            "{} live objects, {} replace operations: kmalloc {} cycles/op, linked_list_allocator {} cycles/op ({}x)",
            r.live,
            r.ops,
            r.kmalloc_cycles,
            r.linked_list_cycles,
            Ratio(r.linked_list_cycles, r.kmalloc_cycles)
        ),
        Err(e) => println!("slabbench: {e}"),
    }
}

/// `freeqbench [N]`: the lock hold time of freeing N (1000) objects under a spin lock, directly
/// and through the deferred free queue (freed after the unlock), in TSC cycles.
pub(super) fn freeqbench(args: &[&str]) {
    let Some(n) = FREEQBENCH_OBJECTS.only_arg("freeqbench", args) else {
        return;
    };
    let n = n as usize;
    let debug = slab().kmalloc_cache(64).is_some_and(|c| c.is_debug());
    println!(
        "freeing {n} objects of 64 bytes under a spin lock (booted with slub_debug: {})",
        if debug { "yes" } else { "no" }
    );
    let rows = match freeq::bench(n) {
        Ok(rows) => rows,
        Err(e) => return println!("freeqbench: {e}"),
    };
    println!(
        "{:<20} {:>5} {:>12} {:>12} {:>7} {:>12}",
        "objects", "debug", "direct", "queued", "ratio", "free_up"
    );
    for r in rows {
        println!(
            "{:<20} {:>5} {:>12} {:>12} {:>5}.{}x {:>12}",
            r.what,
            if r.debug { "yes" } else { "no" },
            r.direct,
            r.queued,
            r.direct * 10 / r.queued.max(1) / 10,
            r.direct * 10 / r.queued.max(1) % 10,
            r.free_up
        );
    }
    println!("(cycles with the lock held; free_up runs after the unlock)");
}

/// `destroybench [N]`: the time `kmem_cache_destroy` takes with N (10,000) objects in
/// `kfree_rcu` flight, asynchronous against a synchronous `kvfree_rcu_barrier` first.
pub(super) fn destroybench(args: &[&str]) {
    let Some(n) = DESTROYBENCH_OBJECTS.only_arg("destroybench", args) else {
        return;
    };
    let n = n as usize;
    match kmalloc::destroy_bench(n) {
        Ok(r) => println!(
            "kmem_cache_destroy with {} objects in kfree_rcu flight: asynchronous {} cycles, \
             synchronous kvfree_rcu_barrier {} cycles ({}x)",
            r.objects,
            r.asynchronous,
            r.synchronous,
            Ratio(r.synchronous, r.asynchronous)
        ),
        Err(e) => println!("destroybench: {e}"),
    }
}

/// `staticbench [PAIRS]`: cycles per alloc+free through a static cache and through the same
/// cache created dynamically (the static-cache RFC's claim: one load fewer per operation).
pub(super) fn staticbench(args: &[&str]) {
    let Some(pairs) = STATICBENCH_PAIRS.only_arg("staticbench", args) else {
        return;
    };
    let r = match bench::static_cache::static_bench(pairs, 5) {
        Ok(r) => r,
        Err(e) => return println!("staticbench: {e}"),
    };
    println!(
        "alloc+free pair, best of 5 x {} pairs: static cache {} cycles, dynamic cache {} cycles",
        r.pairs, r.static_cycles, r.dynamic_cycles
    );
}

#[crate::ktest]
fn ratios_print_two_decimals_not_a_whole_number() {
    use alloc::format;
    assert_eq!(format!("{}", Ratio(1, 3)), "0.33");
    assert_eq!(format!("{}", Ratio(5, 10)), "0.50");
    assert_eq!(format!("{}", Ratio(3, 2)), "1.50");
    assert_eq!(format!("{}", Ratio(7, 0)), "7.00");
    assert_eq!(format!("{}", Ratio(u64::MAX, 1)), "18446744073709551615.00");
}
