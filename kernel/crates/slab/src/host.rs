//! A [`Platform`] on the host, for tests and benchmarks (built on every target with `std`).
//!
//! * **Pages** come from one arena of host memory, aligned to the largest block, split into
//!   nodes of equal size, each managed by a small buddy allocator (free sets per order,
//!   coalescing on free). A page limit lets tests simulate running out of memory.
//! * **CPUs** are threads: a test thread calls [`HostPlatform::register_cpu`] and is that CPU
//!   until the returned [`CpuRegistration`] is dropped. Since no two threads share a CPU id, the
//!   per-CPU guard needs to do nothing: `pin()` only reads the thread's id (and checks that the
//!   thread is registered with this platform). The fast paths use `pin_fast()`, one
//!   thread-local load with no check: each live platform has a small process-wide number, and
//!   a thread-local array holds, per platform number, its CPU slot while the thread is registered
//!   with that platform and 0 otherwise (0 sends the fast paths to the slow paths, which call
//!   the checking `pin()`).
//! * **Per-page records** (`page_owner`, slab descriptors) are arrays indexed by page number,
//!   the host's equivalent of the kernel's `struct page` array.

use std::alloc::{Layout, alloc, dealloc};
use std::boxed::Box;
use std::cell::{Cell, UnsafeCell};
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::vec;
use std::vec::Vec;

use crate::base::{Gfp, PAGE_SHIFT, PAGE_SIZE, cpu_slot};
use crate::head::{CallbackFunc, CallbackHead, HeadQueue, RcuFunc, RcuHead};
use crate::layout::MAX_PAGE_ORDER;
use crate::platform::Platform;
use crate::report::SlabReport;
use crate::slabs::Slab;

/// Shape of a host platform.
#[derive(Clone, Copy, Debug)]
pub struct HostConfig {
    /// Number of CPUs (threads that may register).
    pub cpus: usize,
    /// Number of memory nodes; CPU `i` is on node `i % nodes`.
    pub nodes: usize,
    /// Pages per node (rounded up to a multiple of the largest block, 1024 pages).
    pub pages_per_node: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cpus: 4,
            nodes: 1,
            pages_per_node: 4096,
        }
    }
}

struct HostInner {
    cfg: HostConfig,
    base: usize,
    len: usize,
    free: Vec<Mutex<Vec<BTreeSet<usize>>>>,
    owners: Box<[AtomicUsize]>,
    /// Descriptor storage, one cache line per page (see [`MetaSlot`]).
    meta: Box<[MetaSlot]>,
    taken: Mutex<Vec<bool>>,
    pages_in_use: AtomicUsize,
    rcu_pending: Mutex<Vec<(usize, u32)>>,
    /// Heads given to `call_rcu_head`, run at the next grace period (`synchronize_rcu`).
    rcu_callbacks: Mutex<HeadQueue>,
    /// Heads given to `queue_work_head`, run when a test says so (`run_work`).
    work: Mutex<HeadQueue>,
    page_limit: AtomicUsize,
    errors: AtomicUsize,
    /// The clock of caller tracking ([`HostPlatform::advance_jiffies`]).
    jiffies: AtomicU64,
    /// The stacks of caller tracking: a handle is an index plus one.
    stacks: Mutex<Vec<[usize; 2]>>,
    fast_id: FastId,
    /// The platform's own sysfs tree, with `/kernel/slab` as in the kernel's.
    sysfs: kobject::Sysfs,
    /// `/kernel/slab` (leaked: a kset's members keep a `'static` reference to it).
    slab_kset: &'static kobject::KSet,
}

/// The descriptor storage of one page, alone on its cache line(s), as in the kernel (whose
/// descriptor array is page aligned, with 64-byte descriptors). Packed at the 8-byte alignment
/// of `Slab`, a 64-byte descriptor straddled two lines, the second shared with the next page's
/// descriptor: list moves of one slab (its links are its last words) took away from every
/// other CPU the line holding the neighbour's `cache` word, which each `kfree` reads.
#[repr(align(64))]
struct MetaSlot(UnsafeCell<MaybeUninit<Slab>>);

