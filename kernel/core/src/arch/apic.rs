//! The local APIC (per-CPU interrupt controller and timer) and the I/O APIC (device interrupts).
//!
//! Register access comes from the `x2apic` crate, which drives the local APIC through MSRs in
//! x2APIC mode when the CPU has it, and through its memory-mapped registers (xAPIC) otherwise.
//! The local APIC timer is calibrated once against the PIT, then every CPU runs it periodically
//! at [`crate::time::HZ`].

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use spin::Once;
use x2apic::ioapic::{IoApic, IrqFlags, IrqMode, RedirectionTableEntry};
use x2apic::lapic::{LocalApic, LocalApicBuilder, TimerDivide, TimerMode};
use x86_64::PhysAddr;

use super::vectors;
use crate::cpu::MAX_CPUS;
use crate::memory::PAGE_SIZE;
use crate::sync::{IrqSave, SpinLock};

/// Vector for local APIC errors.
pub const ERROR_VECTOR: u8 = 0xfe;

/// A CPU's own `LocalApic`: only ever touched by that CPU, with interrupts off. Boxed, so that
/// an empty slot is a null pointer and the array is zeroes in `.bss` (an inline
/// `Option<LocalApic>` is not all zeroes when `None`: the 47 KiB array would be in `.data`,
/// on the disk, for the bootloader to read at every boot).
struct LapicSlot(UnsafeCell<Option<alloc::boxed::Box<LocalApic>>>);

// SAFETY: slot `i` is only accessed by CPU `i` with interrupts disabled (see `with_local`), so
// no two contexts use the same slot at once.
unsafe impl Sync for LapicSlot {}

static LAPICS: [LapicSlot; MAX_CPUS] = [const { LapicSlot(UnsafeCell::new(None)) }; MAX_CPUS];

/// Virtual address of the xAPIC registers (unused in x2APIC mode).
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer counts per tick (divider 16), from the calibration.
static TIMER_COUNT: AtomicU32 = AtomicU32::new(0);

struct IoApics {
    list: alloc::vec::Vec<(IoApic, u32, u8)>, // (registers, first GSI, number of inputs)
}

// SAFETY: the I/O APIC registers are reached only through this lock.
unsafe impl Send for IoApics {}

static IO_APICS: Once<SpinLock<IoApics>> = Once::new();

/// Runs `f` on the calling CPU's local APIC, with interrupts off.
fn with_local<R>(f: impl FnOnce(&mut LocalApic) -> R) -> R {
    let _irq = IrqSave::new();
    let cpu = crate::cpu::current_id();
    // SAFETY: interrupts are off, so nothing else on this CPU runs, and only this CPU uses
    // slot `cpu` (see `LapicSlot`).
    let slot = unsafe { &mut *LAPICS[cpu].0.get() };
    f(slot
        .as_mut()
        .expect("the local APIC of this CPU is initialised"))
}

/// Boot CPU: maps the APIC registers, enables its local APIC, calibrates the timer and masks
/// every I/O APIC input.
pub(crate) fn init_bsp() {
    let platform = super::acpi::platform();
    // SAFETY: the address ACPI gives for the local APIC is its register page, not RAM.
    let base = unsafe {
        crate::memory::paging::map_mmio(
            PhysAddr::new(platform.local_apic_address),
            PAGE_SIZE as u64,
        )
    }
    .expect("memory to map the local APIC");
    XAPIC_BASE.store(base.as_u64(), Ordering::Relaxed);
    init_local();
    let bsp = crate::cpu::this_cpu();
    let apic_id = id();
    bsp.apic_id.store(apic_id, Ordering::Relaxed);
    calibrate_timer();
    start_timer();

    let mut list = alloc::vec::Vec::new();
    for io in &platform.io_apics {
        // SAFETY: the address ACPI gives for an I/O APIC is its register page, not RAM.
        let virt =
            unsafe { crate::memory::paging::map_mmio(PhysAddr::new(io.address), PAGE_SIZE as u64) }
                .expect("memory to map an I/O APIC");
        // SAFETY: `virt` maps this I/O APIC's registers uncached, for ever; this is the only
        // `IoApic` for them.
        let mut ioapic = unsafe { IoApic::new(virt.as_u64()) };
        // SAFETY: reading the version register and masking every input has no side effects
        // beyond stopping interrupts we have not asked for.
        let inputs = unsafe {
            let inputs = ioapic.max_table_entry() + 1;
            for i in 0..inputs {
                let mut entry = RedirectionTableEntry::default();
                entry.set_flags(IrqFlags::MASKED);
                ioapic.set_table_entry(i, entry);
            }
            inputs
        };
        list.push((ioapic, io.gsi_base, inputs));
    }
    IO_APICS.call_once(|| SpinLock::new(IoApics { list }));
    log::info!(
        "local APIC {} mode, timer {} counts per tick",
        if is_x2apic() { "x2APIC" } else { "xAPIC" },
        TIMER_COUNT.load(Ordering::Relaxed)
    );
}

/// Whether the local APICs run in x2APIC mode.
pub(crate) fn is_x2apic() -> bool {
    static X2APIC: Once<bool> = Once::new();
    // CPUID leaf 1, ECX bit 21: x2APIC supported (the x2apic crate then picks that mode).
    *X2APIC.call_once(|| core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0)
}

