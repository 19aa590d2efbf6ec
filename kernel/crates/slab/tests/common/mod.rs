//! Helpers shared by the integration tests.
#![allow(dead_code)]

use slab::host::{CpuRegistration, HostConfig, HostPlatform};
use slab::{KmemCacheArgs, SlabAllocator, SlabFlags};

/// A platform, the current thread registered as CPU 0 (creating caches needs a CPU, as at
/// boot), and an allocator.
pub fn setup(
    cpus: usize,
    nodes: usize,
) -> (HostPlatform, CpuRegistration, SlabAllocator<HostPlatform>) {
    let p = HostPlatform::new(HostConfig {
        cpus,
        nodes,
        pages_per_node: 4096,
    });
    let reg = p.register_cpu();
    let a = SlabAllocator::new(p.clone()).expect("allocator");
    (p, reg, a)
}

pub fn args() -> KmemCacheArgs {
    KmemCacheArgs::default()
}

pub fn no_merge() -> SlabFlags {
    SlabFlags::SLAB_NO_MERGE
}

/// A platform, its CPU 0 and an allocator booted with `options` (the kernel's boot options).
pub fn with_options(
    options: slab::SlabOptions,
) -> (HostPlatform, CpuRegistration, SlabAllocator<HostPlatform>) {
    let platform = HostPlatform::new(HostConfig::default());
    let cpu = platform.register_cpu();
    let a = SlabAllocator::with_options(platform.clone(), options).unwrap();
    (platform, cpu, a)
}

/// A platform, its CPU 0 and an allocator booted with `slub_debug` set to `debug`.
pub fn slub_debug(
    debug: SlabFlags,
) -> (HostPlatform, CpuRegistration, SlabAllocator<HostPlatform>) {
    with_options(slab::SlabOptions {
        debug,
        ..Default::default()
    })
}