// SAFETY: `meta` entries are only written by the owner of the corresponding block; everything
// else is behind mutexes or atomics.
unsafe impl Sync for HostInner {}
// SAFETY: as above.
unsafe impl Send for HostInner {}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.fast_id.release();
        // SAFETY: allocated in `HostPlatform::new` with this layout.
        unsafe { dealloc(self.base as *mut u8, Self::arena_layout(self.len)) };
    }
}

impl HostInner {
    fn arena_layout(len: usize) -> Layout {
        Layout::from_size_align(len, PAGE_SIZE << MAX_PAGE_ORDER).expect("arena layout")
    }
}

/// The host platform: cheap to clone (an `Arc`, and copies of what the fast paths read).
#[derive(Clone)]
pub struct HostPlatform(Arc<HostInner>, PlatformKey, FastId, OwnerTable);

/// Where the page-owner words are, copied out of the shared state into every handle (each
/// cache and allocator holds one): `kfree` finds an address's owner with loads from the handle
/// it already has, as Linux's `virt_to_slab` computes the `struct page` from the address,
/// instead of first following the `Arc`.
#[derive(Clone, Copy)]
struct OwnerTable {
    /// First byte of the arena.
    base: usize,
    /// Bytes of the arena.
    len: usize,
    /// `HostInner::owners`: one word per page of the arena.
    owners: NonNull<AtomicUsize>,
}

// SAFETY: `owners` points into the `HostInner` that the handle's `Arc` keeps alive, and is
// only read through, as atomics, like the `Arc`'s own contents.
unsafe impl Send for OwnerTable {}
// SAFETY: as above.
unsafe impl Sync for OwnerTable {}

/// How many platforms can have a fast-path number at once; further ones get number 0, whose
/// [`FAST_SLOT`] entry is never set (their fast paths always ask the checking `pin()`).
const FAST_IDS: usize = 256;

/// A platform's process-wide number: an index into [`FAST_SLOT`], `< FAST_IDS`, unique among
/// live platforms (released when the platform's shared state is dropped). 0: none.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FastId(u32);

/// Which fast-path numbers are taken (number 0 is never handed out).
static FAST_IDS_TAKEN: Mutex<[bool; FAST_IDS]> = Mutex::new({
    let mut t = [false; FAST_IDS];
    t[0] = true;
    t
});

impl FastId {
    fn take() -> Self {
        let mut taken = FAST_IDS_TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        match taken.iter().position(|t| !t) {
            Some(i) => {
                taken[i] = true;
                FastId(i as u32)
            }
            None => FastId(0),
        }
    }

    /// Gives the number back (from `HostInner::drop`: no registration of the platform is left,
    /// since each holds a clone of it).
    fn release(self) {
        if self.0 != 0 {
            FAST_IDS_TAKEN.lock().unwrap_or_else(|e| e.into_inner())[self.0 as usize] = false;
        }
    }
}

/// The address of a platform's shared state, kept next to the `Arc` so that `pin()` compares it
/// with the thread's registration without following the `Arc`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PlatformKey(usize);

std::thread_local! {
    /// (platform key, CPU id) of the current thread; key 0: not registered.
    static CURRENT: Cell<(PlatformKey, usize)> = const { Cell::new((PlatformKey(0), 0)) };
    /// Per platform number ([`FastId`]): [`cpu_slot`]`(cpu)` while this thread is registered
    /// as CPU `cpu` of that platform, else 0. What `pin_fast` reads.
    static FAST_SLOT: [Cell<u32>; FAST_IDS] = const { [const { Cell::new(0) }; FAST_IDS] };
    /// Set by [`HostPlatform::as_if_interrupting_a_fast_path`]: this thread's sheaves are
    /// taken, as an interrupt handler's on a kernel CPU in the middle of a fast path.
    static SHEAVES_TAKEN: Cell<bool> = const { Cell::new(false) };
}

