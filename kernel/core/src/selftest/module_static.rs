//! On-target tests of module static caches (the RFC's v3 03/10, end to end): the
//! `static_cache` example sets up a cache in its own `.data` with `KMEM_CACHE_SETUP`, fills it,
//! and on unload frees every object with `kfree_rcu` and destroys the cache at once; the
//! module leaves `lsmod` and `/sys/module` while the destroy is still pending, and its memory
//! (where the cache lives) is freed only after the destroy has finished and dropped the
//! cache's reference on the module's kobject.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use super::module::{captured, file, fixture, footprint, slab_objects_in_use};
use crate::kobject::{MODULE_KSET, sysfs};
use crate::memory::kmalloc::slab;
use crate::memory::vmap;
use crate::module;

static STATIC_CACHE: &[u8] = fixture!("static_cache.ko");
static STATIC_CACHE_RS: &[u8] = fixture!("static_cache_rs.ko");
static SLABDEMO: &[u8] = fixture!("slabdemo.ko");
const CACHE: &str = "static_cache_items";

/// A load and an unload of module `name` on each CPU in turn, so that what is kept for reuse
/// per CPU (each CPU's `kfree_rcu` sheaf, made on its first `kfree_rcu`) exists before a test
/// counts objects: the test's own thread may move between CPUs, and the first unload on a CPU
/// would otherwise look like a leak.
fn warm_up_on_every_cpu(bytes: &'static [u8], name: &'static str) {
    let cpus: Vec<usize> = crate::cpu::online().map(|c| c.id).collect();
    for cpu in cpus {
        crate::sched::spawn_on(cpu, "ktest-warm-up", move || {
            let (r, _) = captured(|| module::load(file(bytes), name, &["objects=100"]));
            r.expect("load");
            let (r, _) = captured(|| module::unload(name, false));
            r.expect("unload");
        })
        .expect("thread")
        .join();
    }
}

fn destroy_pending() -> bool {
    slab()
        .destroy_pending()
        .iter()
        .any(|(name, _)| name.as_str() == CACHE)
}

fn listed() -> bool {
    module::list().iter().any(|m| m.name == "static_cache")
}

/// Unloads `static_cache` in a thread of its own; `DONE` tells when the unload returned.
fn unload_in_background(done: &'static AtomicBool) -> crate::sched::JoinHandle<()> {
    done.store(false, Ordering::Release);
    crate::sched::spawn("ktest-rmmod-static", move || {
        let (r, out) = captured(|| module::unload("static_cache", false));
        r.expect("unload");
        assert!(out.contains("destroyed with"), "{out}");
        done.store(true, Ordering::Release);
    })
    .expect("thread")
}

/// The seed's path for module `name` (its static cache `cache`), loaded with `args`: it
/// unloads while its cache's destroy waits for objects in `kfree_rcu` flight; the module
/// leaves the list at once, its memory goes only after the destroy; counts at baseline.
fn seed_path(bytes: &'static [u8], name: &'static str, cache: &'static str, args: &[&str]) {
    let pending = || {
        slab()
            .destroy_pending()
            .iter()
            .any(|(n, _)| n.as_str() == cache)
    };
    let listed = || module::list().iter().any(|m| m.name == name);
    warm_up_on_every_cpu(bytes, name);
    let before = footprint();
    let objects = slab_objects_in_use();
    let (r, out) = captured(|| module::load(file(bytes), name, args));
    r.expect("load");
    assert!(out.contains("objects of"), "{out}");
    assert!(sysfs().is_dir(&alloc::format!("/kernel/slab/{cache}")));
    let pages = vmap::pages_in_use();
    static DONE: AtomicBool = AtomicBool::new(false);
    DONE.store(false, Ordering::Release);
    let t = crate::sched::spawn("ktest-rmmod-static", move || {
        let (r, out) = captured(|| module::unload(name, false));
        r.expect("unload");
        assert!(out.contains("destroyed with"), "{out}");
        DONE.store(true, Ordering::Release);
    })
    .expect("thread");
    // Seen at least once: the module gone from the list while its cache's destroy is pending
    // and its memory still mapped.
    let (mut seen, mut gone, mut waiting) = (false, 0, 0);
    for _ in 0..1_000_000 {
        if DONE.load(Ordering::Acquire) {
            break;
        }
        let (l, d) = (listed(), pending());
        gone += usize::from(!l);
        waiting += usize::from(d);
        if !l && d {
            assert_eq!(
                vmap::pages_in_use(),
                pages,
                "memory freed before the destroy ended"
            );
            assert!(!sysfs().is_dir(&alloc::format!("/module/{name}")));
            seen = true;
        }
        crate::sched::yield_now();
    }
    t.join();
    assert!(
        seen,
        "{name} never left the list while its cache's destroy was pending ({gone} polls saw \
         it gone, {waiting} saw the destroy pending)"
    );
    assert!(!pending(), "unload returned before the destroy ended");
    assert!(vmap::pages_in_use() < pages);
    assert_eq!(footprint(), before);
    slab_objects_in_use().assert_none_left_since(&objects, "slab objects in use");
}

