//! Multiprocessor start-up: bringing the application processors (APs) online. The
//! inter-processor interrupts they then exchange are [`super::ipi`]'s.
//!
//! Start-up follows the classic INIT-SIPI-SIPI sequence: the boot CPU copies the trampoline
//! ([`super::trampoline`]) to a page below 1 MiB, fills in the AP's stack and entry point,
//! sends INIT, waits (10 µs on modern CPUs, 10 ms on old ones), sends a start-up IPI naming the
//! page, and waits for the AP to
//! report in (a second start-up IPI follows if it has not). APs start one at a time, since
//! they share the trampoline page.

use bootloader_api::info::MemoryRegionKind;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::PhysAddr;

use super::apic;
use crate::cpu::{self, MAX_CPUS};
use crate::memory::PAGE_SIZE;
use crate::memory::stack::KernelStack;

/// Set by an AP once it runs kernel code on its own stack.
static AP_STARTED: AtomicBool = AtomicBool::new(false);

/// Starts every enabled CPU that ACPI reports. Returns how many CPUs are online in all.
pub(crate) fn start_aps() -> usize {
    let platform = super::acpi::platform();
    let aps: alloc::vec::Vec<_> = platform.cpus.iter().filter(|c| !c.is_bsp).collect();
    if aps.is_empty() {
        return 1;
    }
    let Some(page) = trampoline_page() else {
        log::error!("no free page below 1 MiB for the AP trampoline; running on one CPU");
        return 1;
    };
    // SAFETY: `trampoline_page` found a free page below 1 MiB that nothing else uses; it is
    // the trampoline's until `unmap_identity` below.
    if unsafe { crate::memory::paging::map_identity(page) }.is_err() {
        log::error!("cannot map the AP trampoline; running on one CPU");
        return 1;
    }
    log::debug!("AP trampoline at {:#x}", page.as_u64());
    let base = crate::memory::phys_to_virt(page).as_mut_ptr::<u8>();
    let code = super::trampoline::code();
    let params = super::trampoline::params();
    let (pml4, _) = x86_64::registers::control::Cr3::read();
    assert!(
        pml4.start_address().as_u64() < (1 << 32),
        "the AP trampoline loads CR3 in 32-bit mode"
    );
    // SAFETY: `base` maps the trampoline page, which nothing else uses (it is free memory below
    // 1 MiB, which the frame allocator never hands out); the code fits in one page.
    unsafe {
        assert!(code.len() <= PAGE_SIZE);
        core::ptr::copy_nonoverlapping(code.as_ptr(), base, code.len());
        base.add(params.cr3)
            .cast::<u64>()
            .write_unaligned(pml4.start_address().as_u64());
        base.add(params.entry)
            .cast::<u64>()
            .write_unaligned(ap_entry as *const () as u64);
    }

    let mut next_id = 1;
    for ap in aps {
        if next_id >= MAX_CPUS {
            log::warn!("more than {MAX_CPUS} CPUs: the rest stay offline");
            break;
        }
        let Some(stack) = KernelStack::new() else {
            log::error!("no memory for CPU {next_id}'s stack");
            break;
        };
        let cpu = cpu::register(next_id, ap.apic_id);
        // SAFETY: as above; the AP reads these only after the start-up IPI below.
        unsafe {
            base.add(params.stack)
                .cast::<u64>()
                .write_unaligned(stack.top().as_u64());
            base.add(params.arg)
                .cast::<u64>()
                .write_unaligned(next_id as u64);
        }
        AP_STARTED.store(false, Ordering::SeqCst);
        let vector = (page.as_u64() >> 12) as u8;
        apic::send_init(ap.apic_id);
        crate::time::delay_us(init_delay_us());
        apic::send_startup(ap.apic_id, vector);
        if !wait_started(1_000) {
            apic::send_startup(ap.apic_id, vector);
        }
        if wait_started(1_000_000) {
            // The AP runs on this stack for ever.
            core::mem::forget(stack);
            while !cpu.is_online() {
                core::hint::spin_loop();
            }
            next_id += 1;
        } else {
            log::error!("CPU with APIC id {} did not start", ap.apic_id);
        }
    }
    crate::memory::paging::unmap_identity(page);
    next_id
}

/// How long to wait between INIT and the start-up IPI. The MP specification asks for 10 ms,
/// which only very old processors need; like Linux, CPUs of family 6 and later (every x86_64
/// CPU) get 10 µs.
fn init_delay_us() -> u64 {
    let family = (core::arch::x86_64::__cpuid(1).eax >> 8) & 0xf;
    if family >= 6 { 10 } else { 10_000 }
}

/// Waits up to `us` microseconds for the AP to report in.
fn wait_started(us: u64) -> bool {
    let deadline = crate::time::uptime_us() + us;
    while crate::time::uptime_us() < deadline {
        if AP_STARTED.load(Ordering::Acquire) {
            return true;
        }
        core::hint::spin_loop();
    }
    AP_STARTED.load(Ordering::Acquire)
}

/// The first usable page at or above 4 KiB and below 1 MiB.
fn trampoline_page() -> Option<PhysAddr> {
    crate::boot::info()
        .memory_regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .filter_map(|r| {
            let start = r.start.max(0x1000).next_multiple_of(PAGE_SIZE as u64);
            (start + PAGE_SIZE as u64 <= r.end.min(0x10_0000)).then_some(start)
        })
        .next()
        .map(PhysAddr::new)
}

/// Where an AP arrives from the trampoline, on its own stack, with the boot CPU's page table.
extern "C" fn ap_entry(id: u64) -> ! {
    let cpu = cpu::cpu(id as usize).expect("the boot CPU registered this AP");
    cpu::install(cpu);
    // Drop the trampoline's identity mapping from this CPU's TLB (reloading CR3 flushes it).
    let (frame, flags) = x86_64::registers::control::Cr3::read();
    // SAFETY: reloading the current page table changes no mapping.
    unsafe { x86_64::registers::control::Cr3::write(frame, flags) };
    super::gdt::init_ap();
    super::interrupts::load_idt();
    AP_STARTED.store(true, Ordering::Release);
    apic::init_local();
    apic::start_timer();
    crate::sched::init_cpu();
    // Log before marking the CPU online: the boot CPU waits for that mark, so the line cannot
    // land in the middle of what the boot CPU prints next (the shell's first prompt).
    log::info!(
        "CPU {} online (APIC id {}, node {})",
        cpu.id,
        apic::id(),
        crate::memory::numa::cpu_to_node(cpu.id)
    );
    cpu::set_online();
    // Grace periods wait for this CPU from now on (it reports quiescent states).
    crate::sync::rcu::cpu_online(cpu.id);
    crate::sched::idle_loop()
}

#[crate::ktest(smp = 4)]
fn all_cpus_come_online_with_smp_4() {
    let online = cpu::online().count();
    assert_eq!(
        super::acpi::platform().cpus.len(),
        4,
        "the machine has 4 CPUs"
    );
    assert_eq!(online, 4, "all 4 CPUs are online");
}

#[crate::ktest(smp = 8)]
fn all_cpus_come_online_with_smp_8() {
    let online: alloc::vec::Vec<u32> = cpu::online()
        .map(|c| c.apic_id.load(Ordering::Relaxed))
        .collect();
    assert_eq!(online.len(), 8, "all 8 CPUs are online: {online:?}");
}
