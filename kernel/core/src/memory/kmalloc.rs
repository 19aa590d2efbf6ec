//! The kernel's slab allocator: Sheaf's `slab` crate on real pages and CPUs, and `kmalloc` as
//! the global allocator.
//!
//! The `slab` crate is pure logic over a [`slab::Platform`]. [`KernelPlatform`] supplies:
//! - **CPUs**: `pin()` disables local interrupts (on this kernel, with interrupts off nothing
//!   can preempt or migrate the caller) and reads the CPU number from the per-CPU area.
//! - **Pages**: the buddy page allocator, through the physical-memory map.
//! - **Page owners**: the buddy allocator's per-frame owner word, read without a lock, so that
//!   `kfree` maps any address to its cache in O(1), like Linux's `virt_to_slab()`.
//! - **Slab descriptors**: a sparse array indexed by frame number in its own virtual range,
//!   mapped on demand (Linux keeps `struct slab` in `struct page`, in the `vmemmap` array).
//!
//! After [`init`], `Box`, `Vec` and friends are served by `kmalloc`; blocks the bootstrap heap
//! gave out before still go back to it, and it serves as the emergency reserve of
//! [`with_reserve`].

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use slab::Slab;
use slab::{Gfp, SlabAllocator, SlabOptions};
use spin::Once;
use x86_64::VirtAddr;

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use slab::{CallbackFunc, CallbackHead, HeadQueue};

use super::PAGE_SIZE;
use super::layout::SLAB_META;
use super::page_alloc::OwnerMap;
use crate::sync::rcu::{RcuFunc, RcuHead, call_rcu_head};
use crate::sync::{IrqSave, IrqSpinLock};

/// Start of the sparse array of slab descriptors ([`SLAB_META`] in the address map).
const SLAB_META_START: u64 = SLAB_META.start;

/// The kernel's side of the slab allocator.
///
/// It carries where the page owner words are ([`OwnerMap`]), copied when the allocator is
/// made, after the buddy allocator is up: `kfree` then finds the owner with loads from the
/// allocator it already has at hand, plain loads the compiler folds into the arithmetic,
/// rather than three global atomics, which it loads one instruction each (and, in a
/// position-independent build, through the GOT: two).
#[derive(Clone, Copy, Debug)]
pub struct KernelPlatform {
    owners: OwnerMap,
}

impl KernelPlatform {
    /// The platform, with the page owners' map as it stands (see [`OwnerMap::current`]).
    fn new() -> Self {
        Self {
            owners: OwnerMap::current(),
        }
    }
}

/// Keeps the caller on its CPU: local interrupts are off while it lives. `usable`: whether
/// the CPU's sheaves were free when it was taken (no slab fast path held them).
pub struct Pinned {
    _irq: IrqSave,
    usable: bool,
}

/// A slab fast path's hold on its CPU's sheaves (the per-CPU trylock of
/// [`crate::cpu::slab_fast_path_enter`]), with what to put back; interrupts stay on.
pub struct FastPinned {
    slot: usize,
    /// A hold is the CPU's: not `Send`.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Drop for FastPinned {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: `pin_fast` made this guard with what `slab_fast_path_enter` returned, and
        // nothing else can make one (private fields). The guard is not `Send`, and while the
        // slot is taken the thread is neither preempted nor allowed to sleep (`schedule`
        // asserts `preemptible`), so it drops on the CPU and in the context that took the slot,
        // once; a nested hold got 0 and puts 0 back.
        unsafe { crate::cpu::slab_fast_path_exit(self.slot) };
    }
}

fn slab_meta_addr(pfn: usize) -> u64 {
    SLAB_META_START + (pfn * core::mem::size_of::<Slab>()) as u64
}

/// Frames mapped for slab descriptors so far (never unmapped: one per 64 frames that ever held
/// a slab, as Linux's `struct page` array, but filled in on demand).
static SLAB_META_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// How many frames hold slab descriptors ([`SLAB_META_FRAMES`]): memory in use that no cache
/// accounts for and no shrink gives back (`meminfo`; docs/slab.md).
pub fn slab_meta_frames() -> usize {
    SLAB_META_FRAMES.load(Ordering::Relaxed)
}

