//! Backtraces (Linux's `dump_stack`, `show_trace_log_lvl`, `%pB`): the frame-pointer chain
//! walked safely and each return address named from the kernel's symbol table (Linux's
//! kallsyms, packed by the host as the initramfs file `boot/kallsyms`) or a loaded module's
//! function symbols. Printed on a panic, on every CPU exception the kernel reports, on a slab
//! report and on a warning ([`warn`], [`crate::warn_on!`]). `docs/debugging.md` reads one.
//!
//! ```text
//! Call Trace:
//!  kernel::shell::execute+0x3a1/0x6f0
//!  kernel::shell::run+0x11c/0x2a0
//!  hello_init+0x1c/0x40 [hello]
//! ```
//!
//! # Never faulting
//! The kernel keeps frame pointers (`-C force-frame-pointers=yes`, `.cargo/config.toml`):
//! `rbp` points at the saved `rbp` of the caller, and above it the return address. The walk
//! ([`walk`]) reads a frame only if it lies, 8-aligned and whole, in a stack known to be mapped
//! (a kernel stack slot, the boot CPU's stack or its double-fault stack), and each frame must lie
//! above the one before on the same stack (an exception's frames may lead once or twice onto
//! another stack). It stops after [`MAX_DEPTH`] frames, or at the
//! first frame that fails a check: a corrupt chain gives a short trace, never a fault. Code built
//! without frame pointers (a `RUSTFLAGS` build, assembly) only shortens the trace.
//!
//! Naming takes no lock that may be held (the module list is tried, not waited for) and
//! allocates nothing, so a trace can be printed from any context.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Once;

use crate::hook::Hook;

/// The most frames a trace shows.
pub const MAX_DEPTH: usize = 32;

/// The kernel's symbol table, as the initramfs holds it.
static KALLSYMS: Once<kallsyms::Table<'static>> = Once::new();

