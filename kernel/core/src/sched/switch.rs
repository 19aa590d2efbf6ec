//! The context switch: swap kernel stacks.
//!
//! A thread that is not running is fully described by its saved stack pointer: everything else
//! it needs is on its stack. [`switch_stacks`] pushes the callee-saved registers (the only ones
//! a function call must preserve), stores the stack pointer, loads the next thread's, pops its
//! registers and returns *into the next thread*, where it had called `switch_stacks` itself.
//!
//! There is no FPU/SSE state to save: the kernel is built for `x86_64-unknown-none`, which
//! compiles without SSE (soft-float), so kernel threads never touch those registers.

/// Saves the current thread's registers and stack pointer into `*save_rsp`, then resumes the
/// thread whose stack pointer is `load_rsp`.
///
/// # Safety
/// Interrupts must be off. `save_rsp` must be valid for writes; `load_rsp` must be a stack
/// pointer saved by this function (or built by [`initial_stack`]) of a thread that is not
/// running anywhere.
#[unsafe(naked)]
pub unsafe extern "C" fn switch_stacks(save_rsp: *mut u64, load_rsp: u64) {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// First code a new thread runs: `switch_stacks` "returns" here with the argument in `r12`.
#[unsafe(naked)]
unsafe extern "C" fn thread_trampoline() {
    core::arch::naked_asm!(
        "mov rdi, r12",
        "call {start}",
        "ud2",
        start = sym super::thread::thread_start,
    )
}

/// Writes the frame `switch_stacks` expects onto a fresh stack whose top is `top`, so that the
/// first switch to it calls `thread_start(arg)`. Returns the stack pointer to save.
///
/// # Safety
/// `top` must be the 16-byte-aligned top of a mapped, unused stack of at least 64 bytes.
pub unsafe fn initial_stack(top: u64, arg: u64) -> u64 {
    // From low to high addresses: r15 r14 r13 r12 rbx rbp, return address.
    let frame: [u64; 7] = [0, 0, 0, arg, 0, 0, thread_trampoline as *const () as u64];
    // The return address lands at `top - 8`, so after `ret` the trampoline runs with `rsp = top`
    // (16-byte aligned) and its `call` gives `thread_start` the alignment the ABI promises.
    let rsp = top - 8 * frame.len() as u64;
    // SAFETY: the caller guarantees the stack below `top` is mapped and unused; the frame
    // fits in the 56 bytes below it.
    unsafe { (rsp as *mut [u64; 7]).write(frame) };
    rsp
}
