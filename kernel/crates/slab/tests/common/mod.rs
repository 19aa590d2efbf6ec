//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use kobject::{KObject, KobjType};
use slab::host::{CpuRegistration, HostConfig, HostPlatform};
use slab::platform::Platform;
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

/// How many [`module_owner`] kobjects were released (in this test binary).
pub static OWNER_RELEASES: AtomicUsize = AtomicUsize::new(0);

/// The owner's release: counts (the owner is leaked, as a module's memory would be freed by
/// its loader after this).
unsafe fn owner_release(_: NonNull<KObject>) {
    OWNER_RELEASES.fetch_add(1, SeqCst);
}

static OWNER_TYPE: KobjType = KobjType {
    release: Some(owner_release),
    attrs: &[],
    dynamic: None,
};

/// A plain kobject standing in for a module (RFC v3 03/10), added as `/NAME`, and cache
/// arguments that make it the owner of the caches made with them.
pub fn module_owner(p: &HostPlatform, name: &str) -> (&'static KObject, KmemCacheArgs) {
    let owner: &'static KObject = Box::leak(Box::new(KObject::new()));
    // SAFETY: leaked: never moves or goes away.
    unsafe {
        p.sysfs()
            .kobject_init_and_add(NonNull::from(owner), &OWNER_TYPE, None, name)
    }
    .unwrap();
    let args = KmemCacheArgs {
        owner: Some(owner),
        ..args()
    };
    (owner, args)
}

/// Unloading with a sysfs reader in the way: the module drops its own reference on `owner`
/// while its cache (directory `dir`) still pins it; a reader holds the cache's kobject across
/// `destroy`; the owner is released (its count reaches 0, its release runs) only when the
/// reader lets go, after the cache's final release.
pub fn unload_with_a_reader(
    p: &HostPlatform,
    owner: &'static KObject,
    dir: &str,
    destroy: impl FnOnce(),
) {
    // SAFETY: the owner is leaked; this is the module's reference.
    unsafe { p.sysfs().kobject_put(NonNull::from(owner)) }.unwrap();
    assert_eq!(owner.refcount(), 1, "the cache still pins its owner");
    let sys = p.sysfs();
    let kset = p.slab_sysfs().expect("the host has sysfs").kset;
    let held = sys.kset_find_obj(kset, dir).expect("the cache's directory");
    destroy();
    assert_eq!(owner.refcount(), 1, "the cache is not released yet");
    let released = OWNER_RELEASES.load(SeqCst);
    // SAFETY: the reference taken above, the last one on the cache.
    unsafe { sys.kobject_put(held) }.unwrap();
    assert_eq!(owner.refcount(), 0, "then the owner goes");
    // (Other tests of the binary may release owners meanwhile: at least ours ran.)
    assert!(OWNER_RELEASES.load(SeqCst) > released, "its release ran");
}
