//! The global descriptor table (GDT) and task-state segment (TSS), one pair per CPU.
//!
//! In 64-bit mode segmentation is mostly gone, but the CPU still needs a code segment, and the
//! TSS still matters for one thing: the interrupt stack table (IST). A double fault caused by a
//! kernel stack overflow cannot run on the overflowed stack, so its handler gets a stack of its
//! own through IST entry [`DOUBLE_FAULT_IST_INDEX`]. Each CPU needs its own TSS (and so its own
//! GDT entry for it), because two CPUs double-faulting at once must not share that stack.

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// The IST slot holding the double-fault stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;

/// Size of the boot CPU's double-fault stack.
const BOOT_IST_STACK_SIZE: usize = 16 * 1024;

/// The boot CPU's double-fault stack (the others get guarded kernel stacks).
#[repr(C, align(16))]
struct IstStack([u8; BOOT_IST_STACK_SIZE]);

static mut BOOT_DOUBLE_FAULT_STACK: IstStack = IstStack([0; BOOT_IST_STACK_SIZE]);

/// The boot CPU's double-fault stack, `[bottom, top)`: a stack a backtrace may walk.
pub(crate) fn boot_ist_stack() -> (u64, u64) {
    let bottom = (&raw const BOOT_DOUBLE_FAULT_STACK) as u64;
    (bottom, bottom + BOOT_IST_STACK_SIZE as u64)
}

/// One CPU's descriptor tables.
struct CpuTables {
    gdt: GlobalDescriptorTable,
    tss: TaskStateSegment,
}

impl CpuTables {
    const fn new() -> Self {
        Self {
            gdt: GlobalDescriptorTable::new(),
            tss: TaskStateSegment::new(),
        }
    }
}

/// The boot CPU's tables: needed before the heap exists, so they are static.
static mut BOOT_TABLES: CpuTables = CpuTables::new();

/// Loads the boot CPU's GDT and TSS. Called once, first thing at boot.
pub(crate) fn init() {
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    assert!(
        !DONE.swap(true, core::sync::atomic::Ordering::AcqRel),
        "gdt::init runs once"
    );
    let top = VirtAddr::from_ptr(&raw const BOOT_DOUBLE_FAULT_STACK) + BOOT_IST_STACK_SIZE as u64;
    let tables_ptr = &raw mut BOOT_TABLES;
    // SAFETY: this runs once (checked above), before any other code refers to BOOT_TABLES, so
    // this is the only reference to it for the rest of the kernel's life.
    let tables = unsafe { &mut *tables_ptr };
    activate(tables, top);
}

/// Builds and loads a fresh GDT and TSS for an application processor.
pub(crate) fn init_ap() {
    let stack = crate::memory::stack::KernelStack::new().expect("memory for a double-fault stack");
    let top = stack.top();
    // The stack serves this CPU for ever.
    core::mem::forget(stack);
    activate(
        alloc::boxed::Box::leak(alloc::boxed::Box::new(CpuTables::new())),
        top,
    );
}

/// Fills in `tables` (a TSS whose double-fault stack tops at `top`, and a GDT with kernel code
/// and data segments and that TSS) and loads them on the calling CPU.
fn activate(tables: &'static mut CpuTables, top: VirtAddr) {
    let CpuTables { gdt, tss } = tables;
    tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = top;
    let tss: &'static TaskStateSegment = tss;
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss = gdt.append(Descriptor::tss_segment(tss));
    let gdt: &'static GlobalDescriptorTable = gdt;
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which lives forever.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss);
    }
}
