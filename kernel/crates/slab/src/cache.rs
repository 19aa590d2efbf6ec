//! `struct kmem_cache`: one cache of equally sized objects, and its fast paths.
//!
//! ```text
//!            CPU 0                    CPU 1
//!   main [o o o o _ _]       main [o _ _ _ _ _]     <- fast paths: pop / push, no lock
//!   spare[o o o o o o]       spare (none)
//!              \                 /
//!               barn of node 0: ≤10 full, ≤10 empty sheaves   <- one lock per sheaf traded
//!                      |
//!          node 0 lists: partial slabs (free lists)           <- list_lock, per object
//!                      |
//!               page source (Platform::alloc_pages)
//! ```
//!
//! The fast paths ([`KmemCache::alloc`], [`KmemCache::free`]) pin the CPU, look at the CPU's
//! `main` sheaf and pop or push one pointer: no shared lock, no atomic read-modify-write. Every
//! other case is in a `#[cold]` slow path in [`sheaves`], which trades sheaves with the
//! spare, the barn or the slabs (`cache/slabs.rs`, on the [`crate::slabs`] types).
//!
//! This file also holds the raw primitives the slow paths build on in safe code: a CPU's
//! sheaves under a pin (`KmemCache::pcs`, or every CPU's with the cache to oneself,
//! `Exclusive`), the `#[cold]` entry points that turn the fast paths' slot into a pin, the
//! memory of sheaves (`alloc_empty_sheaf`, `free_sheaf`), handing an object out (zeroing it),
//! and the `unsafe` free entry points that make a `FreeObject` of a caller's pointer. Its
//! children `cache/rcu_heads.rs` (handing sheaves and lone objects to RCU on heads,
//! `call_rcu_sheaf` and `call_rcu_object`, with their callbacks, which find the cache again;
//! the `kfree_rcu` entry points) and `cache/bulk.rs` (`alloc_bulk`, `free_bulk`) hold the
//! other raw parts.
//!
//! ## What the fast path costs
//! Counted with callgrind (`examples/count_fastpath.sh`, host, release): an allocation
//! followed by a free of the same object, both hitting the main sheaf, is **52 instructions**
//! through a non-inlined pair function with the default free checks (`cache`), 36 without
//! them (`cache-nohardened`; 34 before the checks existed, whose flag is now tested). Per
//! operation:
//!
//! | part | instructions |
//! |------|-------------:|
//! | `pin_fast()`: the CPU's slot (platform number, thread-local slot; in the kernel a `gs` load) | 2-3 |
//! | the CPU's `main` sheaf pointer, stored inside the cache at the slot's byte offset (one load) | 1 |
//! | sheaf `size` against 0 (alloc) or `push_limit` (free): load, compare, branch | 3 |
//! | pop / push: object load or store, new size, store | 3-4 |
//! | free only: the object against the top of the sheaf (naive double free) | 2 |
//! | `alloc_fastpath` / `free_fastpath` statistic, in the CPU's slot | 1 |
//! | free only: the checks' flag (`SLAB_HARDENED_FREE`), test and branch | 2 |
//! | free only, checks on: page owner (host: range check and load), slab or not (signed test) | 9 |
//! | free only, checks on: the slab's cache against this one, the object boundary (`ObjIndex`: subtract, multiply, compare) | 7 |
//!
//! `kmalloc` and `kfree` inline these paths (`KmemCache::alloc_unzeroed`,
//! `KmemCache::free_pinned`) and add the size class (a table up to 192 bytes) and the page
//! owner of the address (one signed test tells a slab), which `kfree` needs anyway, so its
//! checks are the flag and the boundary: 58 instructions per kmalloc+kfree pair through a call
//! with the size known at run time (53 with `slab_nohardened`, 51 before the checks; see
//! `crate::kmalloc`). Both pin with the allocator's platform before they know the cache, so
//! the per-CPU lookup does not wait for the cache pointer.
//! Keeping the per-CPU sheaves inside the cache (not behind a pointer to an array) saves a
//! load per operation, and a slot that is already a byte offset saves a multiply. Each CPU's
//! entry fills a cache line of its own: when CPUs' `main` pointers shared a line, every sheaf
//! exchange on one CPU took that line away from the others' fast paths. `push_limit` keeps the
//! multi-node "is this object remote?" test off the single-node free path. Measured time on the
//! host: about 3 ns per pair (`examples/bench/`).