/// Maps the slab-descriptor slot of frame `pfn`.
fn map_slab_meta(pfn: usize) -> bool {
    let start = slab_meta_addr(pfn);
    let end = start + core::mem::size_of::<Slab>() as u64 - 1;
    [start, end].into_iter().all(|addr| {
        match crate::memory::paging::ensure_mapped(VirtAddr::new(addr)) {
            Ok(mapped) => {
                SLAB_META_FRAMES.fetch_add(usize::from(mapped), Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    })
}

fn pfn_of(ptr: *const u8) -> Option<usize> {
    crate::memory::virt_to_phys(VirtAddr::from_ptr(ptr))
        .map(|p| (p.as_u64() / PAGE_SIZE as u64) as usize)
}

// SAFETY: `pin` returns the current CPU's id with interrupts off, so nothing else runs on that
// CPU until the guard drops (and ids are below `nr_cpus`, the CPUs ACPI reports), and says the
// sheaves are usable only if no slab fast path holds them; `pin_fast` returns the CPU's slot
// only to the context that takes it from the per-CPU word (leaving 0), which keeps the thread
// on its CPU (no preemption while taken) and gives every other context on the CPU a 0 and
// unusable sheaves until it puts the slot back; an interrupt between the load and the store
// that take it puts back what it found (see `cpu::slab_fast_path_enter`); blocks come
// from the buddy allocator, naturally aligned and exclusively owned; owners are the buddy's
// per-frame owner words (0 for anything outside RAM); each slab descriptor slot belongs to the
// frame whose number indexes it; a head given to `call_rcu_head` runs once, after a grace
// period (the core's RCU), and `rcu_barrier` waits for all of them; a head given to
// `queue_work_head` runs once, from the services' slab work item.
unsafe impl slab::Platform for KernelPlatform {
    type Guard = Pinned;
    type FastGuard = FastPinned;

    fn nr_cpus(&self) -> usize {
        crate::arch::acpi::platform()
            .cpus
            .len()
            .clamp(1, crate::cpu::MAX_CPUS)
    }

    fn nr_nodes(&self) -> usize {
        crate::memory::numa::node_count()
    }

    fn cpu_to_node(&self, cpu: usize) -> usize {
        crate::memory::numa::cpu_to_node(cpu)
    }

    #[inline]
    fn pin(&self) -> (Pinned, usize) {
        let irq = IrqSave::new();
        // With interrupts off the count cannot change under us: a hold now is a fast path
        // this context interrupted, or the one whose slow path this is.
        let usable = !crate::cpu::slab_fast_path_held();
        (Pinned { _irq: irq, usable }, crate::cpu::current_id())
    }

    #[inline(always)]
    fn pin_fast(&self) -> (FastPinned, usize) {
        let slot = crate::cpu::slab_fast_path_enter();
        let guard = FastPinned {
            slot,
            _not_send: core::marker::PhantomData,
        };
        (guard, slot)
    }

    #[inline(always)]
    fn sheaves_usable(&self, guard: &Pinned) -> bool {
        guard.usable
    }

    fn alloc_pages(&self, order: u32, node: usize, _gfp: Gfp) -> Option<NonNull<u8>> {
        let block = crate::memory::page_alloc::alloc_pages(order as usize, Some(node)).ok()?;
        let pfn = (block.as_u64() / PAGE_SIZE as u64) as usize;
        if !map_slab_meta(pfn) {
            // SAFETY: just allocated, never used.
            let _ = unsafe { crate::memory::page_alloc::free_pages(block, order as usize) };
            return None;
        }
        NonNull::new(crate::memory::phys_to_virt(block).as_mut_ptr())
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, order: u32) {
        let Some(phys) = crate::memory::virt_to_phys(VirtAddr::from_ptr(ptr.as_ptr())) else {
            crate::backtrace::warn(format_args!(
                "slab: free_pages({:p}) outside the physical map",
                ptr
            ));
            return;
        };
        // SAFETY: the slab allocator gives back a block it got from `alloc_pages`.
        if let Err(err) = unsafe { crate::memory::page_alloc::free_pages(phys, order as usize) } {
            crate::backtrace::warn(format_args!("slab: free_pages({:p}, {order}): {err}", ptr));
        }
    }

    unsafe fn free_pages_rcu(&self, ptr: NonNull<u8>, order: u32) {
        // The pages of a SLAB_TYPESAFE_BY_RCU slab: a reader may still look at an object in
        // them, so they become free memory only after a grace period. The head waits in the
        // slab's descriptor slot, as Linux's `rcu_head` in `struct slab`: nothing is allocated.
        let record = self.slab_meta(ptr).cast::<PagesRcu>();
        let r = record.as_ptr();
        // SAFETY: the slot belongs to the block, which the slab allocator has given up with its
        // descriptor (`free_pages_rcu`'s contract); it is mapped, big and aligned enough
        // (`PagesRcu`'s checks) and stays so until the block is freed, by the callback. The head
        // is projected from the record's pointer, so the callback can step back to it.
        unsafe {
            r.write(PagesRcu {
                head: RcuHead::new(),
                block: ptr,
                order,
            });
            call_rcu_head(
                NonNull::new_unchecked(&raw mut (*r).head),
                free_pages_rcu_callback,
            );
        }
    }

    fn page_node(&self, addr: usize) -> usize {
        crate::memory::virt_to_phys(VirtAddr::new(addr as u64))
            .map_or(0, crate::memory::numa::page_to_nid)
    }

    unsafe fn set_page_owner(&self, ptr: NonNull<u8>, order: u32, owner: usize) {
        let Some(phys) = crate::memory::virt_to_phys(VirtAddr::from_ptr(ptr.as_ptr())) else {
            log::error!("slab: set_page_owner({:p}) outside the physical map", ptr);
            return;
        };
        // SAFETY: the slab allocator owns the block (from `alloc_pages`) and names its own
        // descriptor or 0 (`set_page_owner`'s contract).
        let result = unsafe { crate::memory::page_alloc::set_owner(phys, order as usize, owner) };
        if let Err(err) = result {
            log::error!("slab: set_page_owner({:p}): {err}", ptr);
        }
    }

    #[inline]
    fn page_owner(&self, addr: usize) -> usize {
        // On every `kfree`: the frame number through the physical map, then one bounds check
        // of the buddy allocator's array.
        self.owners.owner(addr)
    }

    fn slab_meta(&self, page: NonNull<u8>) -> NonNull<Slab> {
        let pfn = pfn_of(page.as_ptr()).expect("slabs live in the physical map");
        // Mapped by `alloc_pages` when the block was allocated.
        NonNull::new(slab_meta_addr(pfn) as *mut Slab).expect("non-null")
    }

    fn random_seed(&self) -> u64 {
        // The TSC at this moment: good enough to make free pointers unpredictable per boot.
        crate::time::rdtsc().rotate_left(17) ^ 0x5eaf_5eaf_5eaf_5eaf
    }

    unsafe fn call_rcu_head(&self, head: NonNull<RcuHead>, func: RcuFunc) {
        // SAFETY: forwarded contract (the core's RCU never allocates).
        unsafe { call_rcu_head(head, func) };
    }

    fn rcu_barrier(&self) {
        crate::sync::rcu::rcu_barrier();
    }

    fn synchronize_rcu_if_sleepable(&self) -> bool {
        if !crate::sync::rcu::may_sleep() {
            return false;
        }
        crate::sync::rcu::synchronize_rcu_polling();
        true
    }

    unsafe fn queue_work_head(&self, head: NonNull<CallbackHead>, func: CallbackFunc) {
        // SAFETY: forwarded contract.
        unsafe { queue_slab_work(head, func) };
    }

    fn slab_sysfs(&self) -> Option<slab::sysfs::SlabSysfs<'_>> {
        SYSFS_READY
            .load(Ordering::Acquire)
            .then(|| slab::sysfs::SlabSysfs {
                sysfs: crate::kobject::sysfs(),
                kset: &crate::kobject::SLAB_KSET,
            })
    }

    fn on_each_cpu(&self, f: &(dyn Fn() + Sync)) -> bool {
        crate::sched::run_on_each_cpu("slab-flush", f).is_ok()
    }

    fn slab_error(&self, report: &slab::SlabReport) {
        SLAB_ERRORS.fetch_add(1, Ordering::Relaxed);
        log::error!("slab: {report}");
        if let Some([alloc, free]) = &report.tracks {
            let now = crate::time::jiffies();
            let mut out = crate::console::Writer;
            let _ = super::track::print(&mut out, "Allocated", alloc, now);
            let _ = super::track::print(&mut out, "Freed", free, now);
        }
        crate::backtrace::dump_stack();
    }

    fn fill_track(&self, track: &mut slab::Track) {
        super::track::fill(track);
    }

    fn jiffies(&self) -> u64 {
        crate::time::jiffies()
    }

    fn stack_frames(&self, handle: u32, f: &mut dyn FnMut(usize)) {
        super::track::stack_frames(handle, f);
    }

    fn write_symbol(&self, out: &mut dyn core::fmt::Write, addr: usize) -> core::fmt::Result {
        super::track::write_symbol(out, addr)
    }

    fn is_kernel_rodata(&self, ptr: *const u8, len: usize) -> bool {
        in_kernel_rodata(ptr, len)
    }
}

unsafe extern "C" {
    /// The image's first byte, its ELF header (the linker's `__ehdr_start`): the first load
    /// segment, read-only, holds it, then `.rodata` and `.eh_frame`; `.text` follows.
    static __ehdr_start: u8;
    /// The end of `.text` (the linker's `_etext`).
    static _etext: u8;
}

/// Are the `len` bytes at `ptr` in the kernel image's read-only part (the ELF header,
/// `.rodata`, `.eh_frame` and `.text`: from `__ehdr_start` to `_etext`, the first two load
/// segments of `readelf -lW`, never written and never unmapped)? What the slab platform's
/// `is_kernel_rodata` answers, so that a cache named by a literal of the kernel keeps the
/// literal (`kstrdup_const`) and any other name, a module's included, is copied. Wider than
/// Linux's `__start_rodata..__end_rodata` (code is included), and as safe: both live for
/// ever, unchanged.
pub fn in_kernel_rodata(ptr: *const u8, len: usize) -> bool {
    // Only the symbols' addresses are taken (no read), which needs no `unsafe`.
    let (start, etext) = (&raw const __ehdr_start as usize, &raw const _etext as usize);
    let addr = ptr as usize;
    addr.checked_add(len)
        .is_some_and(|end| start <= addr && end <= etext)
}

/// The pages of a `SLAB_TYPESAFE_BY_RCU` slab waiting for their grace period, written in the
/// slab's descriptor slot (which the slab allocator has given up with the block).
#[repr(C)]
struct PagesRcu {
    head: RcuHead,
    block: NonNull<u8>,
    order: u32,
}

const _: () = assert!(core::mem::size_of::<PagesRcu>() <= core::mem::size_of::<Slab>());
const _: () = assert!(core::mem::align_of::<PagesRcu>() <= core::mem::align_of::<Slab>());

/// The RCU callback of [`PagesRcu`]: frees the block.
///
/// # Safety
/// `head` was queued by `KernelPlatform::free_pages_rcu`, whose grace period is over.
unsafe fn free_pages_rcu_callback(head: NonNull<RcuHead>) {
    // SAFETY: the head is the `head` field of a `PagesRcu`, projected from the record's
    // pointer; the record lives in the block's descriptor slot, valid until the block is freed,
    // so it is read first.
    let PagesRcu { block, order, .. } = unsafe {
        slab::head::container_of::<PagesRcu>(head, core::mem::offset_of!(PagesRcu, head))
            .as_ptr()
            .read()
    };
    // SAFETY: the slab allocator gave this block up (`free_pages_rcu`'s contract), and the
    // readers that might still look at it are done.
    unsafe { slab::Platform::free_pages(slab().platform(), block, order) };
}

/// Reports passed to [`slab::Platform::slab_error`] since boot (each is also logged).
static SLAB_ERRORS: AtomicUsize = AtomicUsize::new(0);

/// Number of problems the slab allocator has reported since boot (double frees, leaked objects
/// named by a destroy, ...): what a test checks to know that nothing was reported.
pub fn slab_errors() -> usize {
    SLAB_ERRORS.load(Ordering::Relaxed)
}

static SLAB: Once<SlabAllocator<KernelPlatform>> = Once::new();

/// Set once kmalloc works, so that `/sys` (which allocates) can be built: from then on the
/// caches are shown in `/sys/kernel/slab`.
static SYSFS_READY: AtomicBool = AtomicBool::new(false);

/// The size of the kernel's `struct kmem_cache` (`KmemCache` on this platform), for code that
/// declares a cache without seeing its fields (`include/generated/kmem_cache_size.h`).
pub const KMEM_CACHE_SIZE: usize = core::mem::size_of::<slab::KmemCache<KernelPlatform>>();
/// The alignment of the kernel's `struct kmem_cache`.
pub const KMEM_CACHE_ALIGN: usize = core::mem::align_of::<slab::KmemCache<KernelPlatform>>();

/// [`KMEM_CACHE_SIZE`] and [`KMEM_CACHE_ALIGN`] in the kernel ELF, where the host reads them
/// to write `include/generated/kmem_cache_size.h` (`cargo run -- --gen-headers`; Linux
/// computes the same numbers with its asm-offsets mechanism).
#[unsafe(no_mangle)]
#[used]
pub static SHEAF_KMEM_CACHE_LAYOUT: [u64; 2] = [KMEM_CACHE_SIZE as u64, KMEM_CACHE_ALIGN as u64];

/// The slab allocator's pending work (the `async_destroy_work` of caches whose destruction
/// waits for `kfree_rcu` objects in flight): heads embedded in the caches, linked through
/// themselves, so that queueing never allocates. Taken with interrupts off.
static SLAB_WORK: IrqSpinLock<HeadQueue> = IrqSpinLock::new(HeadQueue::new());

/// `KernelPlatform::queue_work_head`: links `head` on the pending list and queues the
/// workqueues' one work item for the list (Linux's `slab_caches_to_rcu_destroy_work`,
/// [`crate::workqueue::queue_slab_work`]), which runs [`run_slab_work`]. Before the workqueues
/// are up the head waits: their start-up queues the item if the list is not empty (no cache is
/// destroyed asynchronously before then; if one were, its slabs would only be freed a little
/// later). Allocates nothing.
///
/// # Safety
/// As for [`slab::Platform::queue_work_head`].
unsafe fn queue_slab_work(head: NonNull<CallbackHead>, func: CallbackFunc) {
    {
        let mut work = SLAB_WORK.lock();
        // SAFETY: the caller hands the head over (not queued already) until `func` runs.
        unsafe {
            CallbackHead::set_func(head, func);
            work.push_back(head);
        }
    }
    // After the push's lock: either the workqueues' start-up checked the list (under the lock)
    // after this push and queues the item itself, or it took the lock before us, after making
    // the item, which this call then sees.
    crate::workqueue::queue_slab_work();
}

/// Runs every pending head of the slab allocator, oldest first, including those queued
/// meanwhile: the function of the services' work item. Process context (the heads' functions
/// sleep).
pub fn run_slab_work() {
    // The heads' functions sleep and were queued for process context: refuse anything else
    // rather than run them where their contract does not hold.
    assert!(
        !crate::cpu::in_interrupt() && crate::cpu::preemptible(),
        "run_slab_work needs process context"
    );
    loop {
        let head = SLAB_WORK.lock().pop_front();
        let Some(head) = head else { return };
        // SAFETY: popped, so ours; `queue_slab_work` set its function, and its caller allowed
        // running it in process context, which a work item is.
        unsafe { CallbackHead::run(head) };
    }
}

/// Whether heads of the slab allocator wait for [`run_slab_work`] (checked by the services'
/// start-up once their hook is set, under the list's lock).
pub fn slab_work_pending() -> bool {
    !SLAB_WORK.lock().is_empty()
}

/// Creates the kmalloc caches and makes `kmalloc` the global allocator. Needs the page
/// allocator and ACPI (CPU and node counts). The options come from the boot command line
/// (the services' `kmalloc` module reads `slub_debug` and `slab_nomerge`).
pub fn init(options: SlabOptions) {
    let debug = options.debug;
    let nohardened = options.nohardened;
    let allocator = SlabAllocator::with_options(KernelPlatform::new(), options)
        .expect("memory for the kmalloc caches");
    SLAB.call_once(|| allocator);
    // The page allocator gives back what the barns park before it fails.
    super::page_alloc::RECLAIM_HOOK.set(reclaim_for_pressure);
    // `/sys` needs kmalloc, which works from here on: show the caches there (Linux's
    // `slab_sysfs_init`).
    SYSFS_READY.store(true, Ordering::Release);
    slab().sysfs_init();
    if debug.is_empty() {
        log::info!("slab allocator up: kmalloc is the global allocator");
    } else {
        log::info!("slab allocator up, debugging every cache ({debug:?})");
    }
    if nohardened {
        log::info!("slab_nohardened: frees are not checked against their page owner");
    }
}

/// The slab allocator, once [`init`] has run.
pub fn try_slab() -> Option<&'static SlabAllocator<KernelPlatform>> {
    SLAB.get()
}

/// The slab allocator (after [`init`]).
pub fn slab() -> &'static SlabAllocator<KernelPlatform> {
    SLAB.get().expect("kmalloc::init has run")
}

