//! Caller tracking for `SLAB_STORE_USER` caches (`slub_debug=U`): the kernel's side of the
//! slab allocator's [`Track`] records (Linux's `set_track`, `print_track` and the stack depot).
//!
//! Each allocation and free of a tracked object records
//! * **where**: the first frame of the call chain outside the allocator
//!   ([`is_allocator_frame`]): the caller of `kmalloc` or `kmem_cache_alloc`, and also of
//!   `Box::new` or `Vec::push`, whose allocator interface carries no caller. Linux gets it
//!   from `_RET_IP_`; Sheaf walks the frame pointers (`crate::backtrace`) and names each
//!   return address until one is not the allocator's;
//! * **the stack** from there, up to [`TRACK_DEPTH`] frames, kept once in a stack depot of
//!   [`DEPOT_SLOTS`] stacks (`sheaf-stackdepot`: no allocation, no lock) and named by a
//!   4-byte handle;
//! * the CPU, the thread (`pid`, read from the CPU's structure without a lock) and the time in
//!   `jiffies` (reports show `age=`).
//!
//! A report about a tracked object then reads as Linux's:
//!
//! ```text
//! ERROR slab: ktest-track: object 0xffff818000554000: double free
//! INFO: Allocated in kcore::selftest::track::allocate_it+0x6b/0xab age=0 cpu=0 pid=10
//!  kcore::selftest::track::allocate_it+0x6b/0xab
//!  kcore::selftest::track::a_double_free_names_the_function_that_allocated_and_the_one_that_freed+0x4a/0x85a
//!  kcore::ktest::run_request+0x575/0xaf5
//!  ...
//! INFO: Freed in kcore::selftest::track::free_it+0xd1/0x12b age=0 cpu=0 pid=10
//!  ...
//! ```
//!
//! and `/sys/kernel/slab/NAME/alloc_traces` names the callers of the objects in use.

use core::fmt;

use slab::Track;
use stackdepot::StackDepot;

use crate::backtrace;

/// Frames kept per stack (Linux keeps up to 16; a report's first few frames say enough).
pub const TRACK_DEPTH: usize = 8;

/// Stacks the depot holds (each `TRACK_DEPTH` words and two more: 288 KiB of `.bss`). When it
/// is full, new records have a caller but no stack.
pub const DEPOT_SLOTS: usize = 4096;

/// The stacks of all tracked allocations and frees.
static DEPOT: StackDepot<DEPOT_SLOTS, TRACK_DEPTH> = StackDepot::new();

/// Completes `track` (the slab platform's `fill_track`): the caller and its stack if the
/// allocator was given none, the thread and the time. Allocates nothing and takes no lock.
#[inline(never)]
pub fn fill(track: &mut Track) {
    track.pid = crate::cpu::current_tid() as u32;
    track.when = crate::time::jiffies();
    let mut frames = [0usize; TRACK_DEPTH];
    let mut n = 0;
    let mut found = false;
    backtrace::walk(backtrace::frame_pointer(), |frame| {
        let ret = frame.ret as usize;
        if ret == 0 || n == TRACK_DEPTH {
            return;
        }
        if !found {
            // A caller given by the allocator's user starts the stack; else the first frame
            // outside the allocator does.
            found = if track.addr != 0 {
                ret == track.addr
            } else {
                !is_allocator_frame(frame.ret)
            };
            if !found {
                return;
            }
            track.addr = ret;
        }
        frames[n] = ret;
        n += 1;
    });
    track.handle = DEPOT.save(&frames[..n]).map_or(0, |h| h.get());
}

/// Calls `f` with each frame of the stack `handle` names (innermost first); nothing for 0 or
/// a handle the depot does not know.
pub fn stack_frames(handle: u32, f: &mut dyn FnMut(usize)) {
    let Some(stack) = core::num::NonZeroU32::new(handle).and_then(|h| DEPOT.fetch(h)) else {
        return;
    };
    stack.as_slice().iter().for_each(|&a| f(a));
}

/// Writes the return address `addr` as `function+0xoff/0xlen` (` [module]`), without the
/// leading space and newline of a trace line ([`backtrace::write_address`]).
pub fn write_symbol(out: &mut dyn fmt::Write, addr: usize) -> fmt::Result {
    backtrace::write_address(out, addr as u64, true)
}

/// Prints one record of a slab report (Linux's `print_track`): `INFO: Allocated in CALLER
/// age=N cpu=N pid=N` and the stack, a frame per line; nothing for a record never written
/// (no caller, as Linux skips a zero `addr`).
pub fn print(out: &mut dyn fmt::Write, what: &str, t: &Track, now: u64) -> fmt::Result {
    if t.addr == 0 {
        return Ok(());
    }
    write!(out, "INFO: {what} in ")?;
    write_symbol(out, t.addr)?;
    writeln!(
        out,
        " age={} cpu={} pid={}",
        now.wrapping_sub(t.when),
        t.cpu,
        t.pid
    )?;
    let mut r = Ok(());
    stack_frames(t.handle, &mut |frame| {
        if r.is_ok() {
            r = backtrace::format_frame(out, frame as u64, true);
        }
    });
    r
}

/// Whether the return address `ret` lies in the allocator or in the code that only forwards
/// to it, so that the caller to record is further out: the slab crate, the kernel's kmalloc,
/// heap, cache and free-queue glue, Rust's `alloc` crate (`Box`, `Vec`, `RawVec`, the
/// global-allocator shims), any `Allocator` or `GlobalAlloc` impl, drop glue, `spin` (its
/// `Once` runs initialisers that allocate), the C exports of the allocator (`kmalloc`,
/// `kfree`, `kmem_cache_*`, ...) and the Rust module kit's wrappers (`kmod::`). Names are
/// demangled; a trait impl's `<T as Trait>::f` counts by its type's path.
fn is_allocator_frame(ret: u64) -> bool {
    backtrace::symbolize(ret.wrapping_sub(1), |s| {
        s.is_some_and(|s| is_allocator_function(s.name))
    })
}

/// See [`is_allocator_frame`]: the test on a function's demangled name.
pub fn is_allocator_function(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "slab::",
        "alloc::",
        "kcore::memory::kmalloc",
        "kcore::memory::heap",
        "kcore::memory::cache_alloc",
        "kcore::memory::static_cache",
        "kcore::memory::free_q",
        "kcore::memory::track",
        "kcore::backtrace",
        "kernel::export::slab",
        "kernel::export::static_cache",
        "kernel::export::freeq",
        "kmod::",
        "core::ptr::drop_in_place<",
        // Lazy initialisation (`Once::call_once`) runs its closure inside `spin`'s frames: the
        // caller of interest is further out (a static cache's first allocation, a
        // `static X: Once<Vec<..>>`).
        "spin::",
        "__rustc::",
        "__rust_",
        "__rg_",
        "__rdl_",
        "kmem_cache_",
    ];
    const NAMES: &[&str] = &[
        "kmalloc",
        "kzalloc",
        "kcalloc",
        "kmalloc_array",
        "krealloc",
        "kfree",
        "kvfree",
        "kfree_sensitive",
        "kvfree_call_rcu",
        "kmem_free_q_add",
        "kmem_free_up_q",
    ];
    // Any `Allocator` or `GlobalAlloc` impl is glue between a collection and an allocator.
    const IMPLS: &[&str] = &[
        " as core::alloc::Allocator>::",
        " as core::alloc::global::GlobalAlloc>::",
    ];
    let name = name.trim_start_matches('<');
    PREFIXES.iter().any(|p| name.starts_with(p))
        || NAMES.contains(&name)
        || IMPLS.iter().any(|i| name.contains(i))
}
