//! ACPI: what the firmware says about the machine's CPUs, interrupt controllers and NUMA nodes.
//!
//! The `acpi` crate parses the MADT (CPUs, local APIC address, I/O APICs, ISA interrupt
//! overrides). The SRAT (which CPUs and which memory belong to which NUMA node) is walked here:
//! it is a plain list of small records. The firmware's tables live in physical memory, which the
//! bootloader maps in full, so "mapping" a table is only an address translation.

use acpi::platform::interrupt::{InterruptModel, Polarity, TriggerMode};
use acpi::sdt::{SdtHeader, Signature};
use acpi::{AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};
use alloc::vec::Vec;
use core::ptr::NonNull;
use spin::Once;
use x86_64::PhysAddr;

/// One CPU the firmware reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuInfo {
    /// Its local APIC id.
    pub apic_id: u32,
    /// Whether it is the CPU that booted (the BSP).
    pub is_bsp: bool,
}

/// An I/O APIC: routes device interrupts (GSIs) to CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApicInfo {
    /// Physical address of its registers.
    pub address: u64,
    /// First global system interrupt (GSI) it handles.
    pub gsi_base: u32,
}

/// A legacy ISA IRQ that is wired to another GSI, or with a non-default polarity/trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaOverride {
    /// ISA IRQ number.
    pub irq: u8,
    /// The GSI it arrives on.
    pub gsi: u32,
    /// Active low (ISA default: high).
    pub active_low: bool,
    /// Level triggered (ISA default: edge).
    pub level: bool,
}

/// A range of physical memory and its NUMA node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryAffinity {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// NUMA proximity domain.
    pub node: u32,
}

/// What the kernel needs from ACPI.
#[derive(Debug, Clone, Default)]
pub struct Platform {
    /// Every enabled CPU, the boot CPU first.
    pub cpus: Vec<CpuInfo>,
    /// Physical address of the local APIC registers (xAPIC mode).
    pub local_apic_address: u64,
    /// The I/O APICs.
    pub io_apics: Vec<IoApicInfo>,
    /// ISA IRQ overrides.
    pub isa_overrides: Vec<IsaOverride>,
    /// NUMA node of each CPU, by APIC id (from the SRAT; empty without one).
    pub cpu_nodes: Vec<(u32, u32)>,
    /// NUMA node of each memory range (from the SRAT; empty without one).
    pub memory_nodes: Vec<MemoryAffinity>,
}

impl Platform {
    /// The GSI, polarity and trigger of ISA IRQ `irq`.
    pub fn isa_irq(&self, irq: u8) -> IsaOverride {
        self.isa_overrides
            .iter()
            .find(|o| o.irq == irq)
            .copied()
            .unwrap_or(IsaOverride {
                irq,
                gsi: u32::from(irq),
                active_low: false,
                level: false,
            })
    }

    /// The NUMA node of the CPU with local APIC id `apic_id` (0 without an SRAT).
    pub fn node_of_apic(&self, apic_id: u32) -> u32 {
        self.cpu_nodes
            .iter()
            .find(|(a, _)| *a == apic_id)
            .map_or(0, |(_, n)| *n)
    }

    /// The NUMA node of logical CPU `id` (0 if there is no such CPU or no SRAT). Logical ids
    /// follow [`Platform::cpus`]: the boot CPU is 0 and the others are numbered in table order,
    /// as `smp::start_aps` starts them. This is the kernel's one source of CPU-to-node topology
    /// (`memory::numa::cpu_to_node`).
    pub fn node_of_cpu(&self, id: usize) -> usize {
        self.cpus
            .get(id)
            .map_or(0, |c| self.node_of_apic(c.apic_id) as usize)
    }

    /// The NUMA node of physical address `addr` (0 if no range claims it).
    pub fn node_of_addr(&self, addr: u64) -> u32 {
        self.memory_nodes
            .iter()
            .find(|m| (m.start..m.end).contains(&addr))
            .map_or(0, |m| m.node)
    }

