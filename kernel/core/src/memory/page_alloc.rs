//! The page allocator: physical memory in blocks of 2^order 4 KiB frames, per NUMA node.
//!
//! Boot happens in two steps, because the buddy allocator's metadata and the NUMA layout are
//! only known once some memory already works:
//!
//! 1. **Bootstrap** ([`init`]): a bump allocator walks the usable regions of the boot memory map,
//!    one frame at a time. It feeds the page tables and the bootstrap heap, and ACPI parsing.
//! 2. **Buddy** ([`init_buddy`]): once ACPI has told which memory belongs to which node, the
//!    `buddy` crate takes over every frame the bootstrap allocator has not handed out. Its
//!    per-frame metadata array (indexed by frame number, so any address maps back to its page in
//!    O(1)) is carved from the end of a usable region. Frames handed out during bootstrap are
//!    the kernel's for good (page tables, heap) and are never freed.
//!
//! Allocation prefers the calling CPU's node and falls back to the others. Out of memory is an
//! error value, never a panic.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use buddy::{AllocError, BuddyAllocator, FreeError, PageMeta};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use x86_64::PhysAddr;
use x86_64::structures::paging::{PhysFrame, Size4KiB};

use crate::sync::IrqSpinLock;

/// [`PAGE_SIZE`](super::PAGE_SIZE) as a physical-address quantity.
const FRAME_SIZE: u64 = super::PAGE_SIZE as u64;

/// The largest block order (2^10 frames = 4 MiB).
pub const MAX_ORDER: usize = buddy::MAX_ORDER;

/// Memory below 1 MiB is left alone: it holds firmware data, and application processors start
/// in real mode from a trampoline that must live there.
const LOW_MEMORY_END: u64 = 0x10_0000;

/// Counts of 4 KiB frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    /// Usable frames in the boot memory map.
    pub total: u64,
    /// Frames handed out and not yet given back (including the buddy metadata).
    pub used: u64,
}

impl FrameStats {
    /// Frames available for allocation.
    pub fn free(&self) -> u64 {
        self.total - self.used
    }
}

/// The bootstrap bump allocator.
struct BootFrames {
    regions: &'static MemoryRegions,
    region: usize,
    next: u64,
}

impl BootFrames {
    fn usable(&self, index: usize) -> Option<(u64, u64)> {
        usable_range(self.regions, index)
    }

    fn allocate(&mut self) -> Option<PhysAddr> {
        loop {
            match self.usable(self.region) {
                Some((start, end)) if self.next.max(start) + FRAME_SIZE <= end => {
                    let addr = self.next.max(start);
                    self.next = addr + FRAME_SIZE;
                    return Some(PhysAddr::new(addr));
                }
                _ if self.region + 1 >= self.regions.len() => return None,
                _ => self.region += 1,
            }
        }
    }
}

/// Usable region `index`, page aligned and above 1 MiB.
fn usable_range(regions: &MemoryRegions, index: usize) -> Option<(u64, u64)> {
    let r = regions.get(index)?;
    let start = r.start.max(LOW_MEMORY_END).next_multiple_of(FRAME_SIZE);
    let end = r.end & !(FRAME_SIZE - 1);
    (r.kind == MemoryRegionKind::Usable && start < end).then_some((start, end))
}

// One instance, in a static: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Allocator {
    Boot(BootFrames),
    Buddy(BuddyAllocator<'static>),
}

struct PageAlloc {
    allocator: Allocator,
    total: u64,
    /// Frames handed out by the bootstrap allocator and the buddy metadata: never freed.
    boot_used: u64,
}

static PAGES: IrqSpinLock<Option<PageAlloc>> = IrqSpinLock::new(None);

/// The buddy allocator's metadata array, for lock-free reads of a page's owner word.
static META: AtomicPtr<PageMeta> = AtomicPtr::new(core::ptr::null_mut());
static META_LEN: AtomicUsize = AtomicUsize::new(0);

/// Starts the bootstrap allocator over the usable regions of the boot memory map.
pub(crate) fn init(regions: &'static MemoryRegions) {
    let total = (0..regions.len())
        .filter_map(|i| usable_range(regions, i))
        .map(|(start, end)| (end - start) / FRAME_SIZE)
        .sum();
    let boot = BootFrames {
        regions,
        region: 0,
        next: 0,
    };
    *PAGES.lock() = Some(PageAlloc {
        allocator: Allocator::Boot(boot),
        total,
        boot_used: 0,
    });
}