/// Proof that the current thread is registered as a CPU. Dropping it unregisters the thread.
pub struct CpuRegistration {
    platform: HostPlatform,
    cpu: usize,
    _not_send: PhantomData<*const ()>,
}

impl CpuRegistration {
    /// The CPU id this thread has.
    pub fn cpu(&self) -> usize {
        self.cpu
    }
}

impl Drop for CpuRegistration {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set((PlatformKey(0), 0)));
        FAST_SLOT.with(|f| f[self.platform.2.0 as usize].set(0));
        self.platform.0.taken.lock().unwrap()[self.cpu] = false;
    }
}

/// The per-CPU guard of the host: nothing to do, the thread *is* the CPU.
pub struct HostGuard(PhantomData<*const ()>);

impl HostPlatform {
    /// Runs `f` as an interrupt handler of a kernel CPU runs when it interrupted a fast path
    /// there: this thread's fast paths get slot 0 and its pins say the sheaves are not usable,
    /// so the allocator must serve `f` from the slabs without touching this CPU's sheaves
    /// (what the kernel's per-CPU trylock makes happen; tests check the sheaves are left
    /// alone). The thread must be registered with this platform.
    pub fn as_if_interrupting_a_fast_path<R>(&self, f: impl FnOnce() -> R) -> R {
        let id = self.2.0 as usize;
        let slot = FAST_SLOT.with(|s| s[id].replace(0));
        let taken = SHEAVES_TAKEN.with(|t| t.replace(true));
        let r = f();
        SHEAVES_TAKEN.with(|t| t.set(taken));
        FAST_SLOT.with(|s| s[id].set(slot));
        r
    }
}

