//! The kernel's kobjects and `/sys` (the `kobject` crate's [`Sysfs`], one for the machine).
//!
//! The tree starts with the directories every part of the kernel hangs its kobjects under, as
//! Linux's do:
//!
//! ```text
//! /sys/
//!   kernel/        KERNEL_KSET (Linux's kernel_kobj)
//!     slab/        SLAB_KSET   (Linux's slab_kset): one directory per slab cache
//!   module/        MODULE_KSET (Linux's module_kset): one directory per loaded module
//! ```
//!
//! Everything else comes from the crate: `kobject_add` gives a kobject a directory whose files
//! are its type's attributes; `kobject_del` removes it while references may remain; the last
//! `kobject_put` runs the type's release. Misuse found on paths where no caller gets the error
//! (a parent's put from `del`, a reader's put) is logged here.

pub use kobject::{
    Attribute, DirEntry, DynAttrs, EntryRef, Errno, KObject, KSet, KobjError, KobjType, LinkTarget,
    PageBuf, ReleaseFn, Sysfs, errno,
};
use spin::Once;

/// `/sys/kernel`.
pub static KERNEL_KSET: KSet = KSet::new();
/// `/sys/kernel/slab`: the slab caches.
pub static SLAB_KSET: KSet = KSet::new();
/// `/sys/module`: the loaded modules.
pub static MODULE_KSET: KSet = KSet::new();

static SYSFS: Once<Sysfs> = Once::new();

/// The machine's `/sys`, with its top directories (made on the first call).
pub fn sysfs() -> &'static Sysfs {
    SYSFS.call_once(|| {
        let sysfs = Sysfs::with_reporter(|e| log::error!("{e}"));
        // SAFETY: the ksets are statics: they never move and are never freed.
        unsafe {
            sysfs
                .kset_register(&KERNEL_KSET, None, "kernel")
                .expect("/sys/kernel");
            sysfs
                .kset_register(&SLAB_KSET, Some(&KERNEL_KSET.kobj), "slab")
                .expect("/sys/kernel/slab");
            sysfs
                .kset_register(&MODULE_KSET, None, "module")
                .expect("/sys/module");
        }
        sysfs
    })
}
