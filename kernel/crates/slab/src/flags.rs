//! Cache creation flags and arguments (`SLAB_*`, `struct kmem_cache_args`).

bitflags::bitflags! {
    /// Flags given to [`crate::SlabAllocator::kmem_cache_create`], named as in Linux.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct SlabFlags: u32 {
        /// Full consistency checks on every free: the pointer must be an object of this cache.
        const SLAB_CONSISTENCY_CHECKS = 1 << 0;
        /// Red zones around every object: 0xbb while free, 0xcc while allocated.
        const SLAB_RED_ZONE = 1 << 1;
        /// Fill freed objects with 0x6b (last byte 0xa5) and check the pattern on allocation.
        const SLAB_POISON = 1 << 2;
        /// Align objects on cache lines (reduced for small objects, as Linux does).
        const SLAB_HWCACHE_ALIGN = 1 << 3;
        /// Never merge this cache with another one.
        const SLAB_NO_MERGE = 1 << 4;
        /// Record the caller of the last allocation and free of every object.
        const SLAB_STORE_USER = 1 << 5;
        /// Panic if the cache cannot be created (instead of returning an error).
        const SLAB_PANIC = 1 << 6;
        /// Slab pages are only freed after an RCU grace period, so an object's memory keeps its
        /// type while a reader may still hold it (the free pointer must stay outside the object).
        const SLAB_TYPESAFE_BY_RCU = 1 << 7;
        /// Memory is reclaimable (merge only with caches that say the same).
        const SLAB_RECLAIM_ACCOUNT = 1 << 8;
        /// Objects are charged to a memory cgroup (merge only with caches that say the same).
        const SLAB_ACCOUNT = 1 << 9;
        /// Objects must come from DMA-able memory (merge only with caches that say the same).
        const SLAB_CACHE_DMA = 1 << 10;
        /// A kmalloc size-class cache (set by the allocator itself, as Linux's `SLAB_KMALLOC`).
        /// With `SLAB_STORE_USER` each object also records the size asked of `kmalloc`, and with
        /// `SLAB_RED_ZONE` the bytes between that size and the class size are red-zoned too.
        const SLAB_KMALLOC = 1 << 11;
        /// Every free checks, from the page owner, that the object is an object of this cache
        /// at an object boundary, and drops (and reports) a free that is not (set by the
        /// allocator itself on every cache unless [`crate::SlabOptions::nohardened`]; Linux's
        /// `cache_from_obj` with `CONFIG_SLAB_FREELIST_HARDENED`, plus the boundary). The fast
        /// path does it in a few instructions (`KmemCache::free_caller`).
        const SLAB_HARDENED_FREE = 1 << 12;
        /// The cache's structure has static storage, set up in place by
        /// [`crate::SlabAllocator::kmem_cache_setup`] (the RFC's `SLAB_PREALLOCATED`): it is
        /// never freed, never an alias of another cache, and named by its own name in sysfs.
        const SLAB_PREALLOCATED = 1 << 13;
    }
}

impl SlabFlags {
    /// The debugging flags: a cache with any of them has no sheaves and checks every operation.
    pub const SLAB_DEBUG_FLAGS: Self = Self::SLAB_CONSISTENCY_CHECKS
        .union(Self::SLAB_RED_ZONE)
        .union(Self::SLAB_POISON)
        .union(Self::SLAB_STORE_USER);
    /// Flags that make a cache unmergeable (`SLAB_NEVER_MERGE`).
    pub const SLAB_NEVER_MERGE: Self = Self::SLAB_DEBUG_FLAGS
        .union(Self::SLAB_TYPESAFE_BY_RCU)
        .union(Self::SLAB_NO_MERGE);
    /// Flags that must be equal for two caches to merge (`SLAB_MERGE_SAME`).
    pub const SLAB_MERGE_SAME: Self = Self::SLAB_RECLAIM_ACCOUNT
        .union(Self::SLAB_CACHE_DMA)
        .union(Self::SLAB_ACCOUNT);
}

/// An object constructor (Linux's `void (*ctor)(void *)`): called once for every object when
/// its slab is created (not on every allocation), so objects come back from the cache in their
/// constructed state. Users must free objects in that state. It has the C calling convention,
/// so a C module and a Rust module can both give one.
///
/// # Safety
///
/// What the allocator guarantees when it calls a constructor: the argument points to a fresh
/// object of the cache (at least [`crate::KmemCache::object_size`] bytes, aligned as the cache
/// was asked), writable and owned by nobody else: it is not handed out yet, and no other CPU
/// sees it until the constructor returns. Its bytes are not initialised (or hold the debug
/// poison). What the constructor must not do: touch memory outside that object, keep the
/// pointer, allocate from or free to the same cache (it runs inside the cache's slow path, pinned
/// to its CPU: preemption is off), sleep, or unwind (a panic across `extern "C"` aborts).
pub type Ctor = unsafe extern "C" fn(*mut core::ffi::c_void);

/// Optional arguments of cache creation (Linux's `struct kmem_cache_args`).
#[derive(Clone, Copy, Debug, Default)]
pub struct KmemCacheArgs {
    /// Required alignment of every object (0: word alignment).
    pub align: usize,
    /// Start of the region that may be copied to/from user space (hardened usercopy).
    pub useroffset: usize,
    /// Size of that region; non-zero makes the cache unmergeable.
    pub usersize: usize,
    /// Where the free pointer lives inside a free object, for caches that would otherwise keep
    /// it outside the object (constructor, `SLAB_TYPESAFE_BY_RCU`). Must be word aligned.
    pub freeptr_offset: Option<usize>,
    /// Object constructor; makes the cache unmergeable.
    pub ctor: Option<Ctor>,
    /// Minimum sheaf capacity; raises the default and makes the cache unmergeable.
    pub sheaf_capacity: usize,
    /// For a cache a module makes, static ([`crate::SlabAllocator::kmem_cache_setup`]) or
    /// dynamic ([`crate::SlabAllocator::kmem_cache_create`]): the module's kobject, pinned (a
    /// reference taken) from creation until the cache's final release (after an asynchronous
    /// destroy too), so the module cannot be unloaded while the cache is in use (RFC v3 03/10),
    /// and listed by [`crate::SlabAllocator::caches_of`] for the loader's unload accounting.
    /// Such a cache is never merged, either way (nothing else's objects live in it, and it
    /// holds nothing of another cache's). A released owner is refused.
    pub owner: Option<&'static kobject::KObject>,
}
