//! The application-processor start-up trampoline.
//!
//! A CPU woken by a start-up IPI begins in 16-bit real mode at a page-aligned address below
//! 1 MiB. This code, copied to such a page, climbs the modes one by one:
//!
//! 1. **real mode**: compute its own linear base (`cs << 4`) in `ebx`, patch the GDT pointer and
//!    the far-jump targets with it, load the GDT, set `CR0.PE`, far-jump to 32-bit code;
//! 2. **protected mode**: enable PAE, load the kernel's page table into `CR3`, set
//!    `EFER.LME | EFER.NXE`, enable paging and write protection: the CPU is now in long mode's
//!    compatibility sub-mode; far-jump to a 64-bit code segment;
//! 3. **long mode**: load the stack pointer, argument and entry point that the boot CPU wrote
//!    into the parameter block at the end of the page, and call the entry point (kernel code at
//!    its normal high address).
//!
//! The trampoline page is identity-mapped in the kernel's page table while APs start, because
//! the instruction after "enable paging" is fetched through the new page table at the same
//! (low) address.

use core::ptr::addr_of;

core::arch::global_asm!(
    r#"
    .section .text.ap_trampoline, "ax"
    .global ap_trampoline_start
    .global ap_trampoline_end
    .global ap_trampoline_cr3
    .global ap_trampoline_stack
    .global ap_trampoline_entry
    .global ap_trampoline_arg

    .code16
ap_trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    xorl %ebx, %ebx
    movw %cs, %bx
    shll $4, %ebx
    leal (ap_tramp_gdt - ap_trampoline_start)(%ebx), %eax
    movl %eax, (ap_tramp_gdt_ptr - ap_trampoline_start + 2)
    leal (ap_tramp_prot32 - ap_trampoline_start)(%ebx), %eax
    movl %eax, (ap_tramp_far32 - ap_trampoline_start)
    leal (ap_tramp_long64 - ap_trampoline_start)(%ebx), %eax
    movl %eax, (ap_tramp_far64 - ap_trampoline_start)
    lgdtl (ap_tramp_gdt_ptr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl *(ap_tramp_far32 - ap_trampoline_start)

    .code32
ap_tramp_prot32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl (ap_trampoline_cr3 - ap_trampoline_start)(%ebx), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010000, %eax
    movl %eax, %cr0
    ljmpl *(ap_tramp_far64 - ap_trampoline_start)(%ebx)

    .code64
ap_tramp_long64:
    movl %ebx, %ebx
    xorl %eax, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq (ap_trampoline_stack - ap_trampoline_start)(%rbx), %rsp
    movq (ap_trampoline_arg - ap_trampoline_start)(%rbx), %rdi
    movq (ap_trampoline_entry - ap_trampoline_start)(%rbx), %rax
    callq *%rax
    ud2

    .balign 8
ap_tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
ap_tramp_gdt_ptr:
    .word 31
    .long 0
ap_tramp_far32:
    .long 0
    .word 0x08
ap_tramp_far64:
    .long 0
    .word 0x18
    .balign 8
ap_trampoline_cr3:
    .quad 0
ap_trampoline_stack:
    .quad 0
ap_trampoline_entry:
    .quad 0
ap_trampoline_arg:
    .quad 0
ap_trampoline_end:
    .text
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_trampoline_cr3: u8;
    static ap_trampoline_stack: u8;
    static ap_trampoline_entry: u8;
    static ap_trampoline_arg: u8;
}

/// The trampoline's machine code, to copy to its page.
pub(crate) fn code() -> &'static [u8] {
    let start = addr_of!(ap_trampoline_start);
    let end = addr_of!(ap_trampoline_end);
    // SAFETY: the two symbols bound the trampoline's bytes in the kernel's text, which is
    // mapped readable for the kernel's life.
    unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

/// Byte offsets of the parameter block's fields within the trampoline.
pub(crate) struct Params {
    /// Physical address of the level-4 page table (must be below 4 GiB).
    pub cr3: usize,
    /// Initial stack pointer.
    pub stack: usize,
    /// Address of `extern "C" fn(arg: u64) -> !` to call.
    pub entry: usize,
    /// Argument passed to the entry point.
    pub arg: usize,
}

/// Where in the copied page each parameter goes.
pub(crate) fn params() -> Params {
    let start = addr_of!(ap_trampoline_start) as usize;
    Params {
        cr3: addr_of!(ap_trampoline_cr3) as usize - start,
        stack: addr_of!(ap_trampoline_stack) as usize - start,
        entry: addr_of!(ap_trampoline_entry) as usize - start,
        arg: addr_of!(ap_trampoline_arg) as usize - start,
    }
}