/// Hands all memory the bootstrap allocator has not used to the buddy allocator, with each
/// range on its NUMA node (`node_of` maps a physical address to its node).
pub(crate) fn init_buddy(node_of: impl Fn(u64) -> usize) {
    let mut guard = PAGES.lock();
    let pages = guard.as_mut().expect("page_alloc::init has run");
    let Allocator::Boot(boot) = &pages.allocator else {
        return;
    };
    let regions = boot.regions;
    // What the bump allocator has not reached yet: the rest of its region and all later ones.
    let remaining = |i: usize| -> Option<(u64, u64)> {
        let (start, end) = usable_range(regions, i)?;
        match i.cmp(&boot.region) {
            core::cmp::Ordering::Less => None,
            core::cmp::Ordering::Equal => {
                (boot.next.max(start) < end).then(|| (boot.next.max(start), end))
            }
            core::cmp::Ordering::Greater => Some((start, end)),
        }
    };
    let max_pfn = (0..regions.len())
        .filter_map(remaining)
        .map(|(_, end)| end / FRAME_SIZE)
        .max()
        .unwrap_or(0);
    // Carve the metadata array from the end of the first remaining region large enough.
    let meta_bytes =
        (buddy::metadata_bytes(0, max_pfn as usize) as u64).next_multiple_of(FRAME_SIZE);
    let Some((meta_region, meta_start)) = (0..regions.len())
        .filter_map(|i| remaining(i).map(|r| (i, r)))
        .find(|(_, (start, end))| end - start >= meta_bytes)
        .map(|(i, (_, end))| (i, end - meta_bytes))
    else {
        log::error!("no room for the page metadata; staying on the bootstrap allocator");
        return;
    };
    let storage_ptr =
        super::phys_to_virt(PhysAddr::new(meta_start)).as_mut_ptr::<MaybeUninit<PageMeta>>();
    // SAFETY: [meta_start, meta_start + meta_bytes) is usable memory that no one has been given
    // (beyond the bump pointer) and that is excluded from the buddy below, mapped through the
    // physical-memory map; `PageMeta` needs 8-byte alignment and the start is page aligned.
    let storage = unsafe { core::slice::from_raw_parts_mut(storage_ptr, max_pfn as usize) };
    let meta: &'static mut [PageMeta] = buddy::init_metadata(storage);
    META.store(meta.as_mut_ptr(), Ordering::Release);
    META_LEN.store(meta.len(), Ordering::Release);
    let mut allocator = BuddyAllocator::new(meta, 0).expect("the metadata covers every frame");
    for i in 0..regions.len() {
        let Some((start, mut end)) = remaining(i) else {
            continue;
        };
        if i == meta_region {
            end = meta_start;
        }
        add_by_node(&mut allocator, start, end, &node_of);
    }
    let free = allocator.stats().free_pages() as u64;
    pages.boot_used = pages.total - free;
    pages.allocator = Allocator::Buddy(allocator);
    drop(guard);
    log::info!(
        "page allocator: {} MiB free, metadata {} KiB",
        free * 4 / 1024,
        meta_bytes / 1024
    );
}

/// Adds [start, end) to the buddy allocator, split where the NUMA node changes.
fn add_by_node(
    allocator: &mut BuddyAllocator<'static>,
    start: u64,
    end: u64,
    node_of: &impl Fn(u64) -> usize,
) {
    let mut piece = start;
    while piece < end {
        let node = node_of(piece);
        let mut stop = piece + FRAME_SIZE;
        while stop < end && node_of(stop) == node {
            stop += FRAME_SIZE;
        }
        if let Err(err) = allocator.add_range(
            (piece / FRAME_SIZE) as usize,
            (stop / FRAME_SIZE) as usize,
            node,
        ) {
            log::error!("page allocator: cannot add {piece:#x}..{stop:#x} on node {node}: {err}");
        }
        piece = stop;
    }
}

/// What the page allocator calls when it is out of memory, before it fails: gives back memory
/// parked in a higher layer and returns how much (pages or slabs; 0 for nothing). Set by the
/// slab allocator's start-up to `kmalloc::reclaim_for_pressure` (a hook, so that this layer
/// does not import the slab layer above it). Must be callable from any context.
pub static RECLAIM_HOOK: crate::hook::Hook<fn() -> usize> = crate::hook::Hook::new();

