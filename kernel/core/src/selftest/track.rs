//! Caller tracking on target (`SLAB_STORE_USER`, `slub_debug=U`; `memory::track`): a double
//! free names the function that allocated and the one that freed, the records skip the
//! allocator's frames also through `Box` and `Vec`, and `alloc_traces` names the callers.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{AllocError, Allocator, Layout};
use core::ptr::NonNull;

use slab::{Gfp, KmemCache, KmemCacheArgs, KmemCacheHandle, SlabFlags, Track};

use super::module::{captured, read};
use crate::memory::kmalloc::{KernelPlatform, slab};
use crate::memory::track;

fn tracked_cache(name: &'static str, size: usize) -> KmemCacheHandle<'static, KernelPlatform> {
    slab()
        .kmem_cache_create(
            name,
            size,
            KmemCacheArgs::default(),
            SlabFlags::SLAB_STORE_USER | SlabFlags::SLAB_NO_MERGE,
        )
        .expect("cache")
}

#[inline(never)]
fn allocate_it(cache: &KmemCache<KernelPlatform>) -> NonNull<u8> {
    core::hint::black_box(cache.alloc(Gfp::KERNEL).expect("memory"))
}

#[inline(never)]
fn free_it(cache: &KmemCache<KernelPlatform>, o: NonNull<u8>) {
    // SAFETY: the caller allocated `o` from `cache` and gives it up.
    unsafe { cache.free(o) }.expect("first free");
    core::hint::black_box(());
}

#[inline(never)]
fn free_it_again(cache: &KmemCache<KernelPlatform>, o: NonNull<u8>) -> bool {
    // SAFETY: a double free on purpose: the debug cache catches and reports it, and the
    // object stays free.
    core::hint::black_box(unsafe { cache.free(o) }.is_err())
}

#[crate::ktest]
fn a_double_free_names_the_function_that_allocated_and_the_one_that_freed() {
    let cache = tracked_cache("ktest-track", 72);
    let o = allocate_it(&cache);
    free_it(&cache, o);
    let (refused, out) = captured(|| free_it_again(&cache, o));
    assert!(refused, "the double free was refused: {out}");
    assert!(out.contains("double free"), "{out}");
    let after = |what: &str| -> &str {
        out.split_once(what)
            .unwrap_or_else(|| panic!("no `{what}` in:\n{out}"))
            .1
    };
    let allocated = after("INFO: Allocated in ");
    assert!(
        allocated.starts_with("kcore::selftest::track::allocate_it+0x"),
        "the allocating function first:\n{out}"
    );
    let freed = after("INFO: Freed in ");
    assert!(
        freed.starts_with("kcore::selftest::track::free_it+0x"),
        "the freeing function first:\n{out}"
    );
    // `age= cpu= pid=` and, under each, the stack out to the test.
    let line = allocated.lines().next().unwrap_or("");
    assert!(
        line.contains(" age=") && line.contains(" cpu=") && line.contains(" pid="),
        "{line}"
    );
    let pid = crate::cpu::current_tid();
    assert!(
        line.ends_with(&alloc::format!(" pid={pid}")),
        "{line} (pid {pid})"
    );
    let stack: String = allocated.lines().skip(1).take(3).collect();
    assert!(
        stack.contains(
            "kcore::selftest::track::a_double_free_names_the_function_that_allocated_and_the_one"
        ),
        "the test in the allocation's stack:\n{out}"
    );
    // Then the trace of the double free itself.
    assert!(
        after("Call Trace:\n").contains("kcore::selftest::track::free_it_again+0x"),
        "{out}"
    );
    // SAFETY: no object of the cache is live and nobody else uses it.
    unsafe { slab().kmem_cache_destroy(cache) }.expect("empty cache");
}

/// An allocator that hands out `SLAB_STORE_USER` objects (for `Box::new_in` and
/// `Vec::with_capacity_in`), so that a record's caller must be found past `alloc`'s frames and
/// this `Allocator` impl.
#[derive(Clone, Copy)]
struct Tracked<'a>(&'a KmemCache<KernelPlatform>);

