//! Runs exactly `N` fast-path alloc+free pairs, for instruction counting with callgrind
//! (see `count_fastpath.sh`, which runs it for two values of `N` and divides the difference of
//! the instruction counts by the difference of the `N`s, so that setup and exit cancel out).
//!
//! ```text
//! count_fastpath N [cache|cache-inline|cache-batch|cache-nohardened|kmalloc|kmalloc-nohardened|kmalloc-const|static|dynamic|alias|system|mimalloc]
//! ```
//! `cache` (the default): `alloc`/`free` of a `kmem_cache_create`d 64-byte cache, the same
//! `alloc_free_pair` as `fastpath.rs`, called `N` times (so each pair also pays the call, the
//! function's frame and the loop: about 10 instructions). `cache-inline`: the same alloc and
//! free inlined into one loop (the count is then the allocator's instructions plus the loop's
//! decrement and branch). `cache-batch`: rounds of 200 allocations then their 200 frees, so
//! that main empties and fills again every 60 objects: the count (per allocation and free)
//! includes the sheaf exchanges amortised over each sheaf. `cache-nohardened`: `cache` with `SlabOptions::nohardened` (the default
//! free checks off: no page-owner lookup, no boundary test). `kmalloc`: `kmalloc(size)`/`kfree`
//! with the size (64) known only at run time; `kmalloc-const`: `kmalloc(64)`/`kfree` with a
//! constant size, whose class the compiler picks. For scale, with the
//! same loop: `system` (`std::alloc::System`, glibc) and `mimalloc` (`mimalloc::MiMalloc`),
//! both called through `GlobalAlloc` with a 64-byte, 8-aligned layout.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

use mimalloc::MiMalloc;

use slab::host::{HostConfig, HostPlatform};
use slab::{Gfp, KmemCache, KmemCacheArgs, KmemCacheStatic, SlabAllocator, SlabFlags, SlabOptions};
use std::sync::atomic::{AtomicPtr, Ordering};

/// One allocation and one free through the cache's fast paths.
#[inline(never)]
pub fn alloc_free_pair(c: &KmemCache<HostPlatform>) {
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated from `c`, not used afterwards.
        let _ = unsafe { c.free(o) };
    }
}

/// An allocator and the size `kmalloc_kfree_pair` asks of it, which the compiler does not
/// know (it goes through `black_box` once, before the loop).
pub struct KmallocArgs<'a> {
    /// The allocator.
    a: &'a SlabAllocator<HostPlatform>,
    /// The size of each `kmalloc`.
    size: usize,
}

/// One `kmalloc(size)` and its `kfree`, the size known only at run time.
#[inline(never)]
pub fn kmalloc_kfree_pair(k: &KmallocArgs<'_>) {
    let a = k.a;
    if let Some(o) = a.kmalloc(k.size, Gfp::KERNEL) {
        // SAFETY: from kmalloc, not used afterwards.
        let _ = unsafe { a.kfree(o.as_ptr()) };
    }
}

/// One `kmalloc(64)` and its `kfree`, the size a constant as in most kernel code: the size
/// class is then chosen at compile time (the `kmalloc_index` of a constant folds, as Linux's
/// `kmalloc` picks the cache of a `__builtin_constant_p` size), like the constant layout the
/// `system` and `mimalloc` modes pass.
#[inline(never)]
pub fn kmalloc_const_pair(a: &SlabAllocator<HostPlatform>) {
    if let Some(o) = a.kmalloc(64, Gfp::KERNEL) {
        // SAFETY: from kmalloc, not used afterwards.
        let _ = unsafe { a.kfree(o.as_ptr()) };
    }
}

/// One 64-byte allocation and its free through a `GlobalAlloc`.
#[inline(never)]
pub fn global_pair<G: GlobalAlloc>(g: &G) {
    let layout = Layout::new::<[u64; 8]>();
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { g.alloc(layout) };
    if !p.is_null() {
        // SAFETY: just allocated with this layout, not used afterwards.
        unsafe { g.dealloc(black_box(p), layout) };
    }
}

/// The static-cache storage of the `static` mode.
static STATIC_CACHE: KmemCacheStatic<HostPlatform> = KmemCacheStatic::new();

/// The dynamic cache of the `dynamic` mode, as `static struct kmem_cache *cachep`.
static DYNAMIC_CACHE: AtomicPtr<KmemCache<HostPlatform>> = AtomicPtr::new(std::ptr::null_mut());

/// One pair through the static cache (its address is a constant).
#[inline(never)]
pub fn static_pair(_: &()) {
    // SAFETY: set up in `main` before the first call.
    let c = unsafe { STATIC_CACHE.get() };
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated from `c`, not used afterwards.
        let _ = unsafe { c.free(o) };
    }
}

/// One pair through the dynamic cache, its address loaded from the global first.
#[inline(never)]
pub fn dynamic_pair(_: &()) {
    // SAFETY: set in `main` to a leaked cache before the first call.
    let c = unsafe { &*DYNAMIC_CACHE.load(Ordering::Relaxed) };
    if let Some(o) = c.alloc(Gfp::KERNEL) {
        // SAFETY: just allocated from `c`, not used afterwards.
        let _ = unsafe { c.free(o) };
    }
}

