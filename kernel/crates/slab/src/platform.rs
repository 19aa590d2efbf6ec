//! What the allocator needs from the machine it runs on.
//!
//! The slab allocator is pure logic: it never touches page tables, CPU registers or the interrupt
//! flag itself. Everything machine-specific comes through the [`Platform`] trait, which the kernel
//! implements with real page frames, CPU ids and a guard that disables preemption and interrupts,
//! and which `host::HostPlatform` (on targets with `std`) implements on the host with an arena of
//! ordinary memory and threads standing in for CPUs.
//!
//! Why this surface (compared with a bare page allocator):
//! * `pin()` returns the CPU id *together with* the guard, so the id cannot be used after the guard
//!   that makes it stable is dropped by accident in the middle of an operation.
//! * Linux finds the `struct slab` of any address in O(1) through `virt_to_page()`; the per-page
//!   records of this trait (`set_page_owner` / `page_owner` and the descriptor storage of
//!   `slab_meta`) play the role of the kernel's `struct page` array. Keeping the slab descriptor
//!   off the slab (not at the start of its memory) is what lets power-of-two kmalloc objects stay
//!   naturally aligned and kmalloc-96 use 4032 of 4096 bytes, exactly as in Linux.
//! * The lock type is not part of the trait: barns and node lists use a spinning lock on both
//!   sides ([`crate::sync`]), which is correct in the kernel because every slow path already runs
//!   with the CPU pinned (preemption and interrupts off), and on the host because threads are
//!   never pinned by the OS.
//!
//! A kernel implementation in outline: `pin` disables interrupts (and preemption) and reads the
//! CPU number from the per-CPU area; `alloc_pages`/`free_pages` call the buddy allocator;
//! `set_page_owner`/`page_owner` and `slab_meta` index an array of per-frame records
//! (`struct page`) by physical frame number, returning 0 for addresses outside RAM.

use alloc::boxed::Box;
use core::marker::PhantomData;
use core::ptr::NonNull;

use kobject::{KSet, Sysfs};

use crate::base::Gfp;
use crate::head::{CallbackFunc, CallbackHead, RcuFunc, RcuHead, container_of};
use crate::report::{SlabReport, Track};
use crate::slabs::Slab;

/// Where a platform shows its caches: its sysfs tree and the slab kset in it (Linux's
/// `slab_kset`, `/sys/kernel/slab`). See [`Platform::slab_sysfs`].
#[derive(Clone, Copy)]
pub struct SlabSysfs<'a> {
    /// The tree.
    pub sysfs: &'a Sysfs,
    /// The directory the caches' directories go in.
    pub kset: &'static KSet,
}