/// Names an address in a loaded module: calls its argument with the name, if the address is in
/// one. Set by the core's start-up to the module layer's lookup ([`crate::module`]).
pub(crate) type ModuleLookup = fn(u64, &mut dyn FnMut(Symbolized<'_>));
pub(crate) static MODULE_LOOKUP: Hook<ModuleLookup> = Hook::new();

/// Set once an exception has printed its trace, so that the panic that follows does not print
/// a second one.
static EXCEPTION_TRACED: AtomicBool = AtomicBool::new(false);

/// Installs the kernel's symbol table (the initramfs file `boot/kallsyms`, format of the
/// `kallsyms` crate). Returns how many symbols it holds, or `None` if the bytes are not a
/// table (traces then show raw addresses). The first good table stays.
pub fn set_kernel_symbols(bytes: &'static [u8]) -> Option<usize> {
    let table = kallsyms::Table::parse(bytes)?;
    Some(KALLSYMS.call_once(|| table).len())
}

/// How many kernel symbols traces can name (0 without a table).
pub fn kernel_symbol_count() -> usize {
    KALLSYMS.get().map_or(0, |t| t.len())
}

/// An address named: `name+0xoffset/0xsize`, and ` [module]` for a module's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbolized<'a> {
    /// The function's (demangled) name, or a module section's if no function covers it.
    pub name: &'a str,
    /// The address's offset in it.
    pub offset: u64,
    /// The function's size.
    pub size: u64,
    /// The module it belongs to, if not the kernel.
    pub module: Option<&'a str>,
}

impl fmt::Display for Symbolized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}/{:#x}", self.name, self.offset, self.size)?;
        if let Some(m) = self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

/// Calls `f` with the name of `addr` (`None` if neither the kernel's table nor a loaded module
/// names it), and returns what `f` returns.
pub fn symbolize<R>(addr: u64, f: impl FnOnce(Option<Symbolized<'_>>) -> R) -> R {
    if let Some(sym) = KALLSYMS.get().and_then(|t| t.lookup(addr)) {
        return f(Some(Symbolized {
            name: sym.name,
            offset: addr - sym.addr,
            size: sym.size,
            module: None,
        }));
    }
    let mut f = Some(f);
    let mut out = None;
    if let Some(lookup) = MODULE_LOOKUP.get() {
        lookup(addr, &mut |s| {
            if let Some(f) = f.take() {
                out = Some(f(Some(s)));
            }
        });
    }
    match (out, f) {
        (Some(r), _) => r,
        (None, Some(f)) => f(None),
        // `f` was taken only where `out` was set.
        (None, None) => unreachable!(),
    }
}

/// Writes one line of a trace for `addr`: ` name+0xoff/0xlen` (` [module]`), or the raw
/// address if nothing names it (see [`write_address`]).
pub fn format_frame(out: &mut dyn fmt::Write, addr: u64, return_address: bool) -> fmt::Result {
    out.write_char(' ')?;
    write_address(out, addr, return_address)?;
    out.write_char('\n')
}

/// Writes `addr` as a trace names it, `name+0xoff/0xlen` (` [module]`), or raw (`0x...`) if
/// nothing names it. A return address (`return_address`) is named by the call before it,
/// `addr - 1` (as Linux's `%pB`): a call that never returns may be the last instruction of its
/// function.
pub fn write_address(out: &mut dyn fmt::Write, addr: u64, return_address: bool) -> fmt::Result {
    let lookup = if return_address {
        addr.wrapping_sub(1)
    } else {
        addr
    };
    symbolize(lookup, |s| match s {
        Some(s) => {
            let s = Symbolized {
                offset: s.offset + (addr - lookup),
                ..s
            };
            write!(out, "{s}")
        }
        None => write!(out, "{addr:#x}"),
    })
}

/// The stack `[bottom, top)` `addr` lies in, if it is one known to be mapped whole.
fn known_stack(addr: u64) -> Option<(u64, u64)> {
    let in_range = |(lo, hi): (u64, u64)| (lo..hi).contains(&addr).then_some((lo, hi));
    crate::memory::stack::mapped_stack(addr)
        .or_else(|| crate::boot::boot_stack().and_then(in_range))
        .or_else(|| in_range(crate::arch::gdt::boot_ist_stack()))
}

/// One frame of a walk: where it is on the stack, and the address it returns to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame pointer: the address of the saved caller's `rbp`.
    pub fp: u64,
    /// The return address stored above it.
    pub ret: u64,
    /// The three words above that (0 past the stack's top): in an exception handler's frame,
    /// the error code and the saved `rip` lie there (after a word of padding).
    pub above: [u64; 3],
}

/// Walks the frame-pointer chain from `fp` (see the module's documentation for the checks),
/// calling `f` with each frame, at most [`MAX_DEPTH`].
pub(crate) fn walk(mut fp: u64, mut f: impl FnMut(Frame)) {
    let mut prev: Option<(u64, (u64, u64))> = None;
    let mut switches = 0;
    for _ in 0..MAX_DEPTH {
        if !fp.is_multiple_of(8) {
            return;
        }
        let Some(stack) = known_stack(fp) else {
            return;
        };
        if fp.checked_add(16).is_none_or(|end| end > stack.1) {
            return;
        }
        if let Some((prev_fp, prev_stack)) = prev {
            if prev_stack == stack {
                if fp <= prev_fp {
                    return;
                }
            } else {
                switches += 1;
                if switches > 2 {
                    return;
                }
            }
        }
        // SAFETY: `fp..fp + 16` lies, aligned, in a stack that is mapped whole and stays
        // mapped (`known_stack`); the words may be stale but reading them cannot fault.
        let (next, ret) = unsafe {
            (
                core::ptr::read_volatile(fp as *const u64),
                core::ptr::read_volatile((fp + 8) as *const u64),
            )
        };
        let above = core::array::from_fn(|i| {
            let at = fp + 16 + 8 * i as u64;
            if at + 8 <= stack.1 {
                // SAFETY: as above, `at..at + 8` lies, aligned, in the same mapped stack.
                unsafe { core::ptr::read_volatile(at as *const u64) }
            } else {
                0
            }
        });
        f(Frame { fp, ret, above });
        prev = Some((fp, stack));
        fp = next;
    }
}

/// The word at `addr`, if it lies, 8-aligned, in a stack known to be mapped (as the walk
/// reads frames).
fn read_stack_word(addr: u64) -> Option<u64> {
    let stack = known_stack(addr)?;
    if !addr.is_multiple_of(8) || addr.checked_add(8)? > stack.1 {
        return None;
    }
    // SAFETY: `addr..addr + 8` lies, aligned, in a stack that is mapped whole and stays
    // mapped (`known_stack`); a stale word is harmless, reading it cannot fault.
    Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
}

/// The caller's frame pointer.
#[inline(always)]
pub(crate) fn frame_pointer() -> u64 {
    let fp: u64;
    // SAFETY: reads a register.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    fp
}

/// Prints `Call Trace:` and a line per frame of the chain from frame pointer `fp`, skipping
/// frames until the one `skip_until` accepts (that frame is skipped too).
fn print_chain(fp: u64, mut skip_until: Option<&mut dyn FnMut(Frame) -> bool>) {
    let mut out = crate::console::Writer;
    walk(fp, |frame| {
        if let Some(skip) = skip_until.as_mut() {
            if skip(frame) {
                skip_until = None;
            }
            return;
        }
        if frame.ret != 0 {
            let _ = format_frame(&mut out, frame.ret, true);
        }
    });
}

/// Prints the backtrace of the caller (Linux's `dump_stack`): `Call Trace:`, then a line per
/// frame, the caller's own first.
#[inline(never)]
pub fn dump_stack() {
    let _ = fmt::Write::write_str(&mut crate::console::Writer, "Call Trace:\n");
    print_chain(frame_pointer(), None);
}

/// The trace of a CPU exception: the faulting instruction `rip` named first, then the frames
/// of the interrupted code. `cpu_frame` is the address of the frame the CPU pushed (where
/// `rip` is saved: the handler's `&InterruptStackFrame`). The frames up to and including the
/// handler's are skipped: the handler's frame is the one just below `cpu_frame` (its saved
/// `rbp`, then an error code or a word of padding, then the CPU's frame: 8 to 32 bytes
/// lower). Found by address, not by looking for `rip`'s value, which the handler's callers
/// may also hold in their locals (they print it).
///
/// A fault on a function's first instruction, or at an address no function covers (a call to
/// unmapped or unloaded code), comes before the callee made its frame: the caller's return
/// address is then the word at the stack pointer `rsp`, printed as Linux prints a frame it
/// found by scanning, ` ? caller+0xoff/0xlen`, if it names a function.
pub(crate) fn exception_trace(out: &mut dyn fmt::Write, rip: u64, cpu_frame: u64, rsp: u64) {
    let _ = out.write_str("Call Trace:\n");
    let _ = format_frame(out, rip, false);
    if symbolize(rip, |s| s.is_none_or(|s| s.offset == 0))
        && let Some(ret) = read_stack_word(rsp)
        && symbolize(ret.wrapping_sub(1), |s| s.is_some())
    {
        let _ = out.write_str(" ? ");
        let _ = write_address(out, ret, true);
        let _ = out.write_char('\n');
    }
    walk(frame_pointer(), {
        let mut past_handler = false;
        move |f: Frame| {
            if past_handler {
                if f.ret != 0 {
                    let _ = format_frame(out, f.ret, true);
                }
            } else if cpu_frame
                .checked_sub(f.fp)
                .is_some_and(|below| (8..=32).contains(&below))
            {
                past_handler = true;
            }
        }
    });
}

/// Records that an exception printed its trace ([`panic_trace`] then prints none).
pub(crate) fn mark_exception_traced() {
    EXCEPTION_TRACED.store(true, Ordering::Release);
}

/// The panic handler's trace: none if an exception just printed one (the panic is its
/// consequence).
pub(crate) fn panic_trace() {
    if !EXCEPTION_TRACED.load(Ordering::Acquire) {
        dump_stack();
    }
}

/// A warning (Linux's `WARN`): logs `WARNING: at FILE:LINE: message` and the caller's
/// backtrace, and carries on. [`crate::warn_on!`] is the usual way in.
#[track_caller]
#[inline(never)]
pub fn warn(args: fmt::Arguments<'_>) {
    let at = core::panic::Location::caller();
    log::warn!("WARNING: at {}:{}: {args}", at.file(), at.line());
    let _ = fmt::Write::write_str(&mut crate::console::Writer, "Call Trace:\n");
    print_chain(frame_pointer(), None);
}

/// Linux's `WARN(cond, fmt, ...)`: if `cond` holds, logs the message and the backtrace
/// ([`backtrace::warn`](crate::backtrace::warn)); evaluates to `cond`.
///
/// ```ignore
/// if kcore::warn_on!(count > limit, "count {count} past {limit}") {
///     return;
/// }
/// ```
#[macro_export]
macro_rules! warn_on {
    ($cond:expr $(,)?) => {
        $crate::warn_on!($cond, "{}", ::core::stringify!($cond))
    };
    ($cond:expr, $($arg:tt)+) => {{
        let cond: bool = $cond;
        if cond {
            $crate::backtrace::warn(::core::format_args!($($arg)+));
        }
        cond
    }};
}

#[cfg(feature = "ktest")]
mod ktests {
    use alloc::string::String;

