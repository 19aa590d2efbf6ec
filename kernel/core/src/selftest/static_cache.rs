//! Static slab caches on target: placed in `.data`, set up in place and self-named, refused
//! twice, not destroyable when built in; and the RFC's measure, cycles per alloc+free through
//! a static cache against the same cache created dynamically (the shell's `staticbench`).

use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use slab::{Gfp, KmemCache, KmemCacheArgs, KmemCacheHandle, SlabError, SlabFlags};

use super::BenchError;
use crate::kobject::sysfs;
use crate::memory::kmalloc::{KernelPlatform, slab, with_reserve};
use crate::memory::static_cache::{KmemCacheOpaque, in_data_section};

/// A kernel object of a static cache in the tests.
#[allow(dead_code)]
struct KtestThing {
    id: u64,
    name: [u8; 48],
    user: [u8; 32],
}

static THINGS: KmemCacheOpaque = KmemCacheOpaque::new();
static OTHER_THINGS: KmemCacheOpaque = KmemCacheOpaque::new();

#[crate::ktest]
fn a_static_cache_lies_in_data_by_the_linker_symbols() {
    static ZERO: AtomicU64 = AtomicU64::new(0);
    assert!(THINGS.in_data(), "a static cache's storage is in .data");
    assert!(OTHER_THINGS.in_data());
    // The check tells sections apart: an all-zero static is in .bss, code is in .text.
    assert!(
        !in_data_section(&ZERO as *const AtomicU64 as usize),
        "zeros go to .bss"
    );
    let code: fn() = a_static_cache_lies_in_data_by_the_linker_symbols;
    assert!(
        !in_data_section(code as *const () as usize),
        "code is in .text"
    );
}

#[crate::ktest]
fn static_caches_are_set_up_in_place_self_named_and_refused_twice() {
    let c = crate::kmem_cache_setup_usercopy!(THINGS, KtestThing, SlabFlags::empty(), user)
        .expect("setup");
    assert!(core::ptr::eq(
        c,
        // SAFETY: set up just above.
        unsafe { THINGS.to_kmem_cache() }
    ));
    assert!(c.flags().contains(SlabFlags::SLAB_PREALLOCATED));
    assert_eq!(c.name(), "KtestThing");
    assert_eq!(
        c.usercopy_region(),
        (core::mem::offset_of!(KtestThing, user), 32)
    );
    let o = c.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: ours.
    unsafe { c.free(o) }.expect("free");
    // Self-named: a directory, not a link to a unique id.
    assert!(sysfs().is_dir("/kernel/slab/KtestThing"));
    assert!(sysfs().read_link("/kernel/slab/KtestThing").is_err());
    // A second static cache of the same geometry: its own directory.
    let other = OTHER_THINGS
        .setup("ktest-other-things", 88, 8, SlabFlags::empty(), None)
        .expect("setup");
    assert!(!core::ptr::eq(c, other));
    assert!(sysfs().is_dir("/kernel/slab/ktest-other-things"));
    // Twice: refused, the cache untouched.
    assert_eq!(
        THINGS.setup("again", 64, 8, SlabFlags::empty(), None).err(),
        Some(SlabError::AlreadySetUp)
    );
    assert_eq!(c.name(), "KtestThing");
    // A built-in static cache cannot be destroyed.
    // SAFETY: the only handle of its first name; destroy is refused, nothing is freed.
    let r = unsafe { slab().kmem_cache_destroy(KmemCacheHandle::from_ref(c)) };
    assert!(matches!(
        r,
        Err(slab::DestroyError::Permanent { name: "KtestThing" })
    ));
    let o = c.alloc(Gfp::KERNEL).expect("still works");
    // SAFETY: ours.
    unsafe { c.free(o) }.expect("free");
}

#[crate::ktest]
fn threads_come_from_the_static_task_struct_cache() {
    use crate::memory::cache_alloc::CacheTag;
    let t = crate::sched::spawn("ktest-cached-thread", || 7).expect("spawn");
    let cache = crate::sched::ThreadCache::cache();
    let ptr = core::ptr::NonNull::from(&**t.thread()).cast::<u8>();
    assert!(cache.owns(ptr), "the thread is an object of task_struct");
    let c = cache.cache().expect("set up by the first thread");
    assert_eq!(c.name(), "task_struct");
    assert!(c.flags().contains(SlabFlags::SLAB_PREALLOCATED));
    assert!(in_data_section(core::ptr::from_ref(c) as usize), "in .data");
    assert!(sysfs().is_dir("/kernel/slab/task_struct"), "self-named");
    assert_eq!(t.join(), 7);
}