/// `n` alloc+free pairs inlined into one loop.
#[inline(never)]
pub fn alloc_free_loop(c: &KmemCache<HostPlatform>, n: u64) {
    for _ in 0..n {
        if let Some(o) = c.alloc(Gfp::KERNEL) {
            // SAFETY: just allocated from `c`, not used afterwards.
            let _ = unsafe { c.free(o) };
        }
    }
}

/// The allocations in a row of the `cache-batch` mode: more than three sheaves (a 64-byte
/// cache's hold 60 objects), fewer than the barn's bound of 10.
const BATCH: usize = 200;

/// `n` allocations and `n` frees in rounds of [`BATCH`] allocations followed by their frees,
/// oldest first (`n` a multiple of `BATCH`; `objs`, empty with room for a round, holds them):
/// every round empties and refills main several times, so the count includes the sheaf
/// exchanges of `alloc_refill`/`free_flush` amortised over each sheaf's objects.
#[inline(never)]
pub fn batch_loop(c: &KmemCache<HostPlatform>, objs: &mut Vec<std::ptr::NonNull<u8>>, n: u64) {
    for _ in 0..n / BATCH as u64 {
        for _ in 0..BATCH {
            if let Some(o) = c.alloc(Gfp::KERNEL) {
                objs.push(o);
            }
        }
        for o in objs.drain(..) {
            // SAFETY: allocated from `c` in this round, freed once, not used afterwards.
            let _ = unsafe { c.free(o) };
        }
    }
}

/// Runs `n` calls of `pair` after one of warm-up.
fn run<T: ?Sized>(n: u64, x: &T, pair: fn(&T)) {
    pair(x);
    for _ in 0..n {
        pair(x);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).expect(
        "usage: count_fastpath N [cache|cache-inline|cache-batch|cache-nohardened|kmalloc|kmalloc-nohardened|kmalloc-const|static|dynamic|alias|system|mimalloc]",
    );
    let mode = args.next().unwrap_or_else(|| "cache".into());
    match mode.as_str() {
        "system" => return run(n, &System, global_pair),
        "mimalloc" => return run(n, &MiMalloc, global_pair),
        "cache" | "cache-inline" | "cache-batch" | "cache-nohardened" | "kmalloc"
        | "kmalloc-nohardened" | "kmalloc-const" | "static" | "dynamic" | "alias" => {}
        other => panic!(
            "unknown mode {other:?}: cache, cache-inline, cache-batch, cache-nohardened, kmalloc, kmalloc-nohardened, kmalloc-const, static, dynamic, alias, system, mimalloc"
        ),
    }
    let p = HostPlatform::new(HostConfig {
        cpus: 1,
        nodes: 1,
        pages_per_node: 4096,
    });
    let _cpu = p.register_cpu();
    let options = SlabOptions {
        nohardened: mode.ends_with("-nohardened"),
        ..SlabOptions::default()
    };
    let a = SlabAllocator::with_options(p.clone(), options).expect("allocator");
    let c = a
        .kmem_cache_create(
            "bench",
            64,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache")
        .leak();
    if mode == "static" {
        let a: &'static SlabAllocator<HostPlatform> = Box::leak(Box::new(a));
        a.kmem_cache_setup(
            &STATIC_CACHE,
            "bench-static",
            64,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_NO_MERGE,
        )
        .expect("static cache");
        return run(n, &(), static_pair);
    }
    if mode == "dynamic" {
        DYNAMIC_CACHE.store(std::ptr::from_ref(c).cast_mut(), Ordering::Relaxed);
        return run(n, &(), dynamic_pair);
    }
    if mode == "alias" {
        // A merged cache: its own structure, every operation forwarded to kmalloc-64.
        let alias = a
            .kmem_cache_create(
                "bench-alias",
                60,
                KmemCacheArgs::default(),
                SlabFlags::empty(),
            )
            .expect("cache")
            .leak();
        assert!(!std::ptr::eq(alias, alias.primary()), "merged");
        return run(n, alias, alloc_free_pair);
    }
    // The warm-up refills the main sheaf (the same for every N).
    if mode == "kmalloc" || mode == "kmalloc-nohardened" {
        let args = KmallocArgs {
            a: &a,
            size: black_box(64),
        };
        run(n, &args, kmalloc_kfree_pair);
    } else if mode == "kmalloc-const" {
        run(n, &a, kmalloc_const_pair);
    } else if mode == "cache-inline" {
        alloc_free_loop(c, 1);
        alloc_free_loop(c, black_box(n));
    } else if mode == "cache-batch" {
        assert!(
            n.is_multiple_of(BATCH as u64),
            "cache-batch: N must be a multiple of {BATCH}"
        );
        let mut objs = Vec::with_capacity(BATCH);
        batch_loop(c, &mut objs, BATCH as u64);
        batch_loop(c, &mut objs, black_box(n));
    } else {
        run(n, c, alloc_free_pair);
    }
}