    use super::*;

    #[inline(never)]
    fn backtrace_test_helper() {
        dump_stack();
        core::hint::black_box(());
    }

    /// Captures what `f` prints.
    fn captured(f: impl FnOnce()) -> String {
        let mut out = String::new();
        out.try_reserve(16 * 1024).expect("memory");
        crate::console::capture_start();
        f();
        crate::console::capture_stop(&mut out);
        out
    }

    #[crate::ktest]
    fn dump_stack_names_its_callers() {
        assert!(
            kernel_symbol_count() > 100,
            "the runner packs boot/kallsyms"
        );
        let out = captured(backtrace_test_helper);
        let trace = out.split_once("Call Trace:\n").expect("a trace").1;
        let first = trace.lines().next().unwrap_or("");
        assert!(
            first.starts_with(" kcore::backtrace::ktests::backtrace_test_helper+0x"),
            "the caller of dump_stack first: {out}"
        );
        assert!(
            trace.contains(" kcore::backtrace::ktests::dump_stack_names_its_callers+0x"),
            "the test function: {out}"
        );
        // `name+0xoff/0xlen`: the offset lies inside the length.
        let (off, len) = first
            .rsplit_once('+')
            .and_then(|(_, r)| r.split_once('/'))
            .expect("+off/len");
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
        assert!(hex(off) > 0 && hex(off) <= hex(len), "{first}");
    }