/// Frees `ptr`, a slab object or kmalloc'ed block with an [`RcuHead`] embedded at `head`, after
/// an RCU grace period, without allocating (Linux's `kvfree_call_rcu(head, ptr)`, what
/// `kfree_rcu(ptr, field)` expands to; see [`crate::kfree_rcu!`]). Objects of caches with
/// sheaves go through their CPU's `rcu_free` sheaf as `kfree_rcu` does; anything else (a large
/// block, a debug cache, no memory for a sheaf) is queued on its own head, and the callback
/// finds the object around the head and frees it.
///
/// # Safety
/// `ptr` starts a live object of this allocator that its owner gives up (only RCU readers may
/// still use it), and `head` lies inside that object and is used for nothing else until the
/// object is freed.
pub unsafe fn kvfree_call_rcu(head: NonNull<RcuHead>, ptr: NonNull<u8>) {
    // SAFETY: forwarded contract; on `Err` the object is still ours.
    if let Err(ptr) = unsafe { slab().kvfree_rcu_sheaf(ptr) } {
        debug_assert_eq!(slab().object_start(head.as_ptr() as usize), Some(ptr));
        // SAFETY: the head is inside the object, which nobody uses until the callback frees
        // it; `kvfree_head` finds the object from the head.
        unsafe { call_rcu_head(head, kvfree_head) };
    }
}