/// The services the slab allocator needs from the kernel (or from the host test harness).
///
/// A `Platform` value is a cheap handle (`Clone`): every cache keeps its own copy, so it is usually
/// a reference to a static or an `Arc`.
///
/// # Safety
///
/// Implementors promise what the allocator relies on for memory safety:
/// * `pin()` returns a CPU id `< nr_cpus()`, and while the returned guard lives the context
///   stays on that CPU and no other context on it runs (in the kernel: interrupts are off; on
///   the host: each thread is registered as a distinct CPU). Guards may nest. The context may
///   use the CPU's sheaves unless `sheaves_usable` of the guard is `false`.
/// * `pin_fast()` returns `0` or [`cpu_slot`](crate::base::cpu_slot) of the current CPU's id; while a guard with a
///   non-zero slot lives, the context stays on that CPU, and no other context uses that CPU's
///   sheaves: another `pin_fast` on the CPU gets `0`, and a `pin` guard of it says the sheaves
///   are not usable (in the kernel, an interrupt handler may run meanwhile, on the slabs
///   only: Linux's `local_trylock`).
/// * `alloc_pages(order, ..)` returns `2^order` pages, naturally aligned to their total size,
///   exclusively owned by the caller until given back to `free_pages`.
/// * `page_owner(addr)` returns, for any address inside a block whose owner was set with
///   `set_page_owner`, that owner, and `0` for every other address (including addresses that are
///   not memory of the platform at all).
/// * `slab_meta(page)` returns storage for one [`Slab`] descriptor, private to the block starting
///   at `page`, valid (and not moved) until the block is freed.
/// * `call_rcu_head` and `queue_work_head` call `func(head)` exactly once, with that head;
///   `rcu_barrier` returns only when every function given to `call_rcu_head` before it has run
///   (the allocator frees a cache after it, so a callback running later would use freed memory).
/// * `is_kernel_rodata(ptr, len)` is `true` only if those bytes stay mapped and unchanged for
///   as long as the kernel runs (a cache borrows a name there instead of copying it).
pub unsafe trait Platform: Clone + Send + Sync + 'static {
    /// Proof that the current context stays on its CPU (preemption and interrupts off).
    type Guard;
    /// Proof of a fast path's hold on its CPU's sheaves ([`Platform::pin_fast`]).
    type FastGuard;

    /// Number of possible CPUs (`nr_cpu_ids`).
    fn nr_cpus(&self) -> usize;
    /// Number of memory nodes (`nr_node_ids`).
    fn nr_nodes(&self) -> usize;
    /// The memory node nearest to `cpu`.
    fn cpu_to_node(&self, cpu: usize) -> usize;
    /// Stays on the current CPU until the guard is dropped, and says which CPU that is.
    fn pin(&self) -> (Self::Guard, usize);

    /// The fast paths' variant of [`Platform::pin`]: returns the guard and a *slot*, which is
    /// either [`cpu_slot`](crate::base::cpu_slot)`(cpu)` for the current CPU `cpu`, whose sheaves the caller then has
    /// to itself until the guard drops, or `0`, which means "not known to be a CPU here, or its
    /// sheaves are taken: ask [`Platform::pin`]". The slot is the byte offset of the CPU's entry
    /// in a cache's per-CPU array, so that the fast path needs no multiply; entry 0 holds a
    /// zero-capacity sheaf, so a 0 sends both fast paths to their slow paths, which call
    /// `pin()`: a platform can thereby move a check of the calling context (the host's "is
    /// this thread registered?") off the fast path.
    ///
    /// It need not keep interrupts out: a platform whose interrupt handlers allocate can take
    /// a per-CPU trylock here instead (Linux's `local_trylock` on `cpu_sheaves`), give an
    /// interrupt that finds it taken a `0`, and say from [`Platform::sheaves_usable`] that the
    /// handler must leave the CPU's sheaves alone; the allocator then serves it from the slabs.
    /// The slow paths call `pin()` as well, to keep interrupts out while they take locks.
    fn pin_fast(&self) -> (Self::FastGuard, usize);

    /// The pin of a slow path entered under a fast-path hold (`pin_fast` gave a non-zero
    /// slot): the CPU is the slot's and its sheaves are the caller's already, so only the rest
    /// of what `pin` does is needed (in the kernel: interrupts off, for the locks the slow path
    /// takes). The default is `pin`'s guard; a platform without interrupts can make it free.
    #[inline(always)]
    fn pin_held(&self) -> Self::Guard {
        self.pin().0
    }

    /// Whether the context pinned by `guard` may use its CPU's sheaves: `false` while a fast
    /// path of another context holds them (see [`Platform::pin_fast`]), in which case the
    /// allocator goes to the slabs directly. The default, `true`, is right for a platform
    /// whose fast-path guard keeps every other context off the CPU.
    #[inline(always)]
    fn sheaves_usable(&self, guard: &Self::Guard) -> bool {
        let _ = guard;
        true
    }

    /// Allocates `2^order` naturally aligned pages, preferably from `node`. `None` when out of
    /// memory: the allocator turns that into an error value, never a panic.
    fn alloc_pages(&self, order: u32, node: usize, gfp: Gfp) -> Option<NonNull<u8>>;
    /// Gives back a block obtained from [`Platform::alloc_pages`].
    ///
    /// # Safety
    /// `ptr` and `order` must describe a block allocated by `alloc_pages` and not freed since.
    unsafe fn free_pages(&self, ptr: NonNull<u8>, order: u32);
    /// Gives back the pages of a `SLAB_TYPESAFE_BY_RCU` slab once an RCU grace period has
    /// elapsed (Linux frees such slabs from an RCU callback), so that readers still holding a
    /// pointer into them read memory of the same type. The default frees at once, which is only
    /// right on a system without RCU readers.
    ///
    /// # Safety
    /// As for [`Platform::free_pages`].
    unsafe fn free_pages_rcu(&self, ptr: NonNull<u8>, order: u32) {
        // SAFETY: forwarded contract.
        unsafe { self.free_pages(ptr, order) }
    }
    /// Queues `head` so that `func(head)` runs after an RCU grace period, in process context:
    /// once every reader that might hold a pointer into the structure around `head` is done
    /// (Linux's `call_rcu(head, func)`). The head is embedded in that structure (a sheaf, a
    /// cache), so an implementation must link it and **never allocate**: this is how the
    /// allocator frees memory when there is none left. The default runs `func` at once, which
    /// is only right on a system without RCU readers.
    ///
    /// # Safety
    /// `head` stays valid, and untouched by anyone else, until `func` runs; calling
    /// `func(head)` then, on any CPU in process context, is sound.
    unsafe fn call_rcu_head(&self, head: NonNull<RcuHead>, func: RcuFunc) {
        // SAFETY: the caller allows `func(head)` once readers are done; without readers, now.
        unsafe { func(head) }
    }

    /// Waits until every callback given to [`Platform::call_rcu_head`] so far has run
    /// (`rcu_barrier`). May sleep. The default has nothing to wait for.
    fn rcu_barrier(&self) {}

    /// If the caller may sleep now (process context, preemptible, not inside an RCU read-side
    /// section or callback), waits for an RCU grace period without allocating and returns
    /// `true`; otherwise returns `false` at once. `kfree_rcu` without a head falls back on it
    /// when it has no memory for its record (Linux's `kvfree_rcu_mightsleep`:
    /// `synchronize_rcu()`, then free the object directly). The default cannot tell, and says
    /// no.
    fn synchronize_rcu_if_sleepable(&self) -> bool {
        false
    }

    /// Queues `head` so that `func(head)` runs later, once, in process context (where it may
    /// sleep): a work item embedded in the structure it works on, like the `async_destroy_work`
    /// of a cache, the asynchronous part of `kmem_cache_destroy` (Linux queues such a
    /// `work_struct` on a workqueue). An implementation links the head and **never
    /// allocates**. The default runs `func` at once, which makes destruction synchronous.
    ///
    /// # Safety
    /// `head` is not queued already, stays valid and untouched by anyone else until `func`
    /// runs, and calling `func(head)` then, in process context, is sound.
    unsafe fn queue_work_head(&self, head: NonNull<CallbackHead>, func: CallbackFunc) {
        // SAFETY: the caller allows `func(head)` in process context, which this is.
        unsafe { func(head) }
    }

    /// Runs `work` later, once, in process context, like [`Platform::queue_work_head`] (which
    /// it uses): a convenience that boxes the closure with its head, so it allocates. The
    /// allocator itself never calls it.
    fn queue_work(&self, work: Box<dyn FnOnce() + Send>) {
        let boxed = Box::into_raw(Box::new(BoxedWork {
            head: CallbackHead::new(),
            work,
        }));
        // SAFETY: the head is projected from the leaked box, which only `run_boxed_work` takes
        // back, once, when the head runs; the closure is `Send + 'static`, so running it later
        // in any process context is sound.
        unsafe {
            let head = NonNull::new_unchecked(&raw mut (*boxed).head);
            self.queue_work_head(head, run_boxed_work);
        }
    }

    /// Waits until every work item given to [`Platform::queue_work_head`] so far has run
    /// (`flush_workqueue`). May sleep. The default has nothing to wait for.
    fn flush_work(&self) {}

    /// Where the caches are shown: the platform's sysfs tree and its slab kset
    /// (`/sys/kernel/slab`), once they exist. The default has none. See [`crate::sysfs`].
    fn slab_sysfs(&self) -> Option<SlabSysfs<'_>> {
        None
    }

    /// The node whose memory contains `addr`.
    fn page_node(&self, addr: usize) -> usize;

    /// Records `owner` for every page of the block at `ptr` (`0` clears it).
    ///
    /// # Safety
    /// `ptr` and `order` must describe a block currently allocated by `alloc_pages`.
    unsafe fn set_page_owner(&self, ptr: NonNull<u8>, order: u32, owner: usize);
    /// The owner recorded for the page containing `addr`, or `0`. Must be O(1): `kfree` and the
    /// slow free paths call it for every object.
    fn page_owner(&self, addr: usize) -> usize;
    /// Storage for the descriptor of the slab whose first page is `page` (Linux keeps
    /// `struct slab` inside `struct page`; the platform keeps an equivalent per-page record).
    fn slab_meta(&self, page: NonNull<u8>) -> NonNull<Slab>;

    /// Runs `f` once on every CPU that may hold sheaves, on that CPU, where `f` can pin it,
    /// and returns when all calls have finished (Linux's `flush_all` queues a work item per
    /// CPU). Returns `false` when it could not reach every CPU. The default cannot (a host
    /// "CPU" is a thread that only runs its own code) and runs nothing.
    fn on_each_cpu(&self, f: &(dyn Fn() + Sync)) -> bool {
        let _ = f;
        false
    }

    /// A seed for the per-cache random value that hardens free pointers. The default is a
    /// constant; a kernel should return something unpredictable (RDRAND, boot time stamp...).
    fn random_seed(&self) -> u64 {
        0x9e37_79b9_7f4a_7c15
    }

    /// Whether the `len` bytes at `ptr` lie in the kernel image's read-only data, mapped and
    /// unchanged for as long as the kernel runs (Linux's `is_kernel_rodata`): a cache name
    /// there is borrowed, any other is copied ([`crate::CacheName`], `kstrdup_const`). The
    /// default says no, so everything is copied (the host; a module's memory never counts).
    fn is_kernel_rodata(&self, ptr: *const u8, len: usize) -> bool {
        let _ = (ptr, len);
        false
    }

    /// Called for every problem the debug checks find, after it is logged in the cache (a
    /// kernel prints it, like Linux's `slab_err`). The default does nothing.
    fn slab_error(&self, report: &SlabReport) {
        let _ = report;
    }

    /// Completes a caller-tracking record of a `SLAB_STORE_USER` cache as an allocation or a
    /// free records it (Linux's `set_track`): `track.addr` holds the caller the allocator was
    /// given (0 for none), `track.cpu` the CPU. A kernel walks the stack to the first frame
    /// outside the allocator (the caller of `kmalloc`, also through `Box` and `Vec`), keeps
    /// the stack from there in a stack depot (`handle`), and stamps `pid` and `when`. Called
    /// pinned, on every debug allocation and free: it must not allocate or take a lock the
    /// allocator may hold. The default leaves the record as it is.
    fn fill_track(&self, track: &mut Track) {
        let _ = track;
    }

    /// The clock of [`Track::when`] (Linux's `jiffies`): `age=` in reports and traces is the
    /// difference. The default is always 0.
    fn jiffies(&self) -> u64 {
        0
    }

    /// Calls `f` with each frame, innermost first, of the stack that `handle` (a
    /// [`Track::handle`]) names. The default knows no stacks.
    fn stack_frames(&self, handle: u32, f: &mut dyn FnMut(usize)) {
        let _ = (handle, f);
    }

    /// Writes `addr` as a report or a trace names a code address (Linux's `%pS`:
    /// `function+0xoff/0xlen`). The default writes it in hexadecimal.
    fn write_symbol(&self, out: &mut dyn core::fmt::Write, addr: usize) -> core::fmt::Result {
        write!(out, "{addr:#x}")
    }
}

