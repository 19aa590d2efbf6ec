//! The kernel's exports, declared exactly as `include/sheaf/module.h` declares them.

use core::ffi::{c_char, c_int, c_uint, c_void};

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

/// `gfp_t`.
pub type GfpT = c_uint;
/// `GFP_KERNEL`.
pub const GFP_KERNEL: GfpT = 0x01;
/// `GFP_ATOMIC`.
pub const GFP_ATOMIC: GfpT = 0x02;
/// `__GFP_ZERO`.
pub const __GFP_ZERO: GfpT = 0x04;
/// `slab_flags_t`.
pub type SlabFlagsT = c_uint;
/// `SLAB_HWCACHE_ALIGN`.
pub const SLAB_HWCACHE_ALIGN: SlabFlagsT = 1 << 3;

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