/// The callback of [`kvfree_call_rcu`]'s own-head path: frees the object around `head`.
///
/// # Safety
/// `head` was queued by [`kvfree_call_rcu`]: it lies inside a live object given up for freeing.
unsafe fn kvfree_head(head: NonNull<RcuHead>) {
    match slab().object_start(head.as_ptr() as usize) {
        Some(obj) => {
            // SAFETY: the object around the head was given up by `kvfree_call_rcu`'s caller.
            if let Err(report) = unsafe { slab().kfree(obj.as_ptr()) } {
                log::error!("kvfree_call_rcu: {report}");
            }
        }
        None => log::error!("kvfree_call_rcu: {:p} is in no object", head),
    }
}

/// Frees the object `$ptr` (a raw pointer to a structure with an [`RcuHead`] field `$field`)
/// after an RCU grace period, without allocating: Linux's `kfree_rcu(ptr, field)`.
///
/// It must be used in an `unsafe` block: see [`kvfree_call_rcu`]'s contract.
#[macro_export]
macro_rules! kfree_rcu {
    ($ptr:expr, $field:ident) => {{
        let ptr = $ptr;
        $crate::memory::kmalloc::kvfree_call_rcu(
            ::core::ptr::NonNull::from(&(*ptr).$field),
            ::core::ptr::NonNull::new(ptr.cast::<u8>()).expect("kfree_rcu of a null pointer"),
        )
    }};
}

