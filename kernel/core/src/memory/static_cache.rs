//! Static slab caches in the kernel (the RFC "static kmem_cache instances for core caches"):
//! [`KmemCacheOpaque`], storage with the size and alignment of the kernel's `KmemCache`, for
//! code that declares a cache without seeing its fields, and the Linux-named ways to set one up.
//!
//! ```ignore
//! static FILES: KmemCacheOpaque = KmemCacheOpaque::new();
//! let cache = kmem_cache_setup!(FILES, FilesStruct, SlabFlags::SLAB_HWCACHE_ALIGN)?;
//! let f = cache.alloc(Gfp::KERNEL);
//! ```
//!
//! The storage starts with a non-zero byte on purpose: an all-zero static would be placed in
//! `.bss`, and the RFC puts static caches in `.data` ([`in_data_section`] checks it with the
//! linker's section symbols). C code gets the same type as `struct kmem_cache_opaque` from
//! `include/sheaf/slab-static.h`, with its size from the generated
//! `include/generated/kmem_cache_size.h`.

use core::cell::UnsafeCell;
use core::mem::{align_of, size_of};

use slab::{Ctor, KmemCache, KmemCacheArgs, KmemCacheStatic, SlabError, SlabFlags};

use super::kmalloc::{KMEM_CACHE_ALIGN, KMEM_CACHE_SIZE, KernelPlatform, slab};

/// Storage for a static cache (C's `struct kmem_cache_opaque`): exactly the kernel
/// `KmemCache`'s size and alignment (checked at compile time), set up by
/// [`KmemCacheOpaque::setup`] and friends.
#[repr(C, align(64))]
pub struct KmemCacheOpaque {
    bytes: UnsafeCell<[u8; KMEM_CACHE_SIZE]>,
}

// The build fails if the opaque type and the cache ever differ (the RFC's build-time check).
const _: () = {
    assert!(size_of::<KmemCacheOpaque>() == KMEM_CACHE_SIZE);
    assert!(align_of::<KmemCacheOpaque>() == KMEM_CACHE_ALIGN);
    assert!(size_of::<KmemCacheStatic<KernelPlatform>>() == KMEM_CACHE_SIZE);
    assert!(align_of::<KmemCacheStatic<KernelPlatform>>() == KMEM_CACHE_ALIGN);
};

// SAFETY: the bytes are written once, by the setup under the slab allocator's lock, before the
// cache can be reached; then they are a `KmemCache`, which is shared between CPUs by design.
unsafe impl Sync for KmemCacheOpaque {}

impl KmemCacheOpaque {
    /// Storage not set up yet. Not all zero, so a static of it is placed in `.data`.
    pub const fn new() -> Self {
        let mut bytes = [0; KMEM_CACHE_SIZE];
        bytes[0] = 0x5a;
        Self {
            bytes: UnsafeCell::new(bytes),
        }
    }

    /// The storage as the slab allocator's type.
    #[inline]
    fn storage(&'static self) -> &'static KmemCacheStatic<KernelPlatform> {
        // SAFETY: same size and alignment (checked above); `KmemCacheStatic` is a
        // `MaybeUninit` in an `UnsafeCell`, for which any bytes are valid, and it is `Sync`.
        unsafe { &*(self as *const Self).cast::<KmemCacheStatic<KernelPlatform>>() }
    }

    /// Sets the cache up (Linux's `kmem_cache_setup(s, name, size, align, flags, ctor)`).
    /// See [`slab::SlabAllocator::kmem_cache_setup`] for the rules.
    pub fn setup(
        &'static self,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<Ctor>,
    ) -> Result<&'static KmemCache<KernelPlatform>, SlabError> {
        self.setup_usercopy(name, size, align, flags, 0, 0, ctor)
    }

    /// Sets the cache up with a usercopy region (Linux's `kmem_cache_setup_usercopy`).
    #[allow(clippy::too_many_arguments)]
    pub fn setup_usercopy(
        &'static self,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        useroffset: usize,
        usersize: usize,
        ctor: Option<Ctor>,
    ) -> Result<&'static KmemCache<KernelPlatform>, SlabError> {
        let args = KmemCacheArgs {
            align,
            useroffset,
            usersize,
            ctor,
            ..KmemCacheArgs::default()
        };
        self.setup_args(name, size, args, flags)
    }

    /// Sets the cache up with every argument (the one real constructor, with
    /// `KmemCacheArgs::owner` for a module's cache).
    pub fn setup_args(
        &'static self,
        name: &str,
        size: usize,
        args: KmemCacheArgs,
        flags: SlabFlags,
    ) -> Result<&'static KmemCache<KernelPlatform>, SlabError> {
        slab().kmem_cache_setup(self.storage(), name, size, args, flags)
    }

    /// The cache (Linux's `to_kmem_cache`): a constant address, no load.
    ///
    /// # Safety
    /// A setup of this storage returned `Ok` before (it happened before this call), and, for
    /// a module's cache, the cache was not destroyed since.
    #[inline]
    pub unsafe fn to_kmem_cache(&'static self) -> &'static KmemCache<KernelPlatform> {
        // SAFETY: set up (caller contract).
        unsafe { self.storage().get() }
    }

    /// Is the storage in the kernel's `.data` section (see [`in_data_section`])?
    pub fn in_data(&'static self) -> bool {
        in_data_section(self as *const Self as usize)
    }
}

impl Default for KmemCacheOpaque {
    fn default() -> Self {
        Self::new()
    }
}

unsafe extern "C" {
    /// The end of `.text` (the linker's `_etext`).
    static _etext: u8;
    /// The end of `.data` (the linker's `_edata`).
    static _edata: u8;
    /// The start of `.bss` (the linker's `__bss_start`).
    static __bss_start: u8;
}

/// Is `addr` in the kernel's initialised writable data (after `.text` and before `_edata`,
/// not in `.bss`), by the linker's own section symbols?
pub fn in_data_section(addr: usize) -> bool {
    // Only the symbols' addresses are taken (no read), which needs no `unsafe`.
    let (etext, edata, bss) = (
        &raw const _etext as usize,
        &raw const _edata as usize,
        &raw const __bss_start as usize,
    );
    etext <= addr && addr < edata && addr < bss
}

/// The size of a field, from a closure naming it (`|x: &T| &x.field`), for
/// [`kmem_cache_setup_usercopy!`](crate::kmem_cache_setup_usercopy).
pub const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Sets up a static cache for objects of a type (Linux's `KMEM_CACHE_SETUP(s, __struct,
/// flags)`): named after the type, sized and aligned for it.
#[macro_export]
macro_rules! kmem_cache_setup {
    ($storage:expr, $ty:ty, $flags:expr) => {
        $storage.setup(
            stringify!($ty),
            ::core::mem::size_of::<$ty>(),
            ::core::mem::align_of::<$ty>(),
            $flags,
            None,
        )
    };
}

/// Like [`kmem_cache_setup!`], with the field of the type that may be copied to or from user
/// space as the usercopy region (Linux's `KMEM_CACHE_SETUP_USERCOPY(s, __struct, flags,
/// __field)`).
#[macro_export]
macro_rules! kmem_cache_setup_usercopy {
    ($storage:expr, $ty:ty, $flags:expr, $field:ident) => {
        $storage.setup_usercopy(
            stringify!($ty),
            ::core::mem::size_of::<$ty>(),
            ::core::mem::align_of::<$ty>(),
            $flags,
            ::core::mem::offset_of!($ty, $field),
            $crate::memory::static_cache::field_size(|x: &$ty| &x.$field),
            None,
        )
    };
}