    /// Number of NUMA nodes (at least 1).
    pub fn node_count(&self) -> usize {
        let cpu_max = self.cpu_nodes.iter().map(|(_, n)| *n);
        let mem_max = self.memory_nodes.iter().map(|m| m.node);
        cpu_max.chain(mem_max).max().map_or(1, |n| n as usize + 1)
    }
}

static PLATFORM: Once<Platform> = Once::new();

/// Reads the ACPI tables. Without usable tables (no RSDP), the machine is taken to have one CPU,
/// one node and the standard PC interrupt controllers.
pub(crate) fn init() {
    let platform = match crate::boot::info().rsdp_addr.into_option() {
        Some(rsdp) => read_tables(rsdp).unwrap_or_else(|err| {
            log::warn!("ACPI tables unusable ({err:?}); assuming a single-CPU PC");
            fallback()
        }),
        None => {
            log::warn!("no ACPI RSDP; assuming a single-CPU PC");
            fallback()
        }
    };
    log::info!(
        "ACPI: {} CPUs, {} I/O APIC(s), {} NUMA node(s)",
        platform.cpus.len(),
        platform.io_apics.len(),
        platform.node_count()
    );
    PLATFORM.call_once(|| platform);
}

/// The platform description. Panics before [`init`].
pub fn platform() -> &'static Platform {
    try_platform().expect("acpi::init has not run")
}

/// The platform description, or `None` before [`init`].
pub fn try_platform() -> Option<&'static Platform> {
    PLATFORM.get()
}

fn fallback() -> Platform {
    Platform {
        cpus: alloc::vec![CpuInfo {
            apic_id: 0,
            is_bsp: true
        }],
        local_apic_address: 0xfee0_0000,
        io_apics: alloc::vec![IoApicInfo {
            address: 0xfec0_0000,
            gsi_base: 0
        }],
        ..Platform::default()
    }
}

fn read_tables(rsdp: u64) -> Result<Platform, acpi::AcpiError> {
    // SAFETY: the bootloader reports the RSDP's physical address; the handler maps physical
    // memory through the kernel's complete physical-memory mapping.
    let tables = unsafe { AcpiTables::from_rsdp(PhysMap, rsdp as usize)? };
    let info = tables.platform_info()?;
    let mut platform = Platform::default();
    if let Some(processors) = &info.processor_info {
        platform.cpus.push(CpuInfo {
            apic_id: processors.boot_processor.local_apic_id,
            is_bsp: true,
        });
        for ap in processors.application_processors.iter() {
            if ap.state != acpi::platform::ProcessorState::Disabled {
                platform.cpus.push(CpuInfo {
                    apic_id: ap.local_apic_id,
                    is_bsp: false,
                });
            }
        }
    }
    if let InterruptModel::Apic(apic) = &info.interrupt_model {
        platform.local_apic_address = apic.local_apic_address;
        for io in apic.io_apics.iter() {
            platform.io_apics.push(IoApicInfo {
                address: u64::from(io.address),
                gsi_base: io.global_system_interrupt_base,
            });
        }
        for o in apic.interrupt_source_overrides.iter() {
            platform.isa_overrides.push(IsaOverride {
                irq: o.isa_source,
                gsi: o.global_system_interrupt,
                active_low: matches!(o.polarity, Polarity::ActiveLow),
                level: matches!(o.trigger_mode, TriggerMode::Level),
            });
        }
    }
    if platform.cpus.is_empty() {
        platform.cpus.push(CpuInfo {
            apic_id: 0,
            is_bsp: true,
        });
    }
    if let Ok(srat) = tables.find_table::<Srat>() {
        let header = srat.get().header;
        let len = header.length as usize;
        // SAFETY: the table is `len` bytes long (its header says so and the acpi crate checked
        // its checksum over that length), all in mapped physical memory.
        let bytes =
            unsafe { core::slice::from_raw_parts(srat.virtual_start().as_ptr().cast::<u8>(), len) };
        parse_srat(bytes, &mut platform.cpu_nodes, &mut platform.memory_nodes);
    }
    Ok(platform)
}