/// `kmalloc` for a Rust layout: the size class must also satisfy the alignment.
fn kmalloc_layout(slab: &SlabAllocator<KernelPlatform>, layout: Layout) -> Option<NonNull<u8>> {
    let size = layout.size();
    let align = layout.align();
    // Objects of a class are aligned to the largest power of two dividing the class size (its
    // slabs start on page boundaries); larger sizes come in naturally aligned pages.
    let fits = match slab.kmalloc_cache(size) {
        Some(cache) => cache.size().is_multiple_of(align),
        None => align <= PAGE_SIZE,
    };
    let size = if fits {
        size
    } else {
        size.max(align).next_power_of_two()
    };
    slab.kmalloc(size, Gfp::KERNEL)
}

/// Set while a memory-pressure reclaim runs ([`reclaim_for_pressure`]): one at a time.
static RECLAIMING: AtomicBool = AtomicBool::new(false);
/// Memory-pressure reclaims run since boot, and the slabs they freed ([`pressure_stats`]).
static PRESSURE_RECLAIMS: AtomicUsize = AtomicUsize::new(0);
static PRESSURE_SLABS: AtomicUsize = AtomicUsize::new(0);

/// The memory-pressure path (Linux's slab shrinker, `kmem_cache_shrink` without the per-CPU
/// flush): called by the page allocator when it cannot satisfy a request, before it fails.
/// Empties the barns of every cache and frees every empty slab ([`SlabAllocator::reclaim`]);
/// returns the number of slabs freed (0: nothing to retry for).
///
/// The failing allocation may come from anywhere: an interrupt handler, a thread with
/// interrupts off, or the slab allocator itself, pinned, with its CPU's sheaves in hand, on
/// its way to a new slab. So this path never sleeps, never allocates, and never takes a lock
/// this CPU may already hold: the CPUs' sheaves are left alone (this CPU's may be the very
/// ones being refilled, and another CPU's can only be reached by running code there, which
/// sleeps: `echo 1 > /sys/kernel/slab/<cache>/shrink` does that, from process context); the
/// slab crate checks the barn and node-list locks it needs with interrupts off and skips a
/// cache whose locks are held ([`slab::KmemCache::reclaim`]); `slab_mutex` is only
/// try-locked (the kmalloc caches are reached without it). One reclaim runs at a time: a
/// nested or concurrent call returns 0 at once (the page allocator then fails as before; the
/// reclaim in progress frees what there is).
pub fn reclaim_for_pressure() -> usize {
    let Some(slab) = SLAB.get() else {
        return 0;
    };
    if RECLAIMING
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return 0;
    }
    let freed = slab.reclaim();
    RECLAIMING.store(false, Ordering::Release);
    PRESSURE_RECLAIMS.fetch_add(1, Ordering::Relaxed);
    PRESSURE_SLABS.fetch_add(freed, Ordering::Relaxed);
    freed
}