/// Allocates 2^`order` contiguous, naturally aligned frames, from `node` if it has them (the
/// calling CPU's node when `None`), else from another node.
///
/// When no node has them, the memory the slab allocator parks (its barns' sheaves, its empty
/// slabs) is given back ([`RECLAIM_HOOK`]: `kmalloc::reclaim_for_pressure`, safe from any context,
/// this function's callers inside the slab allocator included) and, if that freed anything,
/// the allocation is tried once more before it fails.
pub fn alloc_pages(order: usize, node: Option<usize>) -> Result<PhysAddr, AllocError> {
    let node = node.unwrap_or_else(|| super::numa::cpu_to_node(crate::cpu::current_id()));
    match alloc_pages_once(order, node) {
        // `PAGES` is not held here: the reclaim frees slab pages through `free_pages`.
        Err(AllocError::OutOfMemory) if RECLAIM_HOOK.get().is_some_and(|reclaim| reclaim() > 0) => {
            alloc_pages_once(order, node)
        }
        result => result,
    }
}

/// One try of [`alloc_pages`], without the reclaim.
fn alloc_pages_once(order: usize, node: usize) -> Result<PhysAddr, AllocError> {
    let mut guard = PAGES.lock();
    let pages = guard.as_mut().ok_or(AllocError::OutOfMemory)?;
    match &mut pages.allocator {
        Allocator::Buddy(buddy) => buddy
            .alloc_pages(order, Some(node))
            .map(|pfn| PhysAddr::new(pfn as u64 * FRAME_SIZE)),
        Allocator::Boot(boot) if order == 0 => {
            let frame = boot.allocate().ok_or(AllocError::OutOfMemory)?;
            pages.boot_used += 1;
            Ok(frame)
        }
        Allocator::Boot(_) => Err(AllocError::OutOfMemory),
    }
}

/// Gives back a block from [`alloc_pages`]. A bad free (not a block, wrong order, double free)
/// is refused with an error and changes nothing.
///
/// # Safety
/// If the block was allocated, nothing may use it after this call.
pub unsafe fn free_pages(addr: PhysAddr, order: usize) -> Result<(), FreeError> {
    let pfn = (addr.as_u64() / FRAME_SIZE) as usize;
    let mut guard = PAGES.lock();
    match guard.as_mut().map(|p| &mut p.allocator) {
        Some(Allocator::Buddy(buddy)) => buddy.free_pages(pfn, order),
        // Bootstrap frames are never freed.
        _ => Err(FreeError::NotManaged { pfn }),
    }
}

/// Records `owner` for every page of the allocated block at `addr` (0 clears it), so that
/// [`owner`] maps any address inside the block back to it in O(1) (the slab allocator stores
/// its cache or slab there).
///
/// # Safety
/// `kfree` trusts the owner word: it takes a non-zero word for the slab descriptor of the
/// block and follows it. The caller owns the block (it came from [`alloc_pages`] and is not
/// freed) and `owner` is 0 or what the slab allocator's `Platform::set_page_owner` was given
/// for it (crate-private: only the slab platform writes owner words).
pub(crate) unsafe fn set_owner(
    addr: PhysAddr,
    order: usize,
    owner: usize,
) -> Result<(), FreeError> {
    let pfn = (addr.as_u64() / FRAME_SIZE) as usize;
    let mut guard = PAGES.lock();
    match guard.as_mut().map(|p| &mut p.allocator) {
        Some(Allocator::Buddy(buddy)) => buddy.set_owner(pfn, order, owner),
        _ => Err(FreeError::NotManaged { pfn }),
    }
}

/// The owner recorded for the page at `addr`, or 0. Lock-free: the owner word of a block only
/// changes while its owner holds it, so whoever asks about memory it was given reads a stable
/// value (the read is volatile, like Linux's `READ_ONCE` of `page->slab_cache`).
pub fn owner(addr: PhysAddr) -> usize {
    OwnerMap::current().owner_of_pfn((addr.as_u64() / FRAME_SIZE) as usize)
}

/// Where the owner words of all frames are, for the slab allocator's `page_owner` on every
/// `kfree`: the physical map's base and the buddy allocator's metadata array, copied once both
/// are fixed (the array is never moved or freed), so that a lookup is plain loads from the
/// copy, one bounds check and a volatile read of the owner word alone.
#[derive(Clone, Copy, Debug)]
pub struct OwnerMap {
    /// Virtual address of physical address 0 ([`super::phys_map_base`]).
    phys_map_base: usize,
    /// The metadata array (null, and `len` 0, if the buddy allocator never came up).
    meta: *const PageMeta,
    /// Entries of `meta`: frame numbers below it have an owner word.
    len: usize,
}

// SAFETY: `meta` points at the buddy allocator's metadata, which lives as long as the kernel
// and whose owner words are only read through the pointer, with volatile reads.
unsafe impl Send for OwnerMap {}
// SAFETY: as above.
unsafe impl Sync for OwnerMap {}

