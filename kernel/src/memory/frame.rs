//! The physical frame allocator: 4 KiB frames from the boot memory map.
//!
//! Frames are handed out in two ways: first by bumping through the usable regions of the boot
//! memory map, then, once frames have been given back, from a free list threaded through the
//! freed frames themselves (each free frame stores the address of the next one in its first
//! eight bytes, reached through the physical-memory mapping). Both are O(1) and need no memory
//! of their own. (The buddy allocator of the slab work replaces this with per-order free lists.)

use crate::sync::SpinLock;
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use x86_64::PhysAddr;
use x86_64::structures::paging::{PhysFrame, Size4KiB};

const FRAME_SIZE: u64 = 4096;

/// Memory below 1 MiB is left alone: it holds firmware data, and application processors start
/// in real mode from a trampoline that must live there. (It also keeps physical address 0, which
/// the free list uses as its end marker, out of the allocator.)
const LOW_MEMORY_END: u64 = 0x10_0000;

/// Counts of 4 KiB frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    /// Usable frames in the boot memory map.
    pub total: u64,
    /// Frames handed out and not yet given back.
    pub used: u64,
}

impl FrameStats {
    /// Frames available for allocation.
    pub fn free(&self) -> u64 {
        self.total - self.used
    }
}

struct FrameAllocator {
    regions: &'static MemoryRegions,
    /// Index of the region the bump pointer is in.
    region: usize,
    /// Next never-used frame address in `regions[region]`.
    next: u64,
    /// Head of the list of given-back frames.
    free_list: Option<PhysAddr>,
    stats: FrameStats,
}

impl FrameAllocator {
    fn usable(&self, index: usize) -> Option<(u64, u64)> {
        let r = self.regions.get(index)?;
        let start = r.start.max(LOW_MEMORY_END).next_multiple_of(FRAME_SIZE);
        let end = r.end & !(FRAME_SIZE - 1);
        (r.kind == MemoryRegionKind::Usable && start < end).then_some((start, end))
    }

    fn allocate(&mut self) -> Option<PhysFrame> {
        let addr = if let Some(head) = self.free_list {
            // SAFETY: `head` is a free frame we own; its first word holds the next link,
            // written by `deallocate`.
            let next = unsafe { link(head).read() };
            self.free_list = (next != 0).then(|| PhysAddr::new(next));
            head
        } else {
            loop {
                match self.usable(self.region) {
                    Some((_, end)) if self.next + FRAME_SIZE <= end => break,
                    _ if self.region + 1 >= self.regions.len() => return None,
                    _ => {
                        self.region += 1;
                        self.next = self.usable(self.region).map_or(0, |(start, _)| start);
                    }
                }
            }
            let addr = PhysAddr::new(self.next);
            self.next += FRAME_SIZE;
            addr
        };
        self.stats.used += 1;
        Some(PhysFrame::containing_address(addr))
    }

    fn deallocate(&mut self, frame: PhysFrame) {
        let addr = frame.start_address();
        let next = self.free_list.map_or(0, PhysAddr::as_u64);
        // SAFETY: the caller gave the frame back, so nothing else uses it; it is mapped at
        // `phys_to_virt(addr)`, 4 KiB aligned, so its first word can hold the link.
        unsafe { link(addr).write(next) };
        self.free_list = Some(addr);
        self.stats.used -= 1;
    }
}

/// Where a free frame keeps the address of the next free frame.
fn link(frame: PhysAddr) -> *mut u64 {
    super::phys_to_virt(frame).as_mut_ptr()
}

static FRAMES: SpinLock<Option<FrameAllocator>> = SpinLock::new(None);

/// Takes over the usable regions of the boot memory map.
pub fn init(regions: &'static MemoryRegions) {
    let mut allocator = FrameAllocator {
        regions,
        region: 0,
        next: 0,
        free_list: None,
        stats: FrameStats { total: 0, used: 0 },
    };
    allocator.stats.total = (0..regions.len())
        .filter_map(|i| allocator.usable(i))
        .map(|(start, end)| (end - start) / FRAME_SIZE)
        .sum();
    allocator.next = allocator.usable(0).map_or(0, |(start, _)| start);
    *FRAMES.lock() = Some(allocator);
}

/// Allocates one 4 KiB frame, or `None` when physical memory is exhausted.
pub fn alloc_frame() -> Option<PhysFrame<Size4KiB>> {
    FRAMES.lock().as_mut()?.allocate()
}

/// Gives a frame back.
///
/// # Safety
/// `frame` must come from [`alloc_frame`], not be given back already, and be unused (no mapping
/// or pointer to it is used after this).
pub unsafe fn free_frame(frame: PhysFrame<Size4KiB>) {
    if let Some(allocator) = FRAMES.lock().as_mut() {
        allocator.deallocate(frame);
    }
}

/// Current frame counts.
pub fn stats() -> FrameStats {
    FRAMES
        .lock()
        .as_ref()
        .map_or(FrameStats { total: 0, used: 0 }, |a| a.stats)
}

#[crate::ktest]
fn frames_are_distinct_aligned_and_come_back() {
    use alloc::collections::BTreeSet;
    use alloc::vec::Vec;

    const N: usize = 512;
    let before = stats();
    let frames: Vec<_> = (0..N)
        .map(|_| alloc_frame().expect("free memory"))
        .collect();
    let distinct: BTreeSet<u64> = frames.iter().map(|f| f.start_address().as_u64()).collect();
    assert_eq!(distinct.len(), N, "no frame is handed out twice");
    assert!(
        distinct.iter().all(|a| a % FRAME_SIZE == 0),
        "frames are 4 KiB aligned"
    );
    assert_eq!(stats().used, before.used + N as u64);

    for frame in &frames {
        // SAFETY: the frames were just allocated above and are not used.
        unsafe { free_frame(*frame) };
    }
    assert_eq!(stats(), before, "freeing every frame restores the counts");

    // Given-back frames are reused before fresh memory is touched.
    let again: BTreeSet<u64> = (0..N)
        .map(|_| alloc_frame().expect("free memory").start_address().as_u64())
        .collect();
    assert_eq!(
        again, distinct,
        "the frames given back are handed out again"
    );
    for addr in again {
        // SAFETY: allocated just above, unused.
        unsafe { free_frame(PhysFrame::containing_address(PhysAddr::new(addr))) };
    }
}