use alloc::boxed::Box;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::barn::Barn;
use crate::base::{Gfp, PAGE_SIZE, get_order, slot_cpu};
use crate::flags::{Ctor, KmemCacheArgs, SlabFlags};
use crate::head::CallbackHead;
use crate::layout::{
    Layout, LayoutError, ObjIndex, SHEAF_HEADER, WORD, calculate_sizes, default_sheaf_capacity,
    min_partial, round_sheaf_capacity,
};
use crate::name::CacheName;
use crate::platform::{OnCpu, Pinned, Platform};
use crate::report::{ReportLog, SlabReport};
use crate::sheaf::{NOT_OVERSIZE, PerCpu, PerCpuSheaves, Sheaf, SheafBox, SheafUnion, SheafWords};
use crate::slabs::{FreeObject, KmemCacheNode, PageOwner};
use crate::stats::{CpuStats, PaddedStats, Stat};
use crate::sync::Mutex;
use destroy::DestroyLink;

mod bulk;
pub mod debug;
pub(crate) mod destroy;
mod info;
pub use info::{CpuSheaves, SlabInfo};
mod prefill;
pub mod rcu_free;
mod rcu_heads;
pub mod sheaves;
mod shrink;
mod slabs;
mod sysfs_active;

/// Why a cache could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabError {
    /// The size, alignment or offsets are unusable.
    Layout(LayoutError),
    /// Memory for the cache's structures could not be obtained.
    NoMemory,
    /// The platform has more CPUs than [`MAX_CPUS`].
    TooManyCpus,
    /// [`crate::SlabAllocator::kmem_cache_setup`] of a static cache that is set up already.
    AlreadySetUp,
}

// The most CPUs a cache serves (the kernel's limit, from the `consts` crate). The `main` sheaf
// pointers of all of them live inside the cache itself, so the fast path reaches its CPU's
// sheaf with one load from the cache instead of two (array pointer, then entry).
pub use consts::MAX_CPUS;

/// A cache of objects of one size (Linux's `struct kmem_cache`).
///
/// Created by [`crate::SlabAllocator::kmem_cache_create`]; shared by reference between CPUs.
pub struct KmemCache<P: Platform> {
    // Hot: read by the fast paths.
    /// Each CPU's sheaves, one cache line per CPU (so that a CPU changing its `main` sheaf
    /// does not steal the line other CPUs' fast paths read), inside the cache so that the fast
    /// path finds its `main` sheaf with one load. CPU `cpu` is at index `cpu + 1`, the byte
    /// offset [`Platform::pin_fast`] returns; index 0 always holds the static zero-capacity
    /// sheaf, which sends "CPU unknown" to the slow paths.
    pub(crate) cpu_sheaves: [PerCpu; MAX_CPUS + 1],
    /// Per-CPU statistics, apart from the sheaves to keep the hot slot small.
    pub(crate) cpu_stats: Box<[PaddedStats]>,
    pub(crate) platform: P,
    pub(crate) multi_node: bool,
    object_size: AtomicUsize,
    /// The object-boundary test of the free fast path ([`ObjIndex`]).
    pub(crate) obj_index: ObjIndex,
    // Cold.
    pub(crate) debug: bool,
    pub(crate) flags: SlabFlags,
    pub(crate) layout: Layout,
    pub(crate) random: usize,
    pub(crate) ctor: Option<Ctor>,
    pub(crate) useroffset: usize,
    pub(crate) usersize: usize,
    pub(crate) min_partial: usize,
    pub(crate) sheaf_capacity: usize,
    pub(crate) explicit_capacity: bool,
    pub(crate) nodes: Box<[KmemCacheNode]>,
    pub(crate) barns: Box<[Barn]>,
    /// Where this cache's sheaves come from: a private cache without sheaves.
    pub(crate) sheaf_cache: Option<Box<KmemCache<P>>>,
    /// Number of names (creator plus aliases) using the cache.
    pub(crate) refcount: AtomicUsize,
    /// `show`/`store` calls of the cache's sysfs files running now, and whether the destroy
    /// has drained them ([`Self::sysfs_drain`], `cache/sysfs_active.rs`).
    pub(crate) sysfs_active: AtomicUsize,
    /// The cache's identity, never reused by another cache (a cache made later at the same
    /// address gets another one): what a [`crate::PrefilledSheaf`] names its cache by.
    pub(crate) serial: u64,
    /// Prefilled sheaves handed out and not returned: destroy refuses while there are any.
    pub(crate) prefilled: AtomicUsize,
    /// The cache's name: borrowed from the kernel image, or a copy freed with the cache
    /// ([`CacheName`], `kstrdup_const`).
    name: CacheName,
    pub(crate) reports: Mutex<ReportLog>,
    pub(crate) isolated: AtomicUsize,
    /// The objects isolated one by one (debug caches), so that a second free of one is known.
    pub(crate) isolated_objs: Mutex<alloc::collections::BTreeSet<usize>>,
    /// Set by the first `kfree_rcu` on the cache: only then must destruction wait for RCU.
    pub(crate) rcu_used: AtomicBool,
    /// The work item of the asynchronous destroy (the RFC's `async_destroy_work`), queued with
    /// [`Platform::queue_work_head`] by a destroy that finds objects in `kfree_rcu` flight.
    pub(crate) async_destroy_work: CallbackHead,
    /// Releases a `SLAB_TYPESAFE_BY_RCU` cache a grace period after its shutdown
    /// ([`Platform::call_rcu_head`]; Linux's `slab_caches_to_rcu_destroy`).
    pub(crate) rcu_head: CallbackHead,
    /// Where the cache is linked while its destruction is pending.
    pub(crate) destroy_link: DestroyLink<P>,
    /// The cache's kobject: its directory in `/sys/kernel/slab`, and the count whose last
    /// `put` frees the cache (see [`crate::sysfs`]).
    pub(crate) kobj: kobject::KObject,
    /// A static cache's owner (a module's kobject), pinned until the cache's final release.
    pub(crate) owner: Option<&'static kobject::KObject>,
    /// The primary cache whose storage (slabs, sheaves) this cache uses, null if this cache is
    /// its own primary (`primary_cache` of the maintainer's proposal). Only static caches set
    /// up when a compatible primary existed are aliases with a structure of their own; their
    /// operations go to the primary (see [`Self::primary`]).
    pub(crate) primary: core::sync::atomic::AtomicPtr<KmemCache<P>>,
}