/// Memory-pressure reclaims run since boot and the slabs they freed ([`reclaim_for_pressure`]).
pub fn pressure_stats() -> (usize, usize) {
    (
        PRESSURE_RECLAIMS.load(Ordering::Relaxed),
        PRESSURE_SLABS.load(Ordering::Relaxed),
    )
}

/// The thread (its stack slot plus one; 0: none) that may fall back on the bootstrap heap when
/// kmalloc fails ([`with_reserve`]).
static RESERVE_USER: AtomicU64 = AtomicU64::new(0);

/// Runs `f` with the bootstrap heap as an emergency reserve for this thread's Rust allocations
/// (`Box`, `Vec`, ...): one that kmalloc cannot serve comes from the bootstrap heap, which
/// keeps about 4 MiB free after boot, instead of failing (Linux's memory reserves for
/// `PF_MEMALLOC` tasks). For code that allocates infallibly in a crate it cannot change, such
/// as the slab crate's `kmem_cache_create` and `caches`, run where memory may be exhausted
/// (the shell's commands): their small structures then come from the reserve, and what truly
/// needs memory (slab pages) still fails with an error. Blocks go back to the heap when freed.
/// One thread at a time: while another holds the reserve, `f` runs without it. Not in
/// interrupt handlers. A block from the reserve is not a kmalloc object: it goes back through
/// the global allocator (a drop), never through `kfree` or `kfree_rcu`.
pub fn with_reserve<R>(f: impl FnOnce() -> R) -> R {
    let Some(slot) = super::stack::current_slot() else {
        return f();
    };
    let mine = RESERVE_USER
        .compare_exchange(0, slot + 1, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok();
    let result = f();
    if mine {
        RESERVE_USER.store(0, Ordering::Release);
    }
    result
}

/// Lab 01's overflow, contained: `kmalloc(size)`, one byte written at `offset`, then `kfree`,
/// whose result it returns (`None` when out of memory or `offset` is not inside the object of
/// `size`'s kmalloc class). A byte past `size` but inside the object is the kmalloc red zone
/// of a debug cache (`slub_debug=ZU`): the free reports it; other caches see nothing. The
/// byte never leaves the object, so no other object is touched.
pub fn write_byte_and_free(size: usize, offset: usize) -> Option<Result<(), slab::SlabReport>> {
    let class = slab().kmalloc_cache(size)?;
    if offset >= class.object_size() {
        return None;
    }
    let p = slab().kmalloc(size, slab::Gfp::KERNEL)?;
    // SAFETY: `offset` is below the object size of the cache `p` comes from (checked), so the
    // byte lies in the object kmalloc gave out, which nothing else uses; past `size` it is a
    // debug cache's kmalloc red zone, which is only ever checked.
    unsafe { p.as_ptr().add(offset).write_volatile(0x42) };
    // SAFETY: `p` came from kmalloc above and is not used afterwards.
    Some(unsafe { slab().kfree(p.as_ptr()) })
}

/// Whether the caller runs inside [`with_reserve`] (its thread, not an interrupt handler).
fn may_use_reserve() -> bool {
    let user = RESERVE_USER.load(Ordering::Acquire);
    user != 0
        && !crate::cpu::in_interrupt()
        && super::stack::current_slot().map(|s| s + 1) == Some(user)
}

/// Allocations served by the reserve since boot ([`with_reserve`]).
static RESERVE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// How many allocations the emergency reserve has served since boot.
pub fn reserve_allocations() -> usize {
    RESERVE_ALLOCATIONS.load(Ordering::Relaxed)
}

/// The global allocator: the bootstrap heap until [`init`], then `kmalloc`.
struct KernelAllocator;

// SAFETY: blocks come from kmalloc (at least `size` bytes, aligned as `kmalloc_layout` ensures)
// or from the bootstrap heap (which honours the layout); each is given back to where it came
// from, told apart by address.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match SLAB.get() {
            Some(slab) => {
                crate::cpu::count_allocation();
                match kmalloc_layout(slab, layout) {
                    Some(p) => p.as_ptr(),
                    None if may_use_reserve() => {
                        RESERVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
                        super::heap::alloc(layout)
                    }
                    None => core::ptr::null_mut(),
                }
            }
            None => super::heap::alloc(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if super::heap::contains(ptr) {
            // SAFETY: the bootstrap heap gave out `ptr` for this layout.
            unsafe { super::heap::dealloc(ptr, layout) };
        } else if let Some(slab) = SLAB.get() {
            // SAFETY: kmalloc gave out `ptr`; the caller does not use it again.
            if unsafe { super::free_q::defer(ptr) } {
                return;
            }
            // SAFETY: as above.
            if let Err(report) = unsafe { slab.kfree(ptr) } {
                log::error!("kfree from the global allocator: {report}");
            }
        }
    }
}