impl OwnerMap {
    /// The map as it stands. Taken after the buddy allocator is up (its metadata is fixed from
    /// then on); taken before, or if it never comes up, every lookup says 0.
    pub fn current() -> Self {
        // Acquire: pairs with the Release store of the length, which comes after the array's.
        let len = META_LEN.load(Ordering::Acquire);
        Self {
            phys_map_base: super::phys_map_base(),
            meta: META.load(Ordering::Relaxed),
            len,
        }
    }

    /// [`owner`] of the page holding the virtual address `addr` of the physical map, or 0 for
    /// an address outside it (one below the map wraps to a huge frame number, which the bounds
    /// check refuses like one beyond RAM).
    #[inline(always)]
    pub fn owner(&self, addr: usize) -> usize {
        self.owner_of_pfn(addr.wrapping_sub(self.phys_map_base) / FRAME_SIZE as usize)
    }

    /// The owner word of frame `pfn`, or 0 for a frame the array does not cover.
    #[inline(always)]
    fn owner_of_pfn(&self, pfn: usize) -> usize {
        if pfn >= self.len {
            return 0;
        }
        // A non-zero `len` was read after `META` pointed at the live array of that many
        // entries (see `current`), and `pfn` is in bounds, so the entry is live.
        // SAFETY: so its owner word, at `PageMeta::OWNER_OFFSET`, is readable; a volatile read
        // of that one word makes no reference the allocator's writers (its lock) could alias.
        unsafe {
            core::ptr::read_volatile(
                self.meta
                    .add(pfn)
                    .byte_add(PageMeta::OWNER_OFFSET)
                    .cast::<usize>(),
            )
        }
    }
}

/// Whether the frame at `addr` lies in a free block of the buddy allocator (on a free list, not
/// given out): for tests and diagnostics (the answer may be stale as soon as it is returned).
/// `false` for memory the buddy allocator does not manage.
pub fn frame_is_free(addr: PhysAddr) -> bool {
    let pfn = (addr.as_u64() / FRAME_SIZE) as usize;
    let guard = PAGES.lock();
    let Some(Allocator::Buddy(buddy)) = guard.as_ref().map(|p| &p.allocator) else {
        return false;
    };
    // Blocks are naturally aligned: the block holding `pfn` is headed by `pfn` rounded down to
    // the block's size, and the first head found while rounding down further and further (with
    // an order that reaches `pfn`) is that block's.
    for order in 0..=MAX_ORDER {
        let head = pfn & !((1 << order) - 1);
        match buddy.page_meta(head) {
            Some(m) if m.is_head() && m.order().is_some_and(|o| o >= order) => {
                return m.is_free();
            }
            Some(_) => {}
            None => return false,
        }
    }
    false
}

/// Allocates one 4 KiB frame, or `None` when physical memory is exhausted.
pub fn alloc_frame() -> Option<PhysFrame<Size4KiB>> {
    alloc_pages(0, None).ok().map(PhysFrame::containing_address)
}

/// Gives a frame back.
///
/// # Safety
/// `frame` must come from [`alloc_frame`], not be given back already, and be unused.
pub unsafe fn free_frame(frame: PhysFrame<Size4KiB>) {
    // SAFETY: forwarded from the caller.
    if let Err(err) = unsafe { free_pages(frame.start_address(), 0) } {
        log::warn!("free_frame({:#x}): {err}", frame.start_address().as_u64());
    }
}

/// Current frame counts.
pub fn stats() -> FrameStats {
    let guard = PAGES.lock();
    let Some(pages) = guard.as_ref() else {
        return FrameStats { total: 0, used: 0 };
    };
    let buddy_used = match &pages.allocator {
        Allocator::Buddy(buddy) => buddy.stats().used_pages() as u64,
        Allocator::Boot(_) => 0,
    };
    FrameStats {
        total: pages.total,
        used: pages.boot_used + buddy_used,
    }
}

/// Free and total frames of NUMA node `node` (the buddy allocator's share of it).
pub fn node_stats(node: usize) -> buddy::NodeStats {
    let guard = PAGES.lock();
    match guard.as_ref().map(|p| &p.allocator) {
        Some(Allocator::Buddy(buddy)) => buddy.stats().nodes.get(node).cloned().unwrap_or_default(),
        _ => buddy::NodeStats::default(),
    }
}

