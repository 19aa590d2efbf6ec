//! Unit tests of the caller-tracking files (`alloc_traces`, `free_traces`, `alloc_calls`,
//! `free_calls`) and of the tracks in reports, on the host platform, whose stand-in
//! `fill_track` gives pid 1000 + CPU, its settable clock and the stack `[caller, caller +
//! 0x10]`.

use super::*;
use crate::base::Gfp;
use crate::flags::KmemCacheArgs;
use crate::flags::SlabFlags;
use crate::host::{CpuRegistration, HostConfig, HostPlatform};
use crate::registry::SlabOptions;
use crate::{KmemCacheHandle, SlabErrorKind};

fn setup(cpus: usize, nodes: usize) -> (CpuRegistration, SlabAllocator<HostPlatform>) {
    let p = HostPlatform::new(HostConfig {
        cpus,
        nodes,
        pages_per_node: 4096,
    });
    let cpu = p.register_cpu();
    let slab = SlabAllocator::with_options(p, SlabOptions::default()).expect("allocator");
    (cpu, slab)
}

/// A `SLAB_STORE_USER` cache named `traced` of `size`-byte objects.
fn tracked(slab: &SlabAllocator<HostPlatform>, size: usize) -> KmemCacheHandle<'_, HostPlatform> {
    slab.kmem_cache_create(
        "traced",
        size,
        KmemCacheArgs::default(),
        SlabFlags::SLAB_STORE_USER,
    )
    .unwrap()
}

/// `alloc_traces` and `free_traces` of a `SLAB_STORE_USER` cache group the objects in use by
/// where they were allocated / last freed, with Linux's fields: count, caller, age range,
/// pids, and the stack under each line; `alloc_calls`/`free_calls` are the same lines
/// without the stacks.
#[test]
fn traces_group_the_objects_in_use_by_caller_with_age_pid_and_stack() {
    let (_cpu, slab) = setup(1, 1);
    let c = tracked(&slab, 100);
    let a: Vec<_> = (0..5)
        .map(|_| c.alloc_caller(Gfp::KERNEL, 0x1111).unwrap())
        .collect();
    slab.platform().advance_jiffies(30);
    let b: Vec<_> = (0..3)
        .map(|_| c.alloc_caller(Gfp::KERNEL, 0x2222).unwrap())
        .collect();
    slab.platform().advance_jiffies(10);
    for o in &b[..2] {
        // SAFETY: ours, not used afterwards.
        unsafe { c.free_caller(*o, 0x3333).unwrap() };
    }
    slab.platform().advance_jiffies(2);
    let traces = read(&slab, "traced/alloc_traces").unwrap();
    assert_eq!(
        traces,
        "      5 0x1111 age=42 pid=1000\n        0x1111\n        0x1121\n\n\
         \x20     1 0x2222 age=12 pid=1000\n        0x2222\n        0x2232\n\n",
        "one CPU and one node: no cpus= or nodes="
    );
    assert_eq!(
        read(&slab, "traced/alloc_calls").unwrap(),
        "      5 0x1111 age=42 pid=1000\n      1 0x2222 age=12 pid=1000\n"
    );
    // The last free of each object in use: none yet for these six.
    assert_eq!(
        read(&slab, "traced/free_calls").unwrap(),
        "      6 <not-available> age=42 pid=0\n"
    );
    // Allocated again, an object shows its last free.
    let again = c.alloc_caller(Gfp::KERNEL, 0x4444).unwrap();
    let freed = read(&slab, "traced/free_calls").unwrap();
    assert!(
        freed.lines().any(|l| l == "      1 0x3333 age=2 pid=1000"),
        "{freed}"
    );
    // A range of ages: min/avg/max.
    slab.platform().advance_jiffies(4);
    let again2 = c.alloc_caller(Gfp::KERNEL, 0x4444).unwrap();
    let calls = read(&slab, "traced/alloc_calls").unwrap();
    assert!(
        calls
            .lines()
            .any(|l| l == "      2 0x4444 age=0/2/4 pid=1000"),
        "{calls}"
    );
    assert_eq!(read(&slab, "kmalloc-64/alloc_traces").as_deref(), Ok(""));
    for o in a
        .into_iter()
        .chain(b.into_iter().skip(2))
        .chain([again, again2])
    {
        // SAFETY: ours.
        unsafe { c.free(o).unwrap() };
    }
    assert_eq!(read(&slab, "traced/alloc_traces").as_deref(), Ok(""));
}