/// The SRAT header; its records follow.
#[repr(C, packed)]
struct Srat {
    header: SdtHeader,
    _revision: u32,
    _reserved: u64,
}

// SAFETY: `Srat` is the layout of the SRAT's fixed part and its signature is "SRAT".
unsafe impl AcpiTable for Srat {
    const SIGNATURE: Signature = Signature::SRAT;
    fn header(&self) -> &SdtHeader {
        &self.header
    }
}

/// Walks the SRAT's records (the bytes of the whole table, header included): CPU affinity
/// (types 0 and 2) and memory affinity (type 1), enabled entries only. Stops at a malformed
/// record.
pub fn parse_srat(table: &[u8], cpus: &mut Vec<(u32, u32)>, memory: &mut Vec<MemoryAffinity>) {
    let u32_at = |r: &[u8], at: usize| u32::from_le_bytes(r[at..at + 4].try_into().unwrap());
    let u64_at = |r: &[u8], at: usize| u64::from_le_bytes(r[at..at + 8].try_into().unwrap());
    let mut rest = table.get(48..).unwrap_or(&[]);
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], rest[1] as usize);
        if len < 2 || len > rest.len() {
            break;
        }
        let record = &rest[..len];
        match (kind, len) {
            (0, 16..) if u32_at(record, 4) & 1 != 0 => {
                let domain = u32::from(record[2])
                    | (u32::from(record[9]) << 8)
                    | (u32::from(record[10]) << 16)
                    | (u32::from(record[11]) << 24);
                cpus.push((u32::from(record[3]), domain));
            }
            (1, 40..) if u32_at(record, 28) & 1 != 0 => {
                let start = u64_at(record, 8);
                memory.push(MemoryAffinity {
                    start,
                    end: start + u64_at(record, 16),
                    node: u32_at(record, 2),
                });
            }
            (2, 24..) if u32_at(record, 12) & 1 != 0 => {
                cpus.push((u32_at(record, 8), u32_at(record, 4)))
            }
            _ => {}
        }
        rest = &rest[len..];
    }
}

/// Maps ACPI tables through the physical-memory mapping.
#[derive(Clone, Copy)]
struct PhysMap;

impl AcpiHandler for PhysMap {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = crate::memory::phys_to_virt(PhysAddr::new(physical_address as u64));
        let ptr = NonNull::new(virt.as_mut_ptr::<T>()).expect("the physical map is not at 0");
        // SAFETY: all physical memory is mapped at `virt` for the kernel's life, so the region
        // stays valid as long as the mapping object; `size` bytes are mapped.
        unsafe { PhysicalMapping::new(physical_address, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

#[crate::ktest]
fn srat_records_are_parsed() {
    let mut table = alloc::vec![0u8; 48];
    // CPU affinity: APIC id 3 in domain 1, enabled.
    table.extend_from_slice(&[0, 16, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Disabled CPU entry: ignored.
    table.extend_from_slice(&[0, 16, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Memory affinity: 1 MiB at 256 MiB in domain 1, enabled.
    let mut mem = [0u8; 40];
    mem[0] = 1;
    mem[1] = 40;
    mem[2] = 1;
    mem[8..16].copy_from_slice(&(256u64 << 20).to_le_bytes());
    mem[16..24].copy_from_slice(&(1u64 << 20).to_le_bytes());
    mem[28] = 1;
    table.extend_from_slice(&mem);
    // A truncated record ends the walk.
    table.extend_from_slice(&[1, 40, 0]);
    let (mut cpus, mut memory) = (Vec::new(), Vec::new());
    parse_srat(&table, &mut cpus, &mut memory);
    assert_eq!(cpus, [(3, 1)]);
    assert_eq!(
        memory,
        [MemoryAffinity {
            start: 256 << 20,
            end: 257 << 20,
            node: 1
        }]
    );
}