#[crate::ktest]
fn a_static_cache_in_kfree_rcu_flight_keeps_the_module_s_memory_until_its_destroy_ends() {
    seed_path(STATIC_CACHE, "static_cache", CACHE, &["objects=10000"]);
}

#[crate::ktest]
fn the_same_with_a_rust_module_s_static_cache() {
    seed_path(
        STATIC_CACHE_RS,
        "static_cache_rs",
        "static_cache_rs_items",
        &["objects=10000"],
    );
}

#[crate::ktest]
fn slabdemo_walks_through_every_step() {
    let before = footprint();
    let (r, out) = captured(|| module::load(file(SLABDEMO), "slabdemo", &["burst=2000"]));
    r.unwrap_or_else(|e| panic!("slabdemo: {e}\n{out}"));
    for step in [
        "red zones and poisoning",
        "bulk: 32 objects",
        "krealloc 16 -> 4000 bytes",
        "kfree_rcu burst of 2000 objects",
        "a work item ran on CPU",
        "8 objects queued inside an RCU read-side section",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(
        super::module::read("/kernel/slab/slabdemo_objs/red_zone").as_deref(),
        Ok("1\n")
    );
    let (r, out) = captured(|| module::unload("slabdemo", false));
    r.expect("unload");
    assert!(out.contains("slabdemo: cache destroyed"), "{out}");
    assert_eq!(footprint(), before);
}

#[crate::ktest]
fn the_unload_also_waits_for_a_kobject_reference_held_elsewhere() {
    let before = footprint();
    let (r, _) = captured(|| module::load(file(STATIC_CACHE), "static_cache", &["objects=1000"]));
    r.expect("load");
    let pages = vmap::pages_in_use();
    let k = sysfs()
        .kset_find_obj(&MODULE_KSET, "static_cache")
        .expect("/sys/module/static_cache");
    static DONE: AtomicBool = AtomicBool::new(false);
    let t = unload_in_background(&DONE);
    // The destroy ends (a grace period or two); the unload still waits for the reference.
    let mut waited = 0;
    while (listed() || destroy_pending()) && waited < 1_000_000 {
        crate::sched::yield_now();
        waited += 1;
    }
    assert!(!destroy_pending(), "the destroy did not end");
    for _ in 0..200 {
        crate::sched::yield_now();
    }
    assert!(
        !DONE.load(Ordering::Acquire),
        "unload returned with a reference held"
    );
    assert_eq!(vmap::pages_in_use(), pages);
    // Meanwhile the same module loads again (the old instance is off the list); its cache's
    // name is free at once (the old cache was destroyed).
    let (r, out) = captured(|| module::load(file(STATIC_CACHE), "static_cache", &["objects=10"]));
    r.expect("a new instance loads while the old one waits");
    assert!(out.contains("static_cache: 10 objects"), "{out}");
    let (r, _) = captured(|| module::unload("static_cache", false));
    r.expect("the new instance unloads");
    // SAFETY: the reference `kset_find_obj` took, dropped once.
    unsafe { sysfs().kobject_put(k) }.expect("put");
    t.join();
    assert!(DONE.load(Ordering::Acquire));
    assert_eq!(footprint(), before);
}

#[crate::ktest]
fn a_thousand_cycles_with_kfree_rcu_traffic_stay_at_baseline() {
    warm_up_on_every_cpu(STATIC_CACHE, "static_cache");
    let before = footprint();
    let objects = slab_objects_in_use();
    for i in 0..1000 {
        if i % 100 == 0 {
            crate::ktest::progress(i);
        }
        let (r, _) =
            captured(|| module::load(file(STATIC_CACHE), "static_cache", &["objects=100"]));
        r.unwrap_or_else(|e| panic!("load {i}: {e}"));
        let (r, _) = captured(|| module::unload("static_cache", false));
        r.unwrap_or_else(|e| panic!("unload {i}: {e}"));
    }
    assert_eq!(footprint(), before);
    slab_objects_in_use().assert_at_most_more_than(
        &objects,
        16,
        "slab objects in use after 1,000 cycles",
    );
}

#[crate::ktest]
fn a_static_cache_merged_into_a_dynamic_primary_leaves_it_intact_on_unload() {
    let s = slab();
    // A dynamic cache of an unusual size: the module's static cache of the same size uses its
    // slabs (the primary-cache rule), the primary keeping its own users.
    let primary = s
        .kmem_cache_create(
            "ktest-primary-200",
            200,
            Default::default(),
            slab::SlabFlags::empty(),
        )
        .expect("primary");
    let mine = primary.alloc(slab::Gfp::KERNEL).expect("object");
    let (r, _) = captured(|| {
        module::load(
            file(STATIC_CACHE),
            "static_cache",
            &["objects=100", "size=200", "nomerge=0"],
        )
    });
    r.expect("load");
    let aliases = |s: &slab::SlabAllocator<_>| -> Vec<alloc::string::String> {
        s.caches()
            .iter()
            .find(|(c, _)| core::ptr::eq(*c, &*primary))
            .map(|(_, names)| {
                names
                    .iter()
                    .map(|n| alloc::string::String::from(n.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let all: Vec<(alloc::string::String, Vec<alloc::string::String>)> = s
        .caches()
        .iter()
        .map(|(c, names)| {
            (
                alloc::string::String::from(c.name()),
                names
                    .iter()
                    .map(|n| alloc::string::String::from(n.as_str()))
                    .collect(),
            )
        })
        .collect();
    assert!(aliases(s).iter().any(|n| n == CACHE), "{all:?}");
    let (r, _) = captured(|| module::unload("static_cache", false));
    r.expect("unload");
    assert!(!aliases(s).iter().any(|n| n == CACHE));
    // The primary and its object are intact.
    // SAFETY: allocated above from this cache, freed once.
    unsafe { primary.free(mine) }.expect("free");
    let again = primary
        .alloc(slab::Gfp::KERNEL)
        .expect("the primary still allocates");
    // SAFETY: as above.
    unsafe { primary.free(again) }.expect("free");
    // SAFETY: every object is back; nothing else uses the cache.
    unsafe { s.kmem_cache_destroy(primary) }.expect("destroy");
}

/// `kmem_cache_setup`'s storage check: the range must lie inside one of the module's sized
/// variables. A module built against a stale `kmem_cache_size.h` declares storage smaller than
/// the kernel's `KmemCache`; without the check the cache overwrote the variables after it
/// (seen when the structure grew: a page fault in a later `cleanup_module`).
#[crate::ktest]
fn storage_smaller_than_the_kernel_s_cache_is_refused() {
    use crate::memory::kmalloc::{KMEM_CACHE_ALIGN, KMEM_CACHE_SIZE};
    use crate::module::{PinError, pin_module_data};
    let (r, _) = captured(|| module::load(file(STATIC_CACHE), "static_cache", &["objects=10"]));
    let handle = r.expect("load").handle;
    let objects = crate::module::listed_modules()
        .by_name("static_cache")
        .map(|(_, m)| m.objects.clone())
        .expect("listed");
    let &(addr, _) = objects
        .iter()
        .find(|&&(_, len)| len as usize == KMEM_CACHE_SIZE)
        .expect("a `struct kmem_cache_opaque` variable in the module");
    let addr = addr as usize;
    let pin =
        |addr: usize, size: usize| pin_module_data(handle, addr, size, KMEM_CACHE_ALIGN).map(drop);
    assert_eq!(pin(addr, KMEM_CACHE_SIZE), Ok(()), "the whole variable");
    assert_eq!(
        pin(addr, KMEM_CACHE_SIZE + KMEM_CACHE_ALIGN),
        Err(PinError::NotAnObject),
        "a structure larger than the variable (a stale header)"
    );
    assert_eq!(
        pin(addr + KMEM_CACHE_ALIGN, KMEM_CACHE_SIZE),
        Err(PinError::NotAnObject),
        "past the variable's end"
    );
    let (r, _) = captured(|| module::unload("static_cache", false));
    r.expect("unload");
}