/// On a machine of several CPUs and nodes, each line says which (Linux's `cpus=` and
/// `nodes=` lists) and the pid range.
#[test]
fn traces_list_cpus_and_nodes_on_a_bigger_machine() {
    let (_cpu0, slab) = setup(4, 2);
    let c = tracked(&slab, 64);
    let first = c.alloc_caller(Gfp::KERNEL, 0x5000).unwrap();
    // Raw pointers are not `Send`: the other "CPU" hands its object back as an address.
    let second = std::thread::scope(|s| {
        s.spawn(|| {
            let _cpu1 = slab.platform().register_cpu();
            c.alloc_caller(Gfp::KERNEL, 0x5000).unwrap().as_ptr() as usize
        })
        .join()
        .unwrap()
    });
    let objs = [first, core::ptr::NonNull::new(second as *mut u8).unwrap()];
    let calls = read(&slab, "traced/alloc_calls").unwrap();
    // The host puts CPU 1 on node 1.
    assert_eq!(
        calls,
        "      2 0x5000 age=0 pid=1000-1001 cpus=0-1 nodes=0-1\n"
    );
    for o in objs {
        // SAFETY: ours.
        unsafe { c.free(o).unwrap() };
    }
}

/// A page holds the busiest locations whole: with more than fit, the file ends after the
/// last complete one.
#[test]
fn traces_end_at_the_last_whole_location_that_fits_in_the_page() {
    let (_cpu, slab) = setup(1, 1);
    let c = tracked(&slab, 32);
    let objs: Vec<_> = (0..crate::cache::debug::MAX_TRACES)
        .map(|i| c.alloc_caller(Gfp::KERNEL, 0x10_0000 + i * 0x100).unwrap())
        .collect();
    let traces = read(&slab, "traced/alloc_traces").unwrap();
    let entries = traces.split_terminator("\n\n").count();
    assert!(
        entries > 10 && entries < objs.len(),
        "{entries} entries of {} ({} bytes)",
        objs.len(),
        traces.len()
    );
    assert!(traces.ends_with("\n\n"), "ends with a whole entry");
    for o in objs {
        // SAFETY: ours.
        unsafe { c.free(o).unwrap() };
    }
}

/// A double free in a `SLAB_STORE_USER` cache is reported with the object's two records:
/// where it was allocated and where it was first freed (Linux's "Allocated in ... Freed in").
#[test]
fn a_double_free_report_carries_the_allocation_and_the_first_free() {
    let (_cpu, slab) = setup(1, 1);
    let c = tracked(&slab, 48);
    let o = c.alloc_caller(Gfp::KERNEL, 0xa110c).unwrap();
    slab.platform().advance_jiffies(7);
    // SAFETY: ours; the second free is the bug under test, which the debug cache catches.
    unsafe { c.free_caller(o, 0xf4ee).unwrap() };
    // SAFETY: the double free: the debug cache checks every free and refuses it.
    let r = unsafe { c.free_caller(o, 0xbad) }.unwrap_err();
    assert_eq!(r.kind, SlabErrorKind::DoubleFree);
    let [alloc, free] = r.tracks.expect("tracks in the report");
    assert_eq!((alloc.addr, alloc.when, alloc.pid), (0xa110c, 0, 1000));
    assert_eq!((free.addr, free.when, free.pid), (0xf4ee, 7, 1000));
    assert_ne!(alloc.handle, 0);
    let logged = c.reports().0;
    let last = logged.last().unwrap();
    assert_eq!((&last.kind, last.object), (&r.kind, r.object));
    assert_eq!(
        last.tracks, None,
        "the log keeps reports without their records"
    );
    // A pointer that is not an object of the cache has none.
    let inside = o.as_ptr().wrapping_add(8);
    // SAFETY: not an object: reported and refused, nothing freed.
    let r = unsafe { c.free_caller(core::ptr::NonNull::new(inside).unwrap(), 0xbad) };
    assert_eq!(r.unwrap_err().tracks, None);
}

/// A cache without `SLAB_STORE_USER` reports with no records.
#[test]
fn reports_of_a_cache_that_does_not_track_have_no_records() {
    let (_cpu, slab) = setup(1, 1);
    let c = slab
        .kmem_cache_create(
            "untracked",
            48,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_POISON,
        )
        .unwrap();
    let o = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: ours; the second free is the bug under test.
    unsafe { c.free(o).unwrap() };
    // SAFETY: the double free: a poisoned (debug) cache checks every free and refuses it.
    let r = unsafe { c.free(o) }.unwrap_err();
    assert_eq!((r.kind, r.tracks), (SlabErrorKind::DoubleFree, None));
}
