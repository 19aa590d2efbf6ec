//! What the bootloader hands over: its configuration and the boot information.

use bootloader_api::BootInfo;
use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::info::MemoryRegionKind;
use spin::Once;

use crate::memory::layout::{BOOTLOADER_DYNAMIC, KERNEL_IMAGE};

/// The bootloader's configuration, which the kernel binary embeds in its ELF with
/// `entry_point!`.
///
/// The kernel runs at [`KERNEL_IMAGE`]`.start`, in the top 2 GiB. The normal build links it
/// there, as a static (not position-independent) executable with the kernel code model, as
/// Linux is built: `.cargo/config.toml` gives the target those flags and `kernel/build.rs` the
/// image base. The bootloader loads such an executable at its link addresses and refuses any
/// other placement, so `kernel_base` must then be left dynamic. `position_independent`: the
/// kernel was built position-independent instead (a `RUSTFLAGS` in the environment replaces
/// the config's flags), and the bootloader moves it to the same address.
pub const fn bootloader_config(position_independent: bool) -> BootloaderConfig {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.kernel_base = if position_independent {
        Mapping::FixedAddress(KERNEL_IMAGE.start)
    } else {
        Mapping::Dynamic
    };
    config.mappings.dynamic_range_start = Some(BOOTLOADER_DYNAMIC.start);
    config.mappings.dynamic_range_end = Some(BOOTLOADER_DYNAMIC.end - 1);
    config.kernel_stack_size = BOOT_STACK_SIZE;
    config
}

/// The boot CPU's stack, which the bootloader maps (whole) and the kernel starts on.
const BOOT_STACK_SIZE: u64 = 256 * 1024;

static BOOT_INFO: Once<&'static BootInfo> = Once::new();

/// The top of the boot CPU's stack (0 until [`init`]).
static BOOT_STACK_TOP: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The boot CPU's stack, `[bottom, top)`, as far as a backtrace may walk it (`None` before
/// [`init`]). The bootloader maps `kernel_stack_size` bytes from a page boundary and starts the
/// kernel at their top, so the top is the first page boundary above any address of the first
/// page of frames; one page less than the whole is given, in case [`init`] ran deeper.
pub(crate) fn boot_stack() -> Option<(u64, u64)> {
    let top = BOOT_STACK_TOP.load(core::sync::atomic::Ordering::Acquire);
    (top != 0).then(|| (top - BOOT_STACK_SIZE + 4096, top))
}

/// Keeps the boot information for the rest of the kernel's life, after checking that the
/// kernel runs where the address map says ([`KERNEL_IMAGE`]): a kernel linked elsewhere
/// would be loaded elsewhere, and code that reaches the kernel with 32-bit sign-extended
/// addresses (the kernel code model, modules built with `-mcmodel=kernel`) would break.
pub(crate) fn init(boot_info: &'static BootInfo) {
    let here = init as *const () as u64;
    assert!(
        KERNEL_IMAGE.contains(here),
        "the kernel runs at {here:#x}, outside its image range {:#x}..{:#x}: build it with \
         the flags of .cargo/config.toml (and kernel/build.rs), or position-independent",
        KERNEL_IMAGE.start,
        KERNEL_IMAGE.end
    );
    BOOT_INFO.call_once(|| boot_info);
    // A few frames below the boot stack's top (`_start`, the kernel's main, `kcore::init`).
    let here = 0u8;
    let top = (core::ptr::from_ref(&here) as u64).next_multiple_of(4096);
    let _ = BOOT_STACK_TOP.compare_exchange(
        0,
        top,
        core::sync::atomic::Ordering::AcqRel,
        core::sync::atomic::Ordering::Acquire,
    );
}

/// The boot information. Panics if called before [`init`].
pub fn info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot::init has not run")
}

/// The ramdisk the bootloader loaded (the initramfs), empty if there is none. Panics if called
/// before [`init`].
pub fn ramdisk() -> &'static [u8] {
    let info = info();
    match info.ramdisk_addr.into_option() {
        // SAFETY: the bootloader mapped `ramdisk_len` bytes of ramdisk at `addr`, read-only
        // for the kernel's whole life, and nothing writes them.
        Some(addr) => unsafe {
            core::slice::from_raw_parts(addr as *const u8, info.ramdisk_len as usize)
        },
        None => &[],
    }
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