// SAFETY: per-CPU sheaves are only touched by the CPU they belong to while it is pinned (or by
// destruction, when nobody else uses the cache); the destroy link only under its list's lock;
// the heads only by whoever queued them; everything else is behind locks or atomics.
unsafe impl<P: Platform> Sync for KmemCache<P> {}
// SAFETY: as above; the raw pointers are owned by the cache.
unsafe impl<P: Platform> Send for KmemCache<P> {}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The next cache's [`KmemCache::serial`] (64 bits: never wraps in practice).
static CACHE_SERIAL: AtomicU64 = AtomicU64::new(0);

impl<P: Platform> KmemCache<P> {
    /// Builds a cache (the work of `do_kmem_cache_create`); registration and merging are done
    /// by [`crate::SlabAllocator`]. `with_sheaves == false` forces capacity 0 (sheaf caches).
    pub(crate) fn new(
        platform: P,
        name: CacheName,
        size: usize,
        args: &KmemCacheArgs,
        flags: SlabFlags,
        with_sheaves: bool,
    ) -> Result<Box<Self>, SlabError> {
        let mut cache = Box::new(Self::build(
            platform,
            name,
            size,
            args,
            flags,
            with_sheaves,
        )?);
        cache.init_sheaves();
        Ok(cache)
    }

    /// The cache's structure, without its CPUs' sheaves: those record the cache's address, so
    /// [`Self::init_sheaves`] gives them once the structure is where it stays (a box, or a
    /// static's storage). Inlined so that the (large) structure is built where it goes, not
    /// copied through the stack (loom's small coroutine stacks overflowed).
    #[inline(always)]
    pub(crate) fn build(
        platform: P,
        name: CacheName,
        size: usize,
        args: &KmemCacheArgs,
        flags: SlabFlags,
        with_sheaves: bool,
    ) -> Result<Self, SlabError> {
        let nr_cpus = platform.nr_cpus();
        if nr_cpus > MAX_CPUS {
            return Err(SlabError::TooManyCpus);
        }
        let nr_nodes = platform.nr_nodes();
        let layout = calculate_sizes(size, args, flags, nr_cpus).map_err(SlabError::Layout)?;
        let debug = flags.intersects(SlabFlags::SLAB_DEBUG_FLAGS);
        let sheaf_capacity = if debug || !with_sheaves {
            0
        } else {
            round_sheaf_capacity(default_sheaf_capacity(size).max(args.sheaf_capacity))
                .ok_or(SlabError::Layout(LayoutError::BadSheafCapacity))?
        };
        let sheaf_cache = if sheaf_capacity > 0 {
            let bytes = SHEAF_HEADER + sheaf_capacity * WORD;
            let args = KmemCacheArgs::default();
            Some(KmemCache::new(
                platform.clone(),
                CacheName::from_static("kmem_cache_sheaf"),
                bytes,
                &args,
                SlabFlags::SLAB_NO_MERGE,
                false,
            )?)
        } else {
            None
        };
        let cpu_sheaves = core::array::from_fn(|slot| {
            PerCpu::new(match slot {
                1.. if slot <= nr_cpus => platform.cpu_to_node(slot - 1),
                _ => 0,
            })
        });
        let serial = CACHE_SERIAL.fetch_add(1, Ordering::Relaxed);
        // The free fast path's boundary test assumes objects start at the slab's first byte,
        // which only a debug cache (left red zone) does not do; such caches have no sheaves,
        // so their frees never take the fast path.
        debug_assert!(sheaf_capacity == 0 || layout.red_left_pad == 0);
        Ok(Self {
            cpu_sheaves,
            cpu_stats: (0..nr_cpus)
                .map(|_| PaddedStats(CpuStats::default()))
                .collect(),
            multi_node: nr_nodes > 1,
            object_size: AtomicUsize::new(size),
            obj_index: ObjIndex::new(layout.size),
            debug,
            flags,
            layout,
            random: splitmix64(platform.random_seed() ^ serial.rotate_left(32)) as usize,
            serial,
            prefilled: AtomicUsize::new(0),
            ctor: args.ctor,
            useroffset: args.useroffset,
            usersize: args.usersize,
            min_partial: min_partial(layout.size),
            sheaf_capacity,
            explicit_capacity: args.sheaf_capacity != 0,
            nodes: (0..nr_nodes).map(|_| KmemCacheNode::new()).collect(),
            barns: (0..nr_nodes).map(|_| Barn::new()).collect(),
            sheaf_cache,
            refcount: AtomicUsize::new(1),
            sysfs_active: AtomicUsize::new(0),
            name,
            reports: Mutex::new(ReportLog::new()),
            isolated: AtomicUsize::new(0),
            isolated_objs: Mutex::new(alloc::collections::BTreeSet::new()),
            rcu_used: AtomicBool::new(false),
            async_destroy_work: CallbackHead::new(),
            rcu_head: CallbackHead::new(),
            destroy_link: DestroyLink::new(),
            kobj: kobject::KObject::new(),
            owner: args.owner,
            primary: core::sync::atomic::AtomicPtr::new(ptr::null_mut()),
            platform,
        })
    }