/// Enables the calling CPU's local APIC (timer stopped). Every CPU calls this once.
pub(crate) fn init_local() {
    let lapic = LocalApicBuilder::new()
        .timer_vector(vectors::TIMER as usize)
        .error_vector(ERROR_VECTOR as usize)
        .spurious_vector(vectors::SPURIOUS as usize)
        .timer_mode(TimerMode::Periodic)
        .timer_divide(TimerDivide::Div16)
        .timer_initial(0)
        .set_xapic_base(XAPIC_BASE.load(Ordering::Relaxed))
        .build()
        .expect("the local APIC configuration is complete");
    let _irq = IrqSave::new();
    let cpu = crate::cpu::current_id();
    // SAFETY: interrupts are off and only this CPU uses its slot.
    let slot = unsafe { &mut *LAPICS[cpu].0.get() };
    *slot = Some(alloc::boxed::Box::new(lapic));
    let lapic = slot.as_mut().expect("just stored");
    // SAFETY: enabling this CPU's local APIC with the vectors above, which have IDT handlers.
    unsafe { lapic.enable() };
}

/// Measures the local APIC timer against 10 ms of the PIT.
fn calibrate_timer() {
    const PIT_TICKS: u16 = 11_932; // 10 ms
    let elapsed = with_local(|lapic| {
        // SAFETY: reprogramming this CPU's timer; its interrupt is not used yet.
        unsafe {
            lapic.set_timer_mode(TimerMode::OneShot);
            lapic.set_timer_divide(TimerDivide::Div16);
            lapic.set_timer_initial(u32::MAX);
            drivers::pit::wait_ticks(PIT_TICKS);
            let left = lapic.timer_current();
            lapic.set_timer_initial(0);
            u32::MAX - left
        }
    });
    // `elapsed` counts per 10 ms; a tick lasts 1000 / HZ ms.
    let per_tick = u64::from(elapsed) * 100 / u64::from(crate::time::HZ);
    TIMER_COUNT.store(
        per_tick.clamp(1, u64::from(u32::MAX)) as u32,
        Ordering::Relaxed,
    );
}

/// Starts the calling CPU's periodic tick.
pub(crate) fn start_timer() {
    let count = TIMER_COUNT.load(Ordering::Relaxed);
    with_local(|lapic| {
        // SAFETY: the timer vector has a handler; periodic mode at the calibrated count.
        unsafe {
            lapic.set_timer_divide(TimerDivide::Div16);
            lapic.set_timer_mode(TimerMode::Periodic);
            lapic.set_timer_initial(count);
        }
    });
}

/// The calling CPU's local APIC id.
pub(crate) fn id() -> u32 {
    // SAFETY: reading the ID register has no side effects.
    let raw = with_local(|lapic| unsafe { lapic.id() });
    // The `x2apic` crate returns the raw register: in xAPIC mode the id is its top byte.
    if is_x2apic() { raw } else { raw >> 24 }
}

/// The ICR destination field for `apic_id`. The `x2apic` crate places the destination in the
/// ICR's high dword as x2APIC wants (bits 32..64); an xAPIC reads it from bits 56..64 only, so
/// in xAPIC mode the id must be shifted into the top byte.
fn icr_destination(apic_id: u32) -> u32 {
    if is_x2apic() { apic_id } else { apic_id << 24 }
}

/// Signals the end of the interrupt being handled.
pub(crate) fn eoi() {
    // SAFETY: called at the end of an interrupt handler, once per interrupt.
    with_local(|lapic| unsafe { lapic.end_of_interrupt() });
}

/// Sends interrupt `vector` to the CPU with local APIC id `apic_id`.
pub(crate) fn send_ipi(apic_id: u32, vector: u8) {
    // SAFETY: the vector has a handler on every CPU.
    with_local(|lapic| unsafe { lapic.send_ipi(vector, icr_destination(apic_id)) });
}

/// Sends the INIT IPI that resets an application processor to wait for a start-up IPI.
pub(crate) fn send_init(apic_id: u32) {
    // SAFETY: resets a CPU that has not been started (or must be restarted).
    with_local(|lapic| unsafe { lapic.send_init_ipi(icr_destination(apic_id)) });
}

/// Sends a start-up IPI: the target starts in real mode at physical address `page << 12`.
pub(crate) fn send_startup(apic_id: u32, page: u8) {
    // SAFETY: the caller placed start-up code at that page.
    with_local(|lapic| unsafe { lapic.send_sipi(page, icr_destination(apic_id)) });
}

/// Routes ISA IRQ `irq` to `vector` on the CPU with local APIC id `apic_id`, honouring the
/// firmware's overrides (GSI, polarity, trigger), and unmasks it.
pub(crate) fn route_isa_irq(irq: u8, vector: u8, apic_id: u32) {
    let route = super::acpi::platform().isa_irq(irq);
    let Some(ioapics) = IO_APICS.get() else {
        return;
    };
    let mut ioapics = ioapics.lock();
    let Some((ioapic, base, _)) = ioapics
        .list
        .iter_mut()
        .find(|(_, base, n)| (*base..*base + u32::from(*n)).contains(&route.gsi))
    else {
        log::warn!("no I/O APIC handles GSI {} (ISA IRQ {irq})", route.gsi);
        return;
    };
    let mut entry = RedirectionTableEntry::default();
    entry.set_mode(IrqMode::Fixed);
    entry.set_vector(vector);
    entry.set_dest(apic_id as u8);
    let mut flags = IrqFlags::empty();
    if route.active_low {
        flags |= IrqFlags::LOW_ACTIVE;
    }
    if route.level {
        flags |= IrqFlags::LEVEL_TRIGGERED;
    }
    entry.set_flags(flags);
    // SAFETY: programs one redirection entry to a vector that has a handler.
    unsafe { ioapic.set_table_entry((route.gsi - *base) as u8, entry) };
}
