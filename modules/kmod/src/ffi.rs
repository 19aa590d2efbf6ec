//! The kernel's exports, declared exactly as `include/sheaf/module.h` declares them.

use core::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

/// `struct module`: opaque; a module names its own as [`__this_module`].
#[repr(C)]
pub struct Module {
    _opaque: [u8; 0],
}

/// `struct kmem_cache`: opaque.
#[repr(C)]
pub struct KmemCache {
    _opaque: [u8; 0],
}

/// `KMEM_CACHE_SIZE` (`include/generated/kmem_cache_size.h`): the kernel's `struct
/// kmem_cache` size (a `modbuild` test checks the two agree).
pub const KMEM_CACHE_SIZE: usize = 5504;
/// `KMEM_CACHE_ALIGN`.
pub const KMEM_CACHE_ALIGN: usize = 64;

/// `struct kmem_cache_opaque`: storage for a static cache, the size and alignment of the
/// kernel's `struct kmem_cache`.
#[repr(C, align(64))]
pub struct KmemCacheOpaque {
    _opaque: core::cell::UnsafeCell<[u8; KMEM_CACHE_SIZE]>,
}

// SAFETY: the kernel owns the bytes once the cache is set up; the module only passes the
// address.
unsafe impl Sync for KmemCacheOpaque {}

impl KmemCacheOpaque {
    /// Storage not yet set up.
    pub const fn new() -> Self {
        Self {
            _opaque: core::cell::UnsafeCell::new([0; KMEM_CACHE_SIZE]),
        }
    }
}

impl Default for KmemCacheOpaque {
    fn default() -> Self {
        Self::new()
    }
}

/// `gfp_t`.
pub type GfpT = c_uint;
/// `GFP_KERNEL`.
pub const GFP_KERNEL: GfpT = 0x01;
/// `GFP_ATOMIC`.
pub const GFP_ATOMIC: GfpT = 0x02;
/// `__GFP_ZERO`.
pub const __GFP_ZERO: GfpT = 0x04;
/// `__GFP_NOWARN`.
pub const __GFP_NOWARN: GfpT = 0x08;
/// `GFP_NOWAIT`.
pub const GFP_NOWAIT: GfpT = 0x10;
/// `slab_flags_t`.
pub type SlabFlagsT = c_uint;
/// `SLAB_CONSISTENCY_CHECKS`.
pub const SLAB_CONSISTENCY_CHECKS: SlabFlagsT = 1 << 0;
/// `SLAB_RED_ZONE`.
pub const SLAB_RED_ZONE: SlabFlagsT = 1 << 1;
/// `SLAB_POISON`.
pub const SLAB_POISON: SlabFlagsT = 1 << 2;
/// `SLAB_HWCACHE_ALIGN`.
pub const SLAB_HWCACHE_ALIGN: SlabFlagsT = 1 << 3;
/// `SLAB_NO_MERGE`.
pub const SLAB_NO_MERGE: SlabFlagsT = 1 << 4;
/// `SLAB_STORE_USER`.
pub const SLAB_STORE_USER: SlabFlagsT = 1 << 5;
/// `SLAB_ACCOUNT`.
pub const SLAB_ACCOUNT: SlabFlagsT = 1 << 9;

/// `struct rcu_head` (`include/generated/module_abi.h`: 24 bytes, aligned to 8).
#[repr(C, align(8))]
pub struct RcuHead {
    _opaque: [u8; 24],
}

/// `rcu_callback_t`.
pub type RcuCallback = unsafe extern "C" fn(*mut RcuHead);

/// `struct work_struct`: the function and a reserved word (`INIT_WORK` sets them).
#[repr(C)]
pub struct WorkStruct {
    /// `func`.
    pub func: Option<WorkFunc>,
    /// `__reserved`: 0.
    pub reserved: core::ffi::c_ulong,
}

/// `struct delayed_work`.
#[repr(C)]
pub struct DelayedWork {
    /// `work`.
    pub work: WorkStruct,
}

/// `work_func_t`.
pub type WorkFunc = unsafe extern "C" fn(*mut WorkStruct);

/// `struct workqueue_struct`: opaque.
#[repr(C)]
pub struct WorkqueueStruct {
    _opaque: [u8; 0],
}

/// `struct kmem_free_q_head` (24 bytes, aligned to 8; all zero bytes is an empty queue).
#[repr(C, align(8))]
pub struct KmemFreeQHead {
    _opaque: [u8; 24],
}