/// A closure queued by [`Platform::queue_work`], boxed with its head.
#[repr(C)]
struct BoxedWork {
    head: CallbackHead,
    work: Box<dyn FnOnce() + Send>,
}

/// The function of a [`BoxedWork`]'s head: takes the box back and runs the closure.
///
/// # Safety
/// `head` is the head of a `BoxedWork` leaked by [`Platform::queue_work`], run once.
unsafe fn run_boxed_work(head: NonNull<CallbackHead>) {
    // SAFETY: the head was projected from the leaked box (caller contract), which is taken
    // back exactly once, here.
    let boxed = unsafe {
        Box::from_raw(
            container_of::<BoxedWork>(head, core::mem::offset_of!(BoxedWork, head)).as_ptr(),
        )
    };
    (boxed.work)();
}

/// Proof that the current context stays on CPU `cpu` for `'g` (while a guard of
/// [`Platform::pin`] or [`Platform::pin_fast`] lives): what reaching a CPU's sheaves without a
/// lock takes (`KmemCache::pcs`).
#[derive(Clone, Copy)]
pub(crate) struct OnCpu<'g> {
    cpu: usize,
    _pin: PhantomData<&'g ()>,
}

impl OnCpu<'_> {
    /// The proof for `cpu`.
    ///
    /// # Safety
    /// The current context is pinned to `cpu` for all of `'g`: a guard that
    /// [`Platform::pin`] returned with `cpu` (or [`Platform::pin_fast`] with
    /// [`cpu_slot`](crate::base::cpu_slot)`(cpu)`) lives at least that long.
    #[inline(always)]
    pub(crate) unsafe fn new(cpu: usize) -> Self {
        Self {
            cpu,
            _pin: PhantomData,
        }
    }

    /// The CPU.
    #[inline(always)]
    pub(crate) fn cpu(self) -> usize {
        self.cpu
    }
}

