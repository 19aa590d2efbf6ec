//! What the bootloader hands over: its configuration and the boot information.

use bootloader_api::BootInfo;
use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::info::MemoryRegionKind;
use spin::Once;

/// Where the kernel image is mapped: the top 2 GiB of the address space, where code built with
/// the kernel code model (such as loadable modules) can reach it with 32-bit displacements.
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// Where the bootloader may place its own mappings (physical memory, boot info, stack, ramdisk).
/// Everything above, up to [`KERNEL_BASE`], is the kernel's to lay out (heap, ...).
const DYNAMIC_RANGE: (u64, u64) = (0xffff_8000_0000_0000, 0xffff_bfff_ffff_ffff);

/// The bootloader's configuration, embedded in the kernel ELF by `entry_point!`.
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.kernel_base = Mapping::FixedAddress(KERNEL_BASE);
    config.mappings.dynamic_range_start = Some(DYNAMIC_RANGE.0);
    config.mappings.dynamic_range_end = Some(DYNAMIC_RANGE.1);
    config.kernel_stack_size = 256 * 1024;
    config
};

static BOOT_INFO: Once<&'static BootInfo> = Once::new();

/// Keeps the boot information for the rest of the kernel's life.
pub fn init(boot_info: &'static BootInfo) {
    BOOT_INFO.call_once(|| boot_info);
}

/// The boot information. Panics if called before [`init`].
pub fn info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot::init has not run")
}

/// Which firmware started the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS (the bootloader reported an E820 memory map).
    Bios,
    /// UEFI (the bootloader reported UEFI memory types).
    Uefi,
}

impl core::fmt::Display for Firmware {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
        })
    }
}

/// Which firmware booted us, read off the memory map: UEFI firmware reports UEFI memory types.
pub fn firmware() -> Firmware {
    let uefi = info()
        .memory_regions
        .iter()
        .any(|r| matches!(r.kind, MemoryRegionKind::UnknownUefi(_)));
    if uefi { Firmware::Uefi } else { Firmware::Bios }
}

#[crate::ktest(uefi)]
fn booted_through_uefi() {
    assert_eq!(
        firmware(),
        Firmware::Uefi,
        "a UEFI boot must show UEFI memory types"
    );
    assert!(
        !info()
            .memory_regions
            .iter()
            .any(|r| matches!(r.kind, MemoryRegionKind::UnknownBios(_))),
        "a UEFI boot must not show E820 memory types"
    );
}