// SAFETY: blocks come from the cache, at least as large and aligned as asked (checked), and go
// back to it; the cache outlives every block (the test frees them all before destroying it).
unsafe impl Allocator for Tracked<'_> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() > self.0.object_size() || layout.align() > self.0.align() {
            return Err(AllocError);
        }
        let p = self.0.alloc(Gfp::KERNEL).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: `ptr` came from `allocate`, so from the cache (the `Allocator` contract).
        unsafe { self.0.free(ptr) }.expect("a block of the cache");
    }
}

#[inline(never)]
fn boxed_here(a: Tracked<'_>) -> Box<[u64; 4], Tracked<'_>> {
    core::hint::black_box(Box::new_in([7; 4], a))
}

#[inline(never)]
fn vec_grown_here(a: Tracked<'_>) -> Vec<u8, Tracked<'_>> {
    let mut v = Vec::new_in(a);
    for i in 0..20 {
        v.push(i);
    }
    core::hint::black_box(v)
}

/// The caller recorded for `p` (its allocation), named.
fn allocated_by(cache: &KmemCache<KernelPlatform>, p: *const u8) -> String {
    // SAFETY: `p` is an object of `cache`, allocated and held by the test.
    let (alloc, _): (Track, Track) = unsafe { cache.object_track(p) }.expect("a tracked cache");
    let mut name = String::new();
    track::write_symbol(&mut name, alloc.addr).expect("formatted");
    name
}

#[crate::ktest]
fn a_record_skips_the_allocator_s_frames_through_box_and_vec() {
    let cache = tracked_cache("ktest-track-box", 64);
    let a = Tracked(&cache);
    let b = boxed_here(a);
    let v = vec_grown_here(a);
    let by_box = allocated_by(&cache, (&raw const *b).cast());
    assert!(
        by_box.starts_with("kcore::selftest::track::boxed_here+0x"),
        "Box::new_in's caller: {by_box}"
    );
    let by_vec = allocated_by(&cache, v.as_ptr());
    assert!(
        by_vec.starts_with("kcore::selftest::track::vec_grown_here+0x"),
        "Vec::push's caller: {by_vec}"
    );
    // `alloc_traces` names them too, with the stack under each.
    let traces = read("/kernel/slab/ktest-track-box/alloc_traces").expect("the file");
    assert!(
        traces
            .lines()
            .any(|l| l.contains(" kcore::selftest::track::boxed_here+0x") && l.contains(" age=")),
        "{traces}"
    );
    assert!(
        traces.contains("        kcore::selftest::track::a_record_skips_the_allocator_s_frames"),
        "the test in a stack:\n{traces}"
    );
    drop((b, v));
    assert_eq!(
        read("/kernel/slab/ktest-track-box/alloc_traces").as_deref(),
        Ok(""),
        "nothing in use"
    );
    // SAFETY: no object of the cache is live and nobody else uses it.
    unsafe { slab().kmem_cache_destroy(cache) }.expect("empty cache");
}

#[crate::ktest]
fn the_allocator_s_own_functions_are_told_from_their_callers() {
    for name in [
        "slab::cache::sheaves::<impl slab::cache::KmemCache<P>>::alloc_slow",
        "<alloc::raw_vec::RawVec<T,A>>::grow_one",
        "alloc::raw_vec::finish_grow",
        "__rustc::__rust_alloc",
        "kcore::memory::kmalloc::kmalloc",
        "<kcore::memory::heap::KernelHeap as core::alloc::global::GlobalAlloc>::alloc",
        "<kcore::selftest::track::Tracked as core::alloc::Allocator>::allocate",
        "core::ptr::drop_in_place<alloc::boxed::Box<u64>>",
        "<spin::once::Once<core::option::Option<core::alloc::layout::Layout>>>::try_call_once_slow::<x>",
        "kmalloc",
        "kmem_cache_alloc",
        "kfree",
    ] {
        assert!(track::is_allocator_function(name), "{name}");
    }
    for name in [
        "kcore::selftest::track::boxed_here",
        "kernel::shell::execute",
        "slabdemo_init",
        "kmalloc_test_helper",
        "kcore::sched::thread::create",
    ] {
        assert!(!track::is_allocator_function(name), "{name}");
    }
}