/// A pin of the current CPU: [`Platform::pin`]'s guard and CPU id kept together, so that the
/// proof [`Pinned::on_cpu`] cannot outlive the guard.
pub(crate) struct Pinned<P: Platform> {
    _guard: P::Guard,
    cpu: usize,
    /// [`Platform::sheaves_usable`] of the guard.
    usable: bool,
}

impl<P: Platform> Pinned<P> {
    /// Pins the current CPU until the result is dropped.
    pub(crate) fn new(platform: &P) -> Self {
        let (guard, cpu) = platform.pin();
        let usable = platform.sheaves_usable(&guard);
        Self {
            _guard: guard,
            cpu,
            usable,
        }
    }

    /// The pinned CPU.
    pub(crate) fn cpu(&self) -> usize {
        self.cpu
    }

    /// The proof that this context stays on [`Pinned::cpu`] and may use its sheaves while
    /// `self` lives; `None` if a fast path of another context holds them (this context
    /// interrupted it): the caller then works on the slabs only.
    pub(crate) fn on_cpu(&self) -> Option<OnCpu<'_>> {
        // SAFETY: `self` holds the guard `pin` returned with `cpu`, for as long as the borrow,
        // and the platform says the CPU's sheaves are this context's to use.
        self.usable.then(|| unsafe { OnCpu::new(self.cpu) })
    }
}