    /// Gives every CPU its main sheaf (`init_percpu_sheaves`). If memory is short a CPU keeps
    /// the static empty sheaf and simply works without sheaves. The cache is where it stays.
    pub(crate) fn init_sheaves(&mut self) {
        if self.sheaf_capacity == 0 {
            return;
        }
        for cpu in 0..self.platform.nr_cpus() {
            let node = self.platform.cpu_to_node(cpu);
            if let Some(s) = self.alloc_empty_sheaf(node, Gfp::KERNEL) {
                self.cpu_sheaves[cpu + 1].main.get_mut().put(s);
            }
        }
    }

    /// The per-CPU slot at byte offset `slot` (a fast path's `pin_fast` result).
    ///
    /// # Safety
    /// As for [`Self::main_slot`].
    #[inline(always)]
    pub(crate) unsafe fn slot(&self, slot: usize) -> &PerCpu {
        // SAFETY: the offset is that of an element of the array (caller contract).
        unsafe { &*self.cpu_sheaves.as_ptr().byte_add(slot) }
    }

    /// Where the main sheaf pointer of the CPU at byte offset `slot` of
    /// [`Self::cpu_sheaves`] is stored.
    ///
    /// # Safety
    /// `slot` is `0` or `(cpu + 1) * CPU_SLOT_BYTES` for a `cpu < nr_cpus`, as returned by
    /// [`Platform::pin_fast`].
    #[inline(always)]
    pub(crate) unsafe fn main_slot(&self, slot: usize) -> *mut *mut Sheaf {
        // SAFETY: the caller guarantees the offset is that of an element of the array (whose
        // elements are `CPU_SLOT_BYTES` long): a byte offset saves the fast path a multiply.
        // A `MainSheaf` is a transparent non-null sheaf pointer.
        unsafe {
            let cpu = self.cpu_sheaves.as_ptr().byte_add(slot);
            (*cpu).main.get().cast()
        }
    }

    /// The sheaves of the CPU this context is pinned to (`this_cpu_ptr(s->cpu_sheaves)`),
    /// until the result is dropped. Panics if they are already borrowed (a slow path that
    /// re-entered itself on the same cache: a bug).
    pub(crate) fn pcs<'a>(&'a self, on: OnCpu<'a>) -> PerCpuSheaves<'a> {
        // SAFETY: pinned to `on.cpu()` for `'a`: only this context uses that CPU's slot (the
        // other user of a slot, destruction, has the cache to itself).
        unsafe { self.cpu_sheaves[on.cpu() + 1].borrow() }
    }