/// Free blocks per order, all nodes together.
pub fn free_blocks_per_order() -> [usize; MAX_ORDER + 1] {
    let guard = PAGES.lock();
    let mut counts = [0; MAX_ORDER + 1];
    if let Some(Allocator::Buddy(buddy)) = guard.as_ref().map(|p| &p.allocator) {
        let stats = buddy.stats();
        for (order, count) in counts.iter_mut().enumerate() {
            *count = stats.free_blocks(order);
        }
    }
    counts
}

#[crate::ktest]
fn frames_are_distinct_aligned_and_come_back() {
    use alloc::vec::Vec;

    const N: usize = 512;
    /// Measurements before giving up: background work on the other CPUs (an earlier test's
    /// RCU callbacks freeing slab pages, a worker thread exiting) may move the counts between
    /// two reads even after `quiesce`; a frame that does not come back fails every attempt.
    const ATTEMPTS: usize = 5;
    // Reserve the bookkeeping first: kmalloc takes pages from this allocator too.
    let mut frames = Vec::with_capacity(N);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        crate::selftest::quiesce();
        frames.clear();
        let before = stats();
        for _ in 0..N {
            frames.push(alloc_frame().expect("free memory"));
        }
        let allocated = stats();
        for frame in &frames {
            // SAFETY: the frames were just allocated above and are not used.
            unsafe { free_frame(*frame) };
        }
        let after = stats();

        frames.sort_unstable();
        frames.dedup();
        assert_eq!(frames.len(), N, "no frame is handed out twice");
        assert!(
            frames
                .iter()
                .all(|f| f.start_address().as_u64() % FRAME_SIZE == 0),
            "4 KiB aligned"
        );
        if allocated.used == before.used + N as u64 && after == before {
            return;
        }
        last = Some((before, allocated, after));
    }
    panic!(
        "freeing every frame restores the counts: in {ATTEMPTS} attempts, never; the last \
         (before, allocated, after): {last:?}"
    );
}

#[crate::ktest]
fn blocks_are_naturally_aligned_and_bad_frees_are_refused() {
    for order in [0, 1, 3, 6, MAX_ORDER] {
        let block = alloc_pages(order, None).expect("free memory");
        let size = FRAME_SIZE << order;
        assert_eq!(
            block.as_u64() % size,
            0,
            "an order-{order} block is aligned to its size"
        );
        // SAFETY: just allocated, unused.
        assert_eq!(unsafe { free_pages(block, order) }, Ok(()));
        // SAFETY: a double free must be refused without touching anything.
        let again = unsafe { free_pages(block, order) };
        assert!(again.is_err(), "double free is refused");
    }
    let block = alloc_pages(2, None).expect("free memory");
    // SAFETY: wrong-order and interior frees are refused; the block stays allocated.
    unsafe {
        assert!(free_pages(block, 3).is_err(), "wrong order is refused");
        assert!(
            free_pages(block + FRAME_SIZE, 0).is_err(),
            "a frame inside a block is refused"
        );
        assert_eq!(free_pages(block, 2), Ok(()));
    }
}

#[crate::ktest]
fn out_of_memory_is_an_error() {
    use alloc::vec::Vec;
    // Take every 4 MiB block there is; the next request must fail cleanly.
    let mut blocks = Vec::new();
    while let Ok(block) = alloc_pages(MAX_ORDER, None) {
        blocks.push(block);
    }
    assert!(!blocks.is_empty());
    assert_eq!(alloc_pages(MAX_ORDER, None), Err(AllocError::OutOfMemory));
    for block in blocks {
        // SAFETY: allocated above, unused.
        unsafe { free_pages(block, MAX_ORDER) }.expect("give back");
    }
    assert!(
        alloc_pages(MAX_ORDER, None)
            .map(|b| {
                // SAFETY: allocated just now, unused.
                unsafe { free_pages(b, MAX_ORDER) }.expect("give back");
            })
            .is_ok(),
        "memory is usable again"
    );
}

#[crate::ktest]
fn frame_is_free_follows_allocation_and_free() {
    // Another CPU may take a freed block at once (free lists are LIFO): a few tries.
    let mut seen_free = 0;
    for _ in 0..5 {
        let block = alloc_pages(2, None).expect("memory");
        for i in 0..4 {
            assert!(
                !frame_is_free(block + i * FRAME_SIZE),
                "frame {i} of an allocated block"
            );
        }
        // SAFETY: just allocated, never used.
        unsafe { free_pages(block, 2) }.expect("a good free");
        if (0..4).all(|i| frame_is_free(block + i * FRAME_SIZE)) {
            seen_free += 1;
        }
    }
    assert!(seen_free > 0, "a freed block is seen free (merged or not)");
}