impl HostPlatform {
    /// Creates a platform with its arena.
    pub fn new(cfg: HostConfig) -> Self {
        assert!(cfg.cpus > 0 && cfg.nodes > 0);
        let block = 1usize << MAX_PAGE_ORDER;
        let ppn = cfg.pages_per_node.div_ceil(block).max(1) * block;
        let cfg = HostConfig {
            pages_per_node: ppn,
            ..cfg
        };
        let pages = ppn * cfg.nodes;
        let len = pages * PAGE_SIZE;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc(HostInner::arena_layout(len)) };
        assert!(!base.is_null(), "host arena allocation failed");
        let free = (0..cfg.nodes)
            .map(|_| {
                let mut sets = vec![BTreeSet::new(); MAX_PAGE_ORDER as usize + 1];
                for i in (0..ppn).step_by(block) {
                    sets[MAX_PAGE_ORDER as usize].insert(i);
                }
                Mutex::new(sets)
            })
            .collect();
        let inner = Arc::new(HostInner {
            cfg,
            base: base as usize,
            len,
            free,
            owners: (0..pages).map(|_| AtomicUsize::new(0)).collect(),
            meta: (0..pages)
                .map(|_| MetaSlot(UnsafeCell::new(MaybeUninit::uninit())))
                .collect(),
            taken: Mutex::new(vec![false; cfg.cpus]),
            pages_in_use: AtomicUsize::new(0),
            rcu_pending: Mutex::new(Vec::new()),
            rcu_callbacks: Mutex::new(HeadQueue::new()),
            work: Mutex::new(HeadQueue::new()),
            page_limit: AtomicUsize::new(usize::MAX),
            errors: AtomicUsize::new(0),
            jiffies: AtomicU64::new(0),
            stacks: Mutex::new(Vec::new()),
            fast_id: FastId::take(),
            sysfs: kobject::Sysfs::new(),
            slab_kset: Box::leak(Box::new(kobject::KSet::new())),
        });
        let kernel: &'static kobject::KSet = Box::leak(Box::new(kobject::KSet::new()));
        // SAFETY: both ksets are leaked: they never move and are never freed.
        unsafe {
            inner
                .sysfs
                .kset_register(kernel, None, "kernel")
                .expect("/kernel");
            inner
                .sysfs
                .kset_register(inner.slab_kset, Some(&kernel.kobj), "slab")
                .expect("/kernel/slab");
        }
        let key = PlatformKey(Arc::as_ptr(&inner) as usize);
        let fast_id = inner.fast_id;
        let table = OwnerTable {
            base: inner.base,
            len: inner.len,
            owners: NonNull::from(&inner.owners[0]),
        };
        Self(inner, key, fast_id, table)
    }

    /// Registers the current thread as the lowest free CPU id. Panics if the thread is already
    /// registered or all CPUs are taken.
    pub fn register_cpu(&self) -> CpuRegistration {
        self.register(|taken| {
            taken
                .iter()
                .position(|t| !t)
                .expect("all host CPUs are taken")
        })
    }

    /// Registers the current thread as CPU `cpu`. Panics if the thread is already registered
    /// or another thread is that CPU.
    pub fn register_cpu_as(&self, cpu: usize) -> CpuRegistration {
        self.register(|taken| {
            assert!(!taken[cpu], "host CPU {cpu} is already taken");
            cpu
        })
    }

    /// Registers the current thread as the CPU `pick` chooses among the free ones. Choosing
    /// and taking happen under one lock, so threads registering at once never pick the same.
    fn register(&self, pick: impl FnOnce(&[bool]) -> usize) -> CpuRegistration {
        assert!(
            CURRENT.with(|c| c.get().0) == PlatformKey(0),
            "thread already registered as a CPU"
        );
        self.try_register(|taken| Some(pick(taken)))
            .expect("a CPU was picked")
    }

    /// [`Self::register`] if `pick` finds a CPU (the thread is not registered).
    fn try_register(&self, pick: impl FnOnce(&[bool]) -> Option<usize>) -> Option<CpuRegistration> {
        let cpu = {
            let mut taken = self.0.taken.lock().unwrap_or_else(|e| e.into_inner());
            let cpu = pick(&taken)?;
            taken[cpu] = true;
            cpu
        };
        CURRENT.with(|c| c.set((self.1, cpu)));
        if self.2.0 != 0 {
            FAST_SLOT.with(|f| f[self.2.0 as usize].set(cpu_slot(cpu) as u32));
        }
        Some(CpuRegistration {
            platform: self.clone(),
            cpu,
            _not_send: PhantomData,
        })
    }

    /// A CPU for the calling thread while queued callbacks run (they pin): none is needed if
    /// the thread is registered with this platform; else it borrows a free CPU id for the
    /// call, so that the callbacks can run on any thread (an allocator's drop runs those
    /// still queued, and may happen on a thread that is no CPU). `Err` says why there is
    /// none.
    fn cpu_for_callbacks(&self) -> Result<Option<CpuRegistration>, &'static str> {
        match CURRENT.with(|c| c.get().0) {
            key if key == self.1 => Ok(None),
            PlatformKey(0) => self
                .try_register(|taken| taken.iter().position(|t| !t))
                .map(Some)
                .ok_or("every CPU of the platform is taken by another thread"),
            _ => Err("the thread is a CPU of another platform"),
        }
    }

    /// [`Self::cpu_for_callbacks`] for a run of `what`'s queue: `None` when there is no CPU
    /// for it, which panics with the reason, or, while the thread is panicking already (a
    /// panic in a drop would abort the process), forgets `what`'s queued heads (their
    /// structures leak; none runs later on memory freed meanwhile) and says so on stderr.
    fn callbacks_cpu(&self, what: &Mutex<HeadQueue>) -> Option<Option<CpuRegistration>> {
        match self.cpu_for_callbacks() {
            Ok(cpu) => Some(cpu),
            Err(why) if std::thread::panicking() => {
                let lost = std::mem::take(&mut *what.lock().unwrap_or_else(|e| e.into_inner()));
                std::eprintln!(
                    "HostPlatform: {} queued callbacks dropped without running: {why}",
                    lost.len()
                );
                None
            }
            Err(why) => panic!("HostPlatform: no CPU to run queued callbacks on: {why}"),
        }
    }

    /// Pages currently allocated from the arena.
    pub fn pages_in_use(&self) -> usize {
        self.0.pages_in_use.load(Ordering::Relaxed)
    }

    /// Makes `alloc_pages` fail once `limit` pages would be in use (`None`: no limit).
    pub fn set_page_limit(&self, limit: Option<usize>) {
        self.0
            .page_limit
            .store(limit.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// Ends the current RCU grace period: runs the callbacks given to `call_rcu_head` and frees the
    /// pages of `SLAB_TYPESAFE_BY_RCU` slabs given back since the last call (the host has no
    /// RCU readers, so a grace period is whenever a test says so). Callbacks run on the
    /// calling thread, as its CPU or, if it is none, as a free CPU it borrows for the call.
    /// Returns how many blocks were freed.
    pub fn synchronize_rcu(&self) -> usize {
        let Some(_cpu) = self.callbacks_cpu(&self.0.rcu_callbacks) else {
            return 0;
        };
        // The heads queued so far; those their callbacks queue wait for the next grace period.
        let mut callbacks = std::mem::take(&mut *self.0.rcu_callbacks.lock().unwrap());
        while let Some(head) = callbacks.pop_front() {
            // SAFETY: popped, so ours; its function was set by `call_rcu_head`, whose caller
            // allowed running it after a grace period, which this is (no host readers).
            unsafe { CallbackHead::run(head) };
        }
        let pending = std::mem::take(&mut *self.0.rcu_pending.lock().unwrap());
        for &(addr, order) in &pending {
            // SAFETY: the block was handed to `free_pages_rcu` and not freed since.
            unsafe { self.free_pages(NonNull::new(addr as *mut u8).expect("non-null"), order) };
        }
        pending.len()
    }

    /// Runs the work items given to `queue_work_head`, oldest first, including those queued while
    /// they run, on the calling thread (as its CPU or a free CPU it borrows, as
    /// [`Self::synchronize_rcu`]). Returns how many ran.
    pub fn run_work(&self) -> usize {
        let Some(_cpu) = self.callbacks_cpu(&self.0.work) else {
            return 0;
        };
        let mut ran = 0;
        loop {
            let next = self.0.work.lock().unwrap().pop_front();
            let Some(head) = next else { return ran };
            // SAFETY: popped, so ours; its function was set by `queue_work_head`, whose caller
            // allowed running it in process context, which a test thread is.
            unsafe { CallbackHead::run(head) };
            ran += 1;
        }
    }

    /// Number of work items given to `queue_work_head` that have not run yet.
    pub fn work_pending(&self) -> usize {
        self.0.work.lock().unwrap().len()
    }

    /// Number of callbacks given to `call_rcu_head` that have not run yet.
    pub fn rcu_callbacks_pending(&self) -> usize {
        self.0.rcu_callbacks.lock().unwrap().len()
    }

    /// Moves the clock of caller tracking ([`Platform::jiffies`]) on by `ticks`.
    pub fn advance_jiffies(&self, ticks: u64) {
        self.0.jiffies.fetch_add(ticks, Ordering::Relaxed);
    }

    /// Number of reports passed to [`Platform::slab_error`].
    pub fn error_count(&self) -> usize {
        self.0.errors.load(Ordering::Relaxed)
    }

    fn page_index(&self, addr: usize) -> Option<usize> {
        let off = addr.wrapping_sub(self.0.base);
        (off < self.0.len).then_some(off >> PAGE_SHIFT)
    }

    fn alloc_on_node(&self, order: u32, node: usize) -> Option<usize> {
        let mut sets = self.0.free[node].lock().unwrap();
        let o = order as usize;
        let j = (o..sets.len()).find(|&j| !sets[j].is_empty())?;
        let idx = sets[j].pop_first()?;
        for k in (o..j).rev() {
            sets[k].insert(idx + (1 << k));
        }
        Some(node * self.0.cfg.pages_per_node + idx)
    }
}

// SAFETY: `pin` returns the id registered for this thread, unique per platform; `pin_fast`
// returns that id's `cpu_slot`, or 0: `FAST_SLOT[n]` is non-zero only while the thread holds a
// registration with the platform numbered `n`, which keeps that platform alive (numbers are
// unique among live platforms) and is cleared when the registration is dropped; blocks are
// naturally aligned buddy blocks owned by the caller; owners are cleared by the allocator
// before a block is reused and read as 0 outside the arena; descriptor storage is per page;
// queued heads are popped, then run, once each (`synchronize_rcu`, `run_work`), and
// `rcu_barrier` runs grace periods until none is queued.
unsafe impl Platform for HostPlatform {
    type Guard = HostGuard;
    type FastGuard = HostGuard;

    fn nr_cpus(&self) -> usize {
        self.0.cfg.cpus
    }

    fn nr_nodes(&self) -> usize {
        self.0.cfg.nodes
    }

    fn cpu_to_node(&self, cpu: usize) -> usize {
        cpu % self.0.cfg.nodes
    }

    #[inline(always)]
    fn pin(&self) -> (HostGuard, usize) {
        let (key, cpu) = CURRENT.with(|c| c.get());
        if key != self.1 {
            not_registered();
        }
        (HostGuard(PhantomData), cpu)
    }

    #[inline(always)]
    fn pin_held(&self) -> HostGuard {
        // No interrupts on the host: the thread holding the slot is all there is.
        HostGuard(PhantomData)
    }

    #[inline(always)]
    fn sheaves_usable(&self, _guard: &HostGuard) -> bool {
        !SHEAVES_TAKEN.with(Cell::get)
    }

    #[inline(always)]
    fn pin_fast(&self) -> (HostGuard, usize) {
        // SAFETY: a platform's number is below `FAST_IDS` (`FastId::take`).
        let slot = FAST_SLOT.with(|f| unsafe { f.get_unchecked(self.2.0 as usize) }.get());
        (HostGuard(PhantomData), slot as usize)
    }

    fn alloc_pages(&self, order: u32, node: usize, _gfp: Gfp) -> Option<NonNull<u8>> {
        if order > MAX_PAGE_ORDER {
            return None;
        }
        let n = 1usize << order;
        let used = self.0.pages_in_use.fetch_add(n, Ordering::Relaxed);
        if used + n > self.0.page_limit.load(Ordering::Relaxed) {
            self.0.pages_in_use.fetch_sub(n, Ordering::Relaxed);
            return None;
        }
        let nodes = self.0.cfg.nodes;
        let page = (0..nodes).find_map(|i| self.alloc_on_node(order, (node + i) % nodes));
        match page {
            Some(p) => NonNull::new((self.0.base + (p << PAGE_SHIFT)) as *mut u8),
            None => {
                self.0.pages_in_use.fetch_sub(n, Ordering::Relaxed);
                None
            }
        }
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, order: u32) {
        let page = self
            .page_index(ptr.as_ptr() as usize)
            .expect("free_pages outside the arena");
        let ppn = self.0.cfg.pages_per_node;
        let (node, mut idx) = (page / ppn, page % ppn);
        let mut o = order as usize;
        let mut sets = self.0.free[node].lock().unwrap();
        while o < MAX_PAGE_ORDER as usize {
            let buddy = idx ^ (1 << o);
            if !sets[o].remove(&buddy) {
                break;
            }
            idx = idx.min(buddy);
            o += 1;
        }
        sets[o].insert(idx);
        self.0.pages_in_use.fetch_sub(1 << order, Ordering::Relaxed);
    }

    unsafe fn call_rcu_head(&self, head: NonNull<RcuHead>, func: RcuFunc) {
        // SAFETY: the caller hands the head over until `func` runs, at a later grace period.
        unsafe {
            CallbackHead::set_func(head, func);
            self.0.rcu_callbacks.lock().unwrap().push_back(head);
        }
    }

    unsafe fn queue_work_head(&self, head: NonNull<CallbackHead>, func: CallbackFunc) {
        // SAFETY: the caller hands the head over (it is not queued already) until `func` runs,
        // from `run_work`.
        unsafe {
            CallbackHead::set_func(head, func);
            self.0.work.lock().unwrap().push_back(head);
        }
    }

    fn flush_work(&self) {
        self.run_work();
    }

    fn rcu_barrier(&self) {
        while self.rcu_callbacks_pending() > 0 {
            self.synchronize_rcu();
        }
    }

    unsafe fn free_pages_rcu(&self, ptr: NonNull<u8>, order: u32) {
        self.0
            .rcu_pending
            .lock()
            .unwrap()
            .push((ptr.as_ptr() as usize, order));
    }

    fn page_node(&self, addr: usize) -> usize {
        self.page_index(addr)
            .map_or(0, |p| p / self.0.cfg.pages_per_node)
    }

    unsafe fn set_page_owner(&self, ptr: NonNull<u8>, order: u32, owner: usize) {
        let page = self
            .page_index(ptr.as_ptr() as usize)
            .expect("set_page_owner outside the arena");
        for o in &self.0.owners[page..page + (1 << order)] {
            o.store(owner, Ordering::Release);
        }
    }

    #[inline(always)]
    fn page_owner(&self, addr: usize) -> usize {
        let t = &self.3;
        let off = addr.wrapping_sub(t.base);
        if off >= t.len {
            return 0;
        }
        // SAFETY: `off < len`, so the page index is below the number of pages, the length of
        // `owners`, which the handle's `Arc` keeps alive.
        unsafe { t.owners.add(off >> PAGE_SHIFT).as_ref() }.load(Ordering::Acquire)
    }

    fn slab_meta(&self, page: NonNull<u8>) -> NonNull<Slab> {
        let p = self
            .page_index(page.as_ptr() as usize)
            .expect("slab_meta outside the arena");
        NonNull::new(self.0.meta[p].0.get().cast::<Slab>()).expect("non-null cell")
    }

    fn slab_error(&self, _report: &SlabReport) {
        self.0.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A stand-in for the kernel's: the pid is 1000 plus the CPU, the time the platform's
    /// clock, and the "stack" of a caller `a` is `[a, a + 0x10]` (kept once, as a depot does).
    fn fill_track(&self, track: &mut crate::Track) {
        track.pid = 1000 + track.cpu;
        track.when = self.jiffies();
        if track.addr != 0 {
            let stack = [track.addr, track.addr + 0x10];
            let mut stacks = self.0.stacks.lock().unwrap();
            let i = match stacks.iter().position(|s| *s == stack) {
                Some(i) => i,
                None => {
                    stacks.push(stack);
                    stacks.len() - 1
                }
            };
            track.handle = i as u32 + 1;
        }
    }

    fn jiffies(&self) -> u64 {
        self.0.jiffies.load(Ordering::Relaxed)
    }

    fn stack_frames(&self, handle: u32, f: &mut dyn FnMut(usize)) {
        let stacks = self.0.stacks.lock().unwrap();
        if let Some(stack) = (handle as usize).checked_sub(1).and_then(|i| stacks.get(i)) {
            stack.iter().for_each(|&a| f(a));
        }
    }

    fn slab_sysfs(&self) -> Option<crate::platform::SlabSysfs<'_>> {
        Some(crate::platform::SlabSysfs {
            sysfs: &self.0.sysfs,
            kset: self.0.slab_kset,
        })
    }
}

impl HostPlatform {
    /// The platform's sysfs tree (the caches are under `/kernel/slab`).
    pub fn sysfs(&self) -> &kobject::Sysfs {
        &self.0.sysfs
    }
}

#[cold]
#[inline(never)]
fn not_registered() -> ! {
    panic!("this thread is not registered as a CPU of this HostPlatform (call register_cpu)")
}