    #[inline(never)]
    fn panicking_helper(n: u32) -> u32 {
        if core::hint::black_box(n) > 0 {
            panic!("a panic on purpose, for its backtrace");
        }
        n
    }

    /// The runner checks the panic's trace: a frame in this function (`boot/src/ktest/
    /// boot_log.rs`, `exception_trace_names`).
    #[crate::ktest(fault = "panic")]
    fn a_panic_prints_a_backtrace_naming_the_test() {
        core::hint::black_box(panicking_helper(1));
    }

    #[inline(never)]
    fn faulting_function_stand_in() -> u64 {
        core::hint::black_box(7)
    }

    #[crate::ktest]
    fn an_exception_trace_names_the_faulting_function_first() {
        // The formatter the exception handlers use, with a RIP inside a known function (a real
        // fault would end the test before its output could be checked).
        let rip = faulting_function_stand_in as *const () as u64 + 2;
        let mut out = String::new();
        // No exception on this stack: no handler frame is found, the RIP line stays alone.
        exception_trace(&mut out, rip, 0, 0);
        assert!(out.starts_with("Call Trace:\n"), "{out}");
        let line = out.lines().nth(1).unwrap_or("");
        assert!(
            line.starts_with(" kcore::backtrace::ktests::faulting_function_stand_in+0x2/0x"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 2, "{out}");
        // An address nothing names is printed raw.
        let mut raw = String::new();
        format_frame(&mut raw, 0x1234, false).expect("formatted");
        assert_eq!(raw, " 0x1234\n");
    }

    #[inline(never)]
    fn warning_test_helper(n: u32) -> bool {
        let warned = crate::warn_on!(n > 1, "n is {n}");
        core::hint::black_box(warned)
    }

    #[crate::ktest]
    fn warn_on_logs_the_message_and_a_backtrace() {
        let out = captured(|| assert!(!warning_test_helper(1)));
        assert!(
            !out.contains("WARNING"),
            "no warning when the condition is false: {out}"
        );
        let out = captured(|| assert!(warning_test_helper(2)));
        assert!(
            out.contains("WARNING: at kernel/core/src/backtrace.rs:"),
            "{out}"
        );
        assert!(out.contains(": n is 2"), "{out}");
        let trace = out.split_once("Call Trace:\n").expect("a trace").1;
        assert!(
            trace.contains(" kcore::backtrace::ktests::warning_test_helper+0x"),
            "{out}"
        );
    }

    #[crate::ktest]
    fn the_walk_stops_at_bad_frame_pointers() {
        let mut frames = 0;
        walk(frame_pointer(), |_| frames += 1);
        assert!(
            frames > 1 && frames <= MAX_DEPTH,
            "{frames} frames from here"
        );
        for bad in [
            0,
            1,
            0xdead_beef,
            0x0000_4000_dead_0000,
            u64::MAX - 7,
            frame_pointer() + 1,
        ] {
            let mut frames = 0;
            walk(bad, |_| frames += 1);
            assert_eq!(frames, 0, "from {bad:#x}");
        }
        // A chain that loops onto itself, or points down the stack, stops after its first
        // frame (frames must move up the stack). Both fake frames are in one array on this
        // stack, so which lies above the other does not depend on how the compiler lays out
        // locals (two separate arrays made this test pass or fail with the build).
        let mut chain = [0u64; 8];
        let low = chain.as_ptr() as u64;
        let high = low + 32;
        // The frame at `low` names itself; the one at `high` names `low`, below it.
        chain[0] = low;
        chain[1] = 0x1234;
        chain[4] = low;
        chain[5] = 0x5678;
        // The array escapes here: its words are in memory, where the walk reads them.
        core::hint::black_box(&mut chain);
        for start in [low, high] {
            let mut frames = 0;
            walk(start, |_| frames += 1);
            assert_eq!(frames, 1, "from {start:#x}");
        }
        core::hint::black_box(&chain);
    }

    #[crate::ktest]
    fn a_slab_report_prints_a_backtrace_naming_the_test() {
        use slab::{Gfp, KmemCacheArgs, SlabFlags};
        let slab = crate::memory::kmalloc::slab();
        let cache = slab
            .kmem_cache_create(
                "ktest-bt",
                40,
                KmemCacheArgs::default(),
                SlabFlags::SLAB_RED_ZONE | SlabFlags::SLAB_POISON | SlabFlags::SLAB_STORE_USER,
            )
            .expect("cache");
        let o = cache.alloc(Gfp::KERNEL).expect("memory");
        // SAFETY: ours, freed once...
        unsafe { cache.free(o) }.expect("first free");
        let out = captured(|| {
            // SAFETY: ...and, on purpose, twice: the debug cache reports it.
            let r = unsafe { cache.free(o) };
            assert!(r.is_err(), "double free detected");
        });
        assert!(out.contains("slab: "), "{out}");
        let trace = out.split_once("Call Trace:\n").expect("a trace").1;
        assert!(
            trace.contains(
                " kcore::backtrace::ktests::a_slab_report_prints_a_backtrace_naming_the_test"
            ),
            "{out}"
        );
    }
}