    /// Claims that no other context uses the cache any more, which lets the caller reach
    /// every CPU's sheaves (cache destruction).
    ///
    /// # Safety
    /// While the result lives, no other context uses the cache (nor frees its objects).
    pub(crate) unsafe fn assume_exclusive(&self) -> Exclusive<'_, P> {
        Exclusive(self)
    }

    /// Allocation slow path: `main` of `slot` (from [`Platform::pin_fast`]) is empty, or
    /// `slot` is 0 and the CPU still has to be asked for with [`Platform::pin`].
    ///
    /// It runs pinned (`pin`, or `pin_held` when the caller's fast-path guard holds the CPU's
    /// sheaves): in the kernel that keeps interrupts out while the slow path takes node-list
    /// and barn locks, which an interrupt handler on this CPU may want too.
    ///
    /// An alias forwards to its primary (it has no sheaves, so every allocation comes here). A
    /// debug kmalloc cache records `orig_size`, the size `kmalloc` was asked for (see
    /// [`Self::alloc_slow_debug`]; debug caches have no sheaves either), so the fast path keeps
    /// no register for the size. Both tests come before any call, so that the common slow path
    /// keeps nothing across its call and the alias's path nothing but its primary.
    #[cold]
    #[inline(never)]
    fn alloc_slow(
        &self,
        slot: usize,
        gfp: Gfp,
        caller: usize,
        orig_size: usize,
    ) -> Option<NonNull<u8>> {
        if let Some(p) = self.alias_of() {
            return p.alloc_caller(gfp, caller);
        }
        if self.debug {
            return self.alloc_slow_debug(slot, gfp, caller, orig_size);
        }
        self.alloc_slow_object(slot, gfp, caller)
            .map(FreeObject::into_allocated)
    }

    /// [`Self::alloc_slow`] of a debug cache: the object, then the record of the size asked
    /// for (`set_orig_size`: a kmalloc cache with `SLAB_STORE_USER` or `SLAB_RED_ZONE` keeps it
    /// and red-zones the rest; other caches ignore it).
    #[inline(never)]
    fn alloc_slow_debug(
        &self,
        slot: usize,
        gfp: Gfp,
        caller: usize,
        orig_size: usize,
    ) -> Option<NonNull<u8>> {
        let obj = self.alloc_slow_object(slot, gfp, caller)?.into_allocated();
        self.set_orig_size(obj.as_ptr(), orig_size);
        Some(obj)
    }

    /// The object of [`Self::alloc_slow`] for a primary: the CPU's sheaves refilled, or the
    /// slabs.
    #[inline(always)]
    fn alloc_slow_object(&self, slot: usize, gfp: Gfp, caller: usize) -> Option<FreeObject> {
        if slot != 0 {
            let _irq = self.platform.pin_held();
            // SAFETY: `slot` came from `pin_fast`, whose guard the caller holds for the call:
            // the CPU's sheaves are this context's.
            let on = unsafe { OnCpu::new(slot_cpu(slot)) };
            return self.alloc_refill(on, gfp, caller);
        }
        self.alloc_unpinned(gfp, caller)
    }

    /// The allocation slow path when `pin_fast` gave no slot: pins, and allocates through
    /// this CPU's sheaves or, if a fast path this context interrupted holds them, from the
    /// slabs.
    #[cold]
    #[inline(never)]
    fn alloc_unpinned(&self, gfp: Gfp, caller: usize) -> Option<FreeObject> {
        let pin = Pinned::new(&self.platform);
        match pin.on_cpu() {
            Some(on) => self.alloc_pinned(on, gfp, caller),
            None => self.alloc_without_sheaves(pin.cpu(), gfp, caller),
        }
    }

    /// An allocation that must leave its CPU's sheaves alone (it interrupted a fast path
    /// that holds them): one object straight from the slabs of the CPU's node, as Linux
    /// falls back when `local_trylock` fails.
    fn alloc_without_sheaves(&self, cpu: usize, gfp: Gfp, caller: usize) -> Option<FreeObject> {
        self.cpu_stats[cpu].add(Stat::AllocSlowpath, 1);
        let mut one = [None];
        self.alloc_from_slabs(self.platform.cpu_to_node(cpu), gfp, &mut one, caller);
        one[0].take()
    }

    /// Free slow path: `main` of `slot` (from [`Platform::pin_fast`]) is full (or absent),
    /// the cache is on a multi-node machine (remote-node test), or `slot` is 0 and the CPU
    /// still has to be asked for with [`Platform::pin`]. Pinned, as [`Self::alloc_slow`].
    #[cold]
    #[inline(never)]
    fn free_slow(&self, slot: usize, obj: FreeObject, caller: usize) -> Result<(), SlabReport> {
        if let Some(p) = self.alias_of() {
            // SAFETY: the caller gave the object up; it is the primary's (an alias allocates
            // from it).
            return unsafe { p.free_caller(obj.into_allocated(), caller) };
        }
        if slot != 0 {
            let _irq = self.platform.pin_held();
            // SAFETY: `slot` came from `pin_fast`, whose guard the caller holds for the call.
            let on = unsafe { OnCpu::new(slot_cpu(slot)) };
            return self.free_flush(on, obj, caller);
        }
        self.free_unpinned(obj, caller)
    }

    /// The free slow path when `pin_fast` gave no slot: pins, and frees through this CPU's
    /// sheaves or, if a fast path this context interrupted holds them, to the slabs.
    #[cold]
    #[inline(never)]
    fn free_unpinned(&self, obj: FreeObject, caller: usize) -> Result<(), SlabReport> {
        let pin = Pinned::new(&self.platform);
        match pin.on_cpu() {
            Some(on) => self.free_flush(on, obj, caller),
            None => self.free_without_sheaves(pin.cpu(), obj, caller),
        }
    }

    /// Frees an object the allocator holds the token of (`kmem_cache_free` from inside the
    /// allocator, e.g. an RCU callback).
    pub(crate) fn free_object(&self, obj: FreeObject) -> Result<(), SlabReport> {
        // SAFETY: the token says the object is an unused object of this cache (or one the
        // slab checks reject), which is `free`'s contract.
        unsafe { self.free(obj.into_allocated()) }
    }

    /// Hands `obj` out to a caller, zeroed if `gfp` asks for it.
    pub(crate) fn hand_out(&self, obj: FreeObject, gfp: Gfp) -> NonNull<u8> {
        let obj = obj.into_allocated();
        if gfp.contains(Gfp::ZERO) {
            // SAFETY: the object was free and is now the caller's, `object_size` bytes long.
            unsafe { obj.as_ptr().write_bytes(0, self.object_size()) };
        }
        obj
    }

    /// The `push_limit` of this cache's sheaves of `capacity` (see [`Sheaf::push_limit`]).
    pub(crate) fn push_limit(&self, capacity: usize) -> u32 {
        if self.multi_node { 0 } else { capacity as u32 }
    }

    /// The header of a new empty sheaf of this cache.
    fn sheaf_header(&self, capacity: usize, node: usize, oversize_order: u32) -> Sheaf {
        Sheaf {
            size: 0,
            node: node as u32,
            cache: self as *const Self as usize,
            u: SheafUnion {
                words: SheafWords {
                    capacity: capacity as u32,
                    oversize_order,
                    push_limit: self.push_limit(capacity),
                    _reserved: 0,
                },
            },
        }
    }

    /// Allocates an empty sheaf of this cache's capacity from its sheaf cache
    /// (`alloc_empty_sheaf`).
    pub(crate) fn alloc_empty_sheaf(&self, node: usize, gfp: Gfp) -> Option<SheafBox> {
        let sc = self.sheaf_cache.as_ref()?;
        let mem = sc.alloc(gfp)?;
        let header = self.sheaf_header(self.sheaf_capacity, node, NOT_OVERSIZE);
        // SAFETY: an object of the sheaf cache is ours, word aligned, and exactly a header and
        // `sheaf_capacity` pointers long.
        let s = unsafe { SheafBox::init(mem, header) };
        self.stat_add(Stat::SheafAlloc, 1);
        Some(s)
    }

    /// Allocates an oversize sheaf for `capacity` objects from whole pages.
    pub(crate) fn alloc_oversize_sheaf(
        &self,
        capacity: usize,
        node: usize,
        gfp: Gfp,
    ) -> Option<SheafBox> {
        let order = get_order(SHEAF_HEADER + capacity * WORD);
        let mem = self.platform.alloc_pages(order, node, gfp)?;
        let header = self.sheaf_header(capacity, node, order);
        // SAFETY: the block is ours, page aligned, and holds the header and `capacity`
        // pointers.
        let s = unsafe { SheafBox::init(mem, header) };
        self.stat_add(Stat::SheafAlloc, 1);
        Some(s)
    }

    /// Frees an empty sheaf of this cache (`free_empty_sheaf`).
    pub(crate) fn free_sheaf(&self, s: SheafBox) {
        debug_assert!(s.is_empty());
        let order = s.oversize_order();
        let mem = s.into_raw().cast::<u8>();
        match order {
            None => {
                let sc = self
                    .sheaf_cache
                    .as_ref()
                    .expect("regular sheaf implies a sheaf cache");
                // SAFETY: a regular sheaf of this cache is an object of its sheaf cache, and
                // the box was its only owner.
                let _ = unsafe { sc.free(mem) };
            }
            // SAFETY: an oversize sheaf is a block of `order` pages, and the box was its
            // only owner.
            Some(order) => unsafe { self.platform.free_pages(mem, order) },
        }
        self.stat_add(Stat::SheafFree, 1);
    }

    /// Records that the cache was given to `kfree_rcu`: from now on its destruction waits for
    /// RCU callbacks, which is what keeps the cache alive for those queued below.
    pub(crate) fn mark_rcu_used(&self) {
        // Read first: after the first call the line stays shared instead of bouncing.
        if !self.rcu_used.load(Ordering::Relaxed) {
            self.rcu_used.store(true, Ordering::Relaxed);
        }
    }

    /// Adds `n` to statistic `stat` of the current CPU.
    pub(crate) fn stat_add(&self, stat: Stat, n: u64) {
        let (_guard, cpu) = self.platform.pin();
        self.cpu_stats[cpu].add(stat, n);
    }

    /// Allocates one object (`kmem_cache_alloc`). `None` when out of memory.
    #[doc(alias = "kmem_cache_alloc")]
    #[inline]
    pub fn alloc(&self, gfp: Gfp) -> Option<NonNull<u8>> {
        self.alloc_caller(gfp, 0)
    }

    /// Allocates one zeroed object (`kmem_cache_zalloc`).
    #[doc(alias = "kmem_cache_zalloc")]
    #[inline]
    pub fn zalloc(&self, gfp: Gfp) -> Option<NonNull<u8>> {
        self.alloc_caller(gfp | Gfp::ZERO, 0)
    }

    /// Allocates one object, recording `caller` in `SLAB_STORE_USER` caches.
    ///
    /// The fast path: pop the CPU's main sheaf. Everything else is the `#[cold]` `alloc_slow`,
    /// which pins and goes on in [`sheaves`].
    #[inline]
    pub fn alloc_caller(&self, gfp: Gfp, caller: usize) -> Option<NonNull<u8>> {
        // SAFETY: the pin is of the cache's own platform.
        let obj =
            unsafe { self.alloc_unzeroed(self.platform.pin_fast(), gfp, caller, usize::MAX) }?;
        if gfp.contains(Gfp::ZERO) {
            // SAFETY: the object is ours and `object_size` bytes long.
            unsafe { obj.as_ptr().write_bytes(0, self.object_size()) };
        }
        Some(obj)
    }

    /// [`Self::alloc_caller`] without the zeroing, for `kmalloc` of `orig_size` bytes (which a
    /// debug kmalloc cache records, on the slow path where all its allocations go; other
    /// callers pass `usize::MAX`, the whole object). What `kmalloc` inlines.
    ///
    /// `pin` is what [`Platform::pin_fast`] returned: `kmalloc` asks its allocator's platform,
    /// which it has at hand before it knows the cache, so that the per-CPU lookup does not
    /// wait for the cache's pointer.
    ///
    /// # Safety
    /// `pin` comes from `pin_fast` of this cache's platform or of a clone of it (the same CPUs
    /// and slots), and its guard is not dropped before.
    #[inline(always)]
    pub(crate) unsafe fn alloc_unzeroed(
        &self,
        pin: (P::FastGuard, usize),
        gfp: Gfp,
        caller: usize,
        orig_size: usize,
    ) -> Option<NonNull<u8>> {
        let (guard, slot) = pin;
        // SAFETY: `pin_fast` returns a slot in bounds: 0 (the static empty sheaf) or a CPU we
        // are pinned to, so its sheaves are ours until `guard` drops.
        let main = unsafe { *self.main_slot(slot) };
        // SAFETY: `main` is always a valid sheaf; a non-zero size means it is a real one of
        // our CPU and slot `size - 1` holds an object.
        let obj = unsafe {
            let size = (*main).size;
            if size != 0 {
                (*main).size = size - 1;
                PerCpu::count(&self.slot(slot).alloc_fast);
                *Sheaf::objects(main).add(size as usize - 1)
            } else {
                self.alloc_slow(slot, gfp, caller, orig_size)?.as_ptr()
            }
        };
        drop(guard);
        // SAFETY: sheaves and slabs only hold non-null object pointers. (Made `NonNull` after
        // the branches meet, so that the compiler does not test the sheaf's pointer.)
        Some(unsafe { NonNull::new_unchecked(obj) })
    }

    /// Allocates one object from memory of `node` (`kmem_cache_alloc_node`). The local node
    /// goes through the sheaves; another node is served straight from that node's slabs, as
    /// Linux does, since sheaves only hold local objects.
    #[doc(alias = "kmem_cache_alloc_node")]
    pub fn alloc_node(&self, gfp: Gfp, node: usize) -> Option<NonNull<u8>> {
        if let Some(p) = self.alias_of() {
            return p.alloc_node(gfp, node);
        }
        let local = {
            let (_guard, cpu) = self.platform.pin();
            self.cpu_sheaves[cpu + 1].node
        };
        if node == local || node >= self.nodes.len() {
            return self.alloc(gfp);
        }
        self.stat_add(Stat::AllocNodeMismatch, 1);
        let mut one = [None];
        self.alloc_from_slabs(node, gfp, &mut one, 0);
        let obj = one[0].take()?;
        self.stat_add(Stat::AllocSlowpath, 1);
        self.cross_node(local, node, 1);
        Some(self.hand_out(obj, gfp))
    }

    /// Frees an object (`kmem_cache_free`).
    ///
    /// Problems found now (debug caches check everything at once) are returned and logged;
    /// other caches check at the slab, later, and only log ([`Self::reports`]).
    ///
    /// # Safety
    /// `obj` must be an object allocated from this cache and not used afterwards. Debug caches
    /// (and the slab-level checks of every cache) detect and survive violations of this, but a
    /// cache without debug flags may have handed the pointer out again before noticing.
    #[doc(alias = "kmem_cache_free")]
    #[inline]
    pub unsafe fn free(&self, obj: NonNull<u8>) -> Result<(), SlabReport> {
        // SAFETY: forwarded contract.
        unsafe { self.free_caller(obj, 0) }
    }

    /// [`Self::free`] recording `caller` in `SLAB_STORE_USER` caches.
    ///
    /// The fast path: check the object (below), then push it on the CPU's main sheaf.
    /// Everything else is the `#[cold]` `free_slow`, which pins and goes on in [`sheaves`].
    ///
    /// The check, on by default (`SLAB_HARDENED_FREE`, off under `slab_nohardened`): the page
    /// owner of the address is a slab of this cache and the address an object boundary in it
    /// (`is_object_fast`). A free that fails it goes to the slow path, which says
    /// what is wrong (another cache's object, inside an object, not a slab page), reports it
    /// and drops the free; an alias's frees go there too and on to the primary.
    ///
    /// # Safety
    /// As for [`Self::free`].
    #[inline]
    pub unsafe fn free_caller(&self, obj: NonNull<u8>, caller: usize) -> Result<(), SlabReport> {
        let pin = self.platform.pin_fast();
        let checked = !self.flags.contains(SlabFlags::SLAB_HARDENED_FREE)
            || PageOwner::slab(self.platform.page_owner(obj.as_ptr() as usize)).is_some_and(
                // SAFETY: a slab owner word of our platform names a live descriptor (see
                // `of_slab`).
                |slab| unsafe { self.is_own_object_fast(slab.as_ref(), obj) },
            );
        // SAFETY: the pin is of the cache's own platform; the rest is forwarded.
        unsafe { self.free_pinned(pin, obj, caller, checked) }
    }

    /// [`Self::free_caller`] with the CPU pinned by the caller: `kfree` pins with its
    /// allocator's platform while it looks the cache up, so that the per-CPU lookup does not
    /// wait for the cache's pointer. `checked` is the fast path's verdict on the object
    /// (`true` when the checks are off): `false` sends the free to the slow path, which
    /// checks again and reports.
    ///
    /// # Safety
    /// As for [`Self::free`]; `pin` comes from [`Platform::pin_fast`] of this cache's platform
    /// or of a clone of it (the same CPUs and slots).
    #[inline(always)]
    pub(crate) unsafe fn free_pinned(
        &self,
        pin: (P::FastGuard, usize),
        obj: NonNull<u8>,
        caller: usize,
        checked: bool,
    ) -> Result<(), SlabReport> {
        let (_guard, slot) = pin;
        // SAFETY: `pin_fast` returns a slot in bounds: 0 (the static empty sheaf) or a CPU we
        // are pinned to, whose sheaves are ours.
        let main = unsafe { *self.main_slot(slot) };
        // SAFETY: `main` is valid, and in use, so its header words are live (see `SheafUnion`);
        // `size < push_limit` (which is at most `capacity`, and 0 in the static empty sheaf and
        // on multi-node machines) means a real local sheaf with room.
        // The top entry read for the double-free test is inside the sheaf's memory: entry
        // `size - 1`, or for an empty sheaf the header's last word (`push_limit` and
        // `_reserved`, a small number that is never an object's address).
        unsafe {
            let size = (*main).size;
            let objects = Sheaf::objects(main);
            if checked
                && size < (*main).u.words.push_limit
                && *objects.add(size as usize).sub(1) != obj.as_ptr()
            {
                *objects.add(size as usize) = obj.as_ptr();
                (*main).size = size + 1;
                PerCpu::count(&self.slot(slot).free_fast);
                return Ok(());
            }
        }
        // SAFETY: the caller gives the object up (contract); a pointer that is no object of
        // the cache is rejected by the slow path's checks (`FreeObject`'s contract).
        self.free_slow(slot, unsafe { FreeObject::new(obj) }, caller)
    }
}

/// Proof that no other context uses a cache (its destruction): lets the holder reach every
/// CPU's sheaves. Made by [`KmemCache::assume_exclusive`].
pub(crate) struct Exclusive<'a, P: Platform>(&'a KmemCache<P>);

impl<'a, P: Platform> Exclusive<'a, P> {
    /// The cache.
    pub(crate) fn cache(&self) -> &'a KmemCache<P> {
        self.0
    }

    /// The sheaves of `cpu`, until the result is dropped.
    pub(crate) fn pcs(&self, cpu: usize) -> PerCpuSheaves<'a> {
        // SAFETY: no other context uses the cache (the contract of `assume_exclusive`).
        unsafe { self.0.cpu_sheaves[cpu + 1].borrow() }
    }
}