#[global_allocator]
static GLOBAL: KernelAllocator = KernelAllocator;

#[crate::ktest]
fn box_vec_and_btreemap_work_on_kmalloc() {
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    let b = Box::new(0x5eaf_u64);
    assert_eq!(*b, 0x5eaf);
    let ptr = NonNull::from(&*b).cast::<u8>();
    assert!(
        !super::heap::contains(ptr.as_ptr()),
        "after boot, Box comes from kmalloc"
    );
    assert_eq!(slab().ksize(ptr), Ok(8), "an 8-byte Box lives in kmalloc-8");

    let v: Vec<u64> = (0..10_000).collect();
    assert_eq!(v.iter().sum::<u64>(), 10_000 * 9_999 / 2);
    assert!(
        slab()
            .ksize(NonNull::from(&v[0]).cast())
            .is_ok_and(|n| n >= 80_000),
        "a large Vec gets whole pages"
    );

    let mut map = BTreeMap::new();
    for i in 0..1000u32 {
        map.insert(i.wrapping_mul(2_654_435_761), i);
    }
    assert_eq!(map.len(), 1000);
    assert_eq!(map.get(&7u32.wrapping_mul(2_654_435_761)), Some(&7));

    // Over-aligned layouts get a class that honours the alignment.
    #[repr(align(64))]
    struct Aligned([u8; 96]);
    let a = Box::new(Aligned([1; 96]));
    assert_eq!(core::ptr::from_ref(&*a) as usize % 64, 0);
    assert_eq!(a.0[95], 1);
}
