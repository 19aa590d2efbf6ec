//! What loading a module costs (`modbench`): `insmod` of a module to its `init_module`
//! returning, in cycles and in single-stepped instructions, next to a `kmem_cache_create` of
//! the same boot, and the module's memory (`lsmod`'s size against the pages it takes).

use alloc::vec::Vec;

use kcore::arch::step::count_instructions;
use kcore::memory::kmalloc::{slab, with_reserve};
use kcore::module::{self, ModuleFile};
use kcore::time::rdtsc;

use crate::BenchError;

/// The figures `modbench` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleReport {
    /// Rounds timed.
    pub rounds: usize,
    /// Median cycles of `load` (parse to `init_module` returning).
    pub load_cycles: u64,
    /// Median cycles of `unload`.
    pub unload_cycles: u64,
    /// Median cycles of `kmem_cache_create` of a 64-byte cache.
    pub create_cycles: u64,
    /// Instructions of one `load` (single-stepped; interrupt handlers not counted).
    pub load_instructions: u64,
    /// Instructions of one `kmem_cache_create`.
    pub create_instructions: u64,
    /// The module's size as `lsmod` shows it (its memory after init), in bytes.
    pub core_size: usize,
    /// Pages of the `MODULES` range it held while loaded (after init; guard pages included).
    pub pages_taken: usize,
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// One `kmem_cache_create` (timed by `f`) and its destroy.
fn create_destroy(f: impl FnOnce(&mut dyn FnMut())) {
    let s = slab();
    let mut cache = None;
    f(&mut || {
        cache = with_reserve(|| {
            s.kmem_cache_create(
                "modbench",
                64,
                Default::default(),
                slab::SlabFlags::SLAB_NO_MERGE,
            )
        })
        .ok();
    });
    if let Some(c) = cache {
        // SAFETY: no object was allocated and nothing else has the cache.
        let _ = with_reserve(|| unsafe { s.kmem_cache_destroy(c) });
    }
}

/// Loads and unloads `file` (which must load with no arguments and be unloadable) `rounds`
/// times, and creates and destroys a cache as many times; the module's messages go to the
/// console as usual (the caller may capture them).
pub fn module_bench(
    file: ModuleFile<'_>,
    file_name: &str,
    rounds: usize,
) -> Result<ModuleReport, BenchError> {
    let rounds = rounds.max(1);
    let mut load = Vec::new();
    let mut unload = Vec::new();
    let mut create = Vec::new();
    for v in [&mut load, &mut unload, &mut create] {
        v.try_reserve_exact(rounds)
            .map_err(|_| BenchError::OutOfMemory)?;
    }
    let before = kcore::memory::vmap::pages_in_use();
    let (mut core_size, mut pages_taken) = (0, 0);
    for _ in 0..rounds {
        if kcore::console::interrupted() {
            return Err(BenchError::Interrupted);
        }
        let t0 = rdtsc();
        let loaded = module::load(file, file_name, &[]).map_err(|e| match e.errno {
            kcore::module::errno::ENOMEM => BenchError::OutOfMemory,
            other => BenchError::ModuleRefused(other),
        })?;
        let t1 = rdtsc();
        core_size = loaded.core_size;
        pages_taken = kcore::memory::vmap::pages_in_use() - before;
        let t2 = rdtsc();
        let unloaded = module::unload(&loaded.name, false);
        let t3 = rdtsc();
        unloaded.map_err(|e| BenchError::ModuleRefused(e.errno))?;
        load.push(t1 - t0);
        unload.push(t3 - t2);
        create_destroy(|f| {
            let t = rdtsc();
            f();
            create.push(rdtsc() - t);
        });
    }
    let mut name = None;
    let load_instructions = count_instructions(|| {
        name = module::load(file, file_name, &[]).ok().map(|l| l.name);
    });
    if let Some(name) = name {
        let _ = module::unload(&name, false);
    }
    let mut create_instructions = 0;
    create_destroy(|f| create_instructions = count_instructions(f));
    Ok(ModuleReport {
        rounds,
        load_cycles: median(&mut load),
        unload_cycles: median(&mut unload),
        create_cycles: median(&mut create),
        load_instructions,
        create_instructions,
        core_size,
        pages_taken,
    })
}