/// Cycles per alloc+free pair through a static cache and through the same cache created
/// dynamically (its address loaded from a global variable, as `static struct kmem_cache
/// *cachep` in Linux), in one run, best of `rounds`.
#[derive(Clone, Copy, Debug)]
pub struct StaticBench {
    /// Pairs per round.
    pub pairs: u64,
    /// TSC cycles per pair, static cache.
    pub static_cycles: u64,
    /// TSC cycles per pair, dynamic cache.
    pub dynamic_cycles: u64,
}

static BENCH_STATIC: KmemCacheOpaque = KmemCacheOpaque::new();
/// Set once [`BENCH_STATIC`]'s setup has returned `Ok`.
static BENCH_STATIC_READY: AtomicBool = AtomicBool::new(false);
static BENCH_DYNAMIC: AtomicPtr<KmemCache<KernelPlatform>> = AtomicPtr::new(core::ptr::null_mut());

#[inline(never)]
fn static_pair() -> bool {
    // SAFETY: set up by `static_bench` before any call (`BENCH_STATIC_READY`).
    let c = unsafe { BENCH_STATIC.to_kmem_cache() };
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated, not used again.
        let _ = unsafe { c.free(black_box(o)) };
        return true;
    }
    false
}

#[inline(never)]
fn dynamic_pair() -> bool {
    // SAFETY: set by `static_bench` to a cache that is never destroyed, before any call.
    let c = unsafe { &*BENCH_DYNAMIC.load(Ordering::Relaxed) };
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated, not used again.
        let _ = unsafe { c.free(black_box(o)) };
        return true;
    }
    false
}

/// Pairs timed between two checks for Ctrl-C.
const PAIRS_PER_CHECK: u64 = 1 << 16;

/// Runs the comparison (sets the two 64-byte caches up on first use). An error when memory is
/// out (a pair could not allocate: its figure would mean nothing) or on Ctrl-C.
pub fn static_bench(pairs: u64, rounds: usize) -> Result<StaticBench, BenchError> {
    let flags = SlabFlags::SLAB_NO_MERGE;
    // Set up on the first run that has the memory for it (the shell runs one command at a
    // time, so no two runs race here).
    // The caches' structures may come from the reserve: setup and create allocate them
    // infallibly.
    if !BENCH_STATIC_READY.load(Ordering::Acquire) {
        with_reserve(|| BENCH_STATIC.setup("bench-static-64", 64, 8, flags, None))
            .map_err(|_| BenchError::OutOfMemory)?;
        BENCH_STATIC_READY.store(true, Ordering::Release);
    }
    if BENCH_DYNAMIC.load(Ordering::Acquire).is_null() {
        let c = with_reserve(|| {
            slab().kmem_cache_create("bench-dynamic-64", 64, KmemCacheArgs::default(), flags)
        })
        .map_err(|_| BenchError::OutOfMemory)?
        .leak();
        BENCH_DYNAMIC.store(core::ptr::from_ref(c).cast_mut(), Ordering::Release);
    }
    let time = |pair: fn() -> bool| -> Result<u64, BenchError> {
        if !pair() {
            return Err(BenchError::OutOfMemory);
        }
        let mut cycles = 0;
        let mut done = 0;
        while done < pairs {
            if crate::console::interrupted() {
                return Err(BenchError::Interrupted);
            }
            let n = PAIRS_PER_CHECK.min(pairs - done);
            let _pin = crate::cpu::PreemptGuard::new();
            let start = crate::time::rdtsc();
            for _ in 0..n {
                pair();
            }
            cycles += crate::time::rdtsc() - start;
            done += n;
        }
        if !pair() {
            return Err(BenchError::OutOfMemory);
        }
        Ok(cycles / pairs.max(1))
    };
    let (mut s, mut d) = (u64::MAX, u64::MAX);
    for _ in 0..rounds {
        s = s.min(time(static_pair)?);
        d = d.min(time(dynamic_pair)?);
    }
    Ok(StaticBench {
        pairs,
        static_cycles: s,
        dynamic_cycles: d,
    })
}