/// `WQ_UNBOUND`.
pub const WQ_UNBOUND: c_uint = 1 << 1;
/// `WQ_HIGHPRI`.
pub const WQ_HIGHPRI: c_uint = 1 << 4;
/// `HZ`.
pub const HZ: u64 = 100;

unsafe extern "C" {
    /// This module's handle; the loader resolves it (C's `THIS_MODULE` is its address).
    pub static __this_module: Module;

    /// `int printk(const char *fmt, ...)`.
    pub fn printk(fmt: *const c_char, ...) -> c_int;
    /// `void *kmalloc(size_t size, gfp_t flags)`.
    pub fn kmalloc(size: usize, flags: GfpT) -> *mut c_void;
    /// `void *kzalloc(size_t size, gfp_t flags)`.
    pub fn kzalloc(size: usize, flags: GfpT) -> *mut c_void;
    /// `void kfree(const void *objp)`.
    pub fn kfree(objp: *const c_void);
    /// `struct kmem_cache *kmem_cache_create(name, size, align, flags, ctor)`.
    pub fn kmem_cache_create(
        name: *const c_char,
        size: c_uint,
        align: c_uint,
        flags: SlabFlagsT,
        ctor: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> *mut KmemCache;
    /// `void *kmem_cache_alloc(struct kmem_cache *s, gfp_t flags)`.
    pub fn kmem_cache_alloc(s: *mut KmemCache, flags: GfpT) -> *mut c_void;
    /// `void kmem_cache_free(struct kmem_cache *s, void *objp)`.
    pub fn kmem_cache_free(s: *mut KmemCache, objp: *mut c_void);
    /// `void kmem_cache_destroy(struct kmem_cache *s)`.
    pub fn kmem_cache_destroy(s: *mut KmemCache);
    /// `void *kcalloc(size_t n, size_t size, gfp_t flags)`.
    pub fn kcalloc(n: usize, size: usize, flags: GfpT) -> *mut c_void;
    /// `void *kmalloc_array(size_t n, size_t size, gfp_t flags)`.
    pub fn kmalloc_array(n: usize, size: usize, flags: GfpT) -> *mut c_void;
    /// `void *krealloc(const void *objp, size_t new_size, gfp_t flags)`.
    pub fn krealloc(objp: *const c_void, new_size: usize, flags: GfpT) -> *mut c_void;
    /// `size_t ksize(const void *objp)`.
    pub fn ksize(objp: *const c_void) -> usize;
    /// `struct kmem_cache *kmem_cache_create_usercopy(name, size, align, flags, useroffset,
    /// usersize, ctor)`.
    pub fn kmem_cache_create_usercopy(
        name: *const c_char,
        size: c_uint,
        align: c_uint,
        flags: SlabFlagsT,
        useroffset: c_uint,
        usersize: c_uint,
        ctor: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> *mut KmemCache;
    /// `void *kmem_cache_zalloc(struct kmem_cache *s, gfp_t flags)`.
    pub fn kmem_cache_zalloc(s: *mut KmemCache, flags: GfpT) -> *mut c_void;
    /// `int kmem_cache_shrink(struct kmem_cache *s)`.
    pub fn kmem_cache_shrink(s: *mut KmemCache) -> c_int;
    /// `int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t flags, size_t size, void **p)`.
    pub fn kmem_cache_alloc_bulk(
        s: *mut KmemCache,
        flags: GfpT,
        size: usize,
        p: *mut *mut c_void,
    ) -> c_int;
    /// `void kmem_cache_free_bulk(struct kmem_cache *s, size_t size, void **p)`.
    pub fn kmem_cache_free_bulk(s: *mut KmemCache, size: usize, p: *mut *mut c_void);
    /// `unsigned int kmem_cache_size(struct kmem_cache *s)`.
    pub fn kmem_cache_size(s: *mut KmemCache) -> c_uint;
    /// `unsigned long slab_errors(void)`.
    pub fn slab_errors() -> c_ulong;
    /// `struct kmem_cache *kmem_cache_setup(cache, name, size, align, flags, ctor, owner)`:
    /// a static cache in the module's own storage ([`KmemCacheOpaque`]), owned by `owner`.
    pub fn kmem_cache_setup(
        cache: *mut KmemCacheOpaque,
        name: *const c_char,
        size: c_uint,
        align: c_uint,
        flags: SlabFlagsT,
        ctor: Option<unsafe extern "C" fn(*mut c_void)>,
        owner: *const Module,
    ) -> *mut KmemCache;
    /// `kmem_cache_setup` with a usercopy region.
    #[allow(clippy::too_many_arguments)]
    pub fn kmem_cache_setup_usercopy(
        cache: *mut KmemCacheOpaque,
        name: *const c_char,
        size: c_uint,
        align: c_uint,
        flags: SlabFlagsT,
        useroffset: c_uint,
        usersize: c_uint,
        ctor: Option<unsafe extern "C" fn(*mut c_void)>,
        owner: *const Module,
    ) -> *mut KmemCache;
    /// `bool try_module_get(struct module *module)`.
    pub fn try_module_get(module: *const Module) -> bool;
    /// `void module_put(struct module *module)`.
    pub fn module_put(module: *const Module);

    /// `void call_rcu(struct rcu_head *head, rcu_callback_t func)`.
    pub fn call_rcu(head: *mut RcuHead, func: Option<RcuCallback>);
    /// `void synchronize_rcu(void)`.
    pub fn synchronize_rcu();
    /// `void rcu_barrier(void)`.
    pub fn rcu_barrier();
    /// `void rcu_read_lock(void)`.
    pub fn rcu_read_lock();
    /// `void rcu_read_unlock(void)`.
    pub fn rcu_read_unlock();
    /// `void kvfree_call_rcu(struct rcu_head *head, void *ptr)`.
    pub fn kvfree_call_rcu(head: *mut RcuHead, ptr: *mut c_void);
    /// `void kvfree_rcu_barrier(void)`.
    pub fn kvfree_rcu_barrier();
    /// `struct workqueue_struct *system_wq`.
    pub static system_wq: *mut WorkqueueStruct;
    /// `struct workqueue_struct *system_unbound_wq`.
    pub static system_unbound_wq: *mut WorkqueueStruct;
    /// `bool schedule_work(struct work_struct *work)`.
    pub fn schedule_work(work: *mut WorkStruct) -> bool;
    /// `bool queue_work(struct workqueue_struct *wq, struct work_struct *work)`.
    pub fn queue_work(wq: *mut WorkqueueStruct, work: *mut WorkStruct) -> bool;
    /// `bool queue_work_on(int cpu, struct workqueue_struct *wq, struct work_struct *work)`.
    pub fn queue_work_on(cpu: c_int, wq: *mut WorkqueueStruct, work: *mut WorkStruct) -> bool;
    /// `bool queue_delayed_work(wq, struct delayed_work *dwork, unsigned long delay)`.
    pub fn queue_delayed_work(
        wq: *mut WorkqueueStruct,
        dwork: *mut DelayedWork,
        delay: core::ffi::c_ulong,
    ) -> bool;
    /// `bool flush_work(struct work_struct *work)`.
    pub fn flush_work(work: *mut WorkStruct) -> bool;
    /// `bool cancel_work_sync(struct work_struct *work)`.
    pub fn cancel_work_sync(work: *mut WorkStruct) -> bool;
    /// `bool cancel_delayed_work_sync(struct delayed_work *dwork)`.
    pub fn cancel_delayed_work_sync(dwork: *mut DelayedWork) -> bool;
    /// `struct workqueue_struct *alloc_workqueue(const char *fmt, unsigned int flags, int
    /// max_active, ...)`.
    pub fn alloc_workqueue(
        fmt: *const c_char,
        flags: c_uint,
        max_active: c_int,
        ...
    ) -> *mut WorkqueueStruct;
    /// `void destroy_workqueue(struct workqueue_struct *wq)`.
    pub fn destroy_workqueue(wq: *mut WorkqueueStruct);
    /// `void kmem_free_q_init(struct kmem_free_q_head *head)`.
    pub fn kmem_free_q_init(head: *mut KmemFreeQHead);
    /// `int kmem_free_q_add(struct kmem_free_q_head *head, struct kmem_cache *s, void *obj)`.
    pub fn kmem_free_q_add(head: *mut KmemFreeQHead, s: *mut KmemCache, obj: *mut c_void) -> c_int;
    /// `void kmem_free_up_q(struct kmem_free_q_head *head)`.
    pub fn kmem_free_up_q(head: *mut KmemFreeQHead);
    /// `unsigned long volatile jiffies`.
    pub static jiffies: core::ffi::c_ulong;
    /// `void msleep(unsigned int msecs)`.
    pub fn msleep(msecs: c_uint);
    /// `unsigned int smp_processor_id(void)`.
    pub fn smp_processor_id() -> c_uint;
    /// `unsigned int num_online_cpus(void)`.
    pub fn num_online_cpus() -> c_uint;
}
