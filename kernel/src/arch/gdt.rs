//! The global descriptor table (GDT) and task-state segment (TSS).
//!
//! In 64-bit mode segmentation is mostly gone, but the CPU still needs a code segment, and the
//! TSS still matters for one thing: the interrupt stack table (IST). A double fault caused by a
//! kernel stack overflow cannot run on the overflowed stack, so its handler gets a stack of its
//! own through IST entry [`DOUBLE_FAULT_IST_INDEX`].

use spin::LazyLock;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// The IST slot holding the double-fault stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;

/// Size of the double-fault stack.
const IST_STACK_SIZE: usize = 16 * 1024;

/// A stack for the double-fault handler, aligned as the ABI wants.
#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

static TSS: LazyLock<TaskStateSegment> = LazyLock::new(|| {
    static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);
    let mut tss = TaskStateSegment::new();
    // Stacks grow down: the IST entry holds the stack's top.
    let bottom = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK);
    tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = bottom + IST_STACK_SIZE as u64;
    tss
});

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static GDT: LazyLock<(GlobalDescriptorTable, Selectors)> = LazyLock::new(|| {
    let mut gdt = GlobalDescriptorTable::new();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss = gdt.append(Descriptor::tss_segment(&TSS));
    (gdt, Selectors { code, data, tss })
});

/// Loads the GDT, reloads the segment registers and loads the TSS.
pub fn init() {
    let (gdt, selectors) = &*GDT;
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which lives forever.
    unsafe {
        CS::set_reg(selectors.code);
        SS::set_reg(selectors.data);
        DS::set_reg(selectors.data);
        ES::set_reg(selectors.data);
        load_tss(selectors.tss);
    }
}
