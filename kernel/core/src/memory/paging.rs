//! The kernel's page tables, reached through the physical-memory mapping.
//!
//! Sheaf keeps the page tables the bootloader built and edits them with the `x86_64` crate's
//! [`OffsetPageTable`], which walks the tables through the physical-memory mapping.

use super::{PAGE_SIZE, layout};
use crate::sync::{IrqSpinLock, SpinLock};
use x86_64::VirtAddr;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};

static MAPPER: IrqSpinLock<Option<OffsetPageTable<'static>>> = IrqSpinLock::new(None);

/// Takes hold of the active level-4 page table.
pub(crate) fn init() {
    let (frame, _) = Cr3::read();
    let table = super::phys_to_virt(frame.start_address()).as_mut_ptr::<PageTable>();
    let offset = super::phys_to_virt(x86_64::PhysAddr::new(0));
    // SAFETY: CR3 holds the active level-4 table, mapped at `table` through the complete
    // physical-memory mapping at `offset`; this is the only `OffsetPageTable` ever made, and
    // it is kept behind a lock, so no two `&mut` to the table exist.
    let mapper = unsafe { OffsetPageTable::new(&mut *table, offset) };
    *MAPPER.lock() = Some(mapper);
}

/// Hands the page-table code fresh frames from [`super::frame`].
struct Frames;

// SAFETY: `alloc_frame` returns frames that are unused and owned by the caller.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        super::page_alloc::alloc_frame()
    }
}

/// Writable, not executable: the flags of every kernel data page.
const DATA: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE);

/// Maps `page` to a fresh frame, zeroed before the mapping becomes visible so the page never
/// shows stale data. The page must not be mapped; x86 never caches a not-present translation,
/// so no TLB flush is needed.
fn map_zeroed(
    mapper: &mut OffsetPageTable<'static>,
    page: Page<Size4KiB>,
) -> Result<(), MapToError<Size4KiB>> {
    let frame = Frames
        .allocate_frame()
        .ok_or(MapToError::FrameAllocationFailed)?;
    // SAFETY: the frame is fresh and mapped nowhere else, and is zeroed through the physical
    // map before `map_to` publishes it.
    let mapped = unsafe {
        super::phys_to_virt(frame.start_address())
            .as_mut_ptr::<u8>()
            .write_bytes(0, PAGE_SIZE);
        mapper.map_to(page, frame, DATA, &mut Frames)
    };
    match mapped {
        Ok(flush) => {
            flush.ignore();
            Ok(())
        }
        Err(e) => {
            // Not mapped (no frame for a page table, or the page was mapped already): the
            // frame goes back rather than leaking.
            // SAFETY: allocated above by `alloc_frame`, and mapped nowhere.
            unsafe { super::page_alloc::free_frame(frame) };
            Err(e)
        }
    }
}

/// Maps `pages` pages from `start` to fresh, zeroed frames, writable and not executable.
///
/// Returns an error if memory runs out or a page is already mapped; the pages mapped before
/// the error stay mapped.
pub(crate) fn map_fresh(start: VirtAddr, pages: u64) -> Result<(), MapToError<Size4KiB>> {
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    let first = Page::<Size4KiB>::containing_address(start);
    for page in Page::range(first, first + pages) {
        map_zeroed(mapper, page)?;
    }
    Ok(())
}

/// Maps the pages of `pages` pages from `start` that are not mapped yet to fresh, zeroed
/// frames (what [`map_fresh`] left undone when memory ran out). Pages already mapped are
/// kept as they are.
pub(crate) fn map_fresh_missing(start: VirtAddr, pages: u64) -> Result<(), MapToError<Size4KiB>> {
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    let first = Page::<Size4KiB>::containing_address(start);
    for page in Page::range(first, first + pages) {
        if mapper.translate_page(page).is_err() {
            map_zeroed(mapper, page)?;
        }
    }
    Ok(())
}

/// The next free address of the [`layout::MMIO`] range, where device registers are mapped.
static MMIO_NEXT: SpinLock<u64> = SpinLock::new(layout::MMIO.start);

/// Maps `len` bytes of device registers at physical address `phys`, uncached, and returns
/// the virtual address of `phys`.
///
/// # Safety
/// `phys..phys + len` is device memory (registers), not RAM: a second, uncached, writable
/// mapping of RAM would let the caller write memory that others own.
pub(crate) unsafe fn map_mmio(
    phys: x86_64::PhysAddr,
    len: u64,
) -> Result<VirtAddr, MapToError<Size4KiB>> {
    let first = PhysFrame::<Size4KiB>::containing_address(phys);
    let last = PhysFrame::<Size4KiB>::containing_address(phys + len.max(1) - 1u64);
    let pages = last - first + 1;
    let start = {
        let mut next = MMIO_NEXT.lock();
        let start = *next;
        *next += pages * PAGE_SIZE as u64;
        start
    };
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    let flags = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | PageTableFlags::NO_EXECUTE
        | PageTableFlags::NO_CACHE
        | PageTableFlags::WRITE_THROUGH;
    let first_page = Page::<Size4KiB>::containing_address(VirtAddr::new(start));
    for (i, frame) in PhysFrame::range_inclusive(first, last).enumerate() {
        // SAFETY: the virtual range was just reserved for this mapping; the frames are device
        // registers (the caller's contract), so mapping them uncached touches no memory the
        // kernel uses.
        unsafe {
            mapper
                .map_to(first_page + i as u64, frame, flags, &mut Frames)?
                .ignore()
        };
    }
    Ok(VirtAddr::new(start + (phys.as_u64() & 0xfff)))
}

/// Maps the 4 KiB page at physical address `phys` at the same virtual address, executable.
/// Used for the application-processor start-up trampoline, which runs at its physical
/// address while it switches paging on. Undo with [`unmap_identity`].
///
/// # Safety
/// The caller owns the frame at `phys` for as long as it stays mapped: the mapping is writable
/// and executable, so anything written there can run.
pub(crate) unsafe fn map_identity(phys: x86_64::PhysAddr) -> Result<(), MapToError<Size4KiB>> {
    let frame = PhysFrame::<Size4KiB>::containing_address(phys);
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(phys.as_u64()));
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    // SAFETY: the page is in the lower half, which the kernel otherwise leaves unmapped, and
    // maps memory the caller owns (the caller's contract).
    unsafe {
        mapper
            .map_to(
                page,
                frame,
                PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
                &mut Frames,
            )?
            .flush();
    }
    Ok(())
}

/// Removes a mapping made by [`map_identity`] (from this CPU's TLB too).
pub(crate) fn unmap_identity(phys: x86_64::PhysAddr) {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(phys.as_u64()));
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    if let Ok((_, flush)) = mapper.unmap(page) {
        flush.flush();
    }
}

/// Maps the kernel page at `virt` to `frame` (writable, not executable).
///
/// # Safety
/// The caller owns `frame` and the virtual page `virt` (no other code expects it unmapped,
/// as a guard page, or mapped elsewhere) for as long as the mapping stays.
#[cfg(feature = "ktest")]
pub(crate) unsafe fn map_page(
    virt: VirtAddr,
    frame: PhysFrame,
) -> Result<(), MapToError<Size4KiB>> {
    let page = Page::<Size4KiB>::containing_address(virt);
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    // SAFETY: the caller owns `frame` and the page; a not-present page needs no TLB flush.
    unsafe { mapper.map_to(page, frame, DATA, &mut Frames)?.ignore() };
    Ok(())
}

/// Unmaps the kernel page at `virt` and shoots its translation down on every CPU. Returns the
/// frame it mapped, which the caller now owns.
///
/// # Safety
/// The caller owns the page (it mapped it with [`map_page`]) and nothing uses it any more.
#[cfg(feature = "ktest")]
pub(crate) unsafe fn unmap_page(virt: VirtAddr) -> Option<PhysFrame> {
    let mut frame = None;
    // SAFETY: the caller's contract, for this one page.
    unsafe { unmap_range(virt, 1, |f| frame = Some(f)) };
    frame
}

/// Sets the flags of `pages` kernel pages from `start` to `flags` and shoots the old
/// translations down on every CPU. Pages that are not mapped are skipped.
///
/// # Safety
/// The caller owns the pages, and no reference into them relies on the permissions taken away
/// (no `&mut` into a page made read-only, no code running from a page made non-executable).
pub(crate) unsafe fn update_flags(start: VirtAddr, pages: usize, flags: PageTableFlags) {
    // SAFETY: the caller's contract; flushed on every CPU right after.
    unsafe { update_flags_unflushed(start, pages, flags) };
    let first = Page::<Size4KiB>::containing_address(start);
    crate::arch::ipi::flush_tlb_kernel_range(first.start_address(), pages as u64);
}

/// [`update_flags`] without the shoot-down, for a caller that changes several ranges and then
/// flushes them all at once.
///
/// # Safety
/// As for [`update_flags`], and the caller shoots the range down on every CPU
/// (`flush_tlb_kernel_range`) before anything relies on the new permissions.
pub(crate) unsafe fn update_flags_unflushed(start: VirtAddr, pages: usize, flags: PageTableFlags) {
    let first = Page::<Size4KiB>::containing_address(start);
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    for page in Page::range(first, first + pages as u64) {
        // SAFETY: the caller's contract; the caller flushes on every CPU.
        if let Ok(flush) = unsafe { mapper.update_flags(page, flags) } {
            flush.ignore();
        }
    }
}

/// Unmaps `pages` kernel pages from `start` and hands each page's frame to `free` once the
/// translation is gone on every CPU (in batches: one shoot-down per 64 pages, nothing
/// allocated). Pages that are not mapped are skipped.
///
/// # Safety
/// The caller owns the pages and nothing uses them any more.
pub(crate) unsafe fn unmap_range(start: VirtAddr, pages: usize, mut free: impl FnMut(PhysFrame)) {
    const BATCH: usize = 64;
    let first = Page::<Size4KiB>::containing_address(start);
    let mut done = 0;
    while done < pages {
        let count = BATCH.min(pages - done);
        let batch_start = first + done as u64;
        let mut frames = [None; BATCH];
        {
            let mut guard = MAPPER.lock();
            let mapper = guard.as_mut().expect("paging::init has not run");
            for (i, slot) in frames.iter_mut().enumerate().take(count) {
                if let Ok((frame, flush)) = mapper.unmap(batch_start + i as u64) {
                    // Flushed on every CPU below, this one included.
                    flush.ignore();
                    *slot = Some(frame);
                }
            }
        }
        crate::arch::ipi::flush_tlb_kernel_range(batch_start.start_address(), count as u64);
        frames.into_iter().flatten().for_each(&mut free);
        done += count;
    }
}

#[cfg(feature = "ktest")]
#[crate::ktest]
fn tlb_shootdown_reaches_every_cpu() {
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};

    const VIRT: u64 = layout::SCRATCH.start;
    let virt = VirtAddr::new(VIRT);
    let frames: Vec<PhysFrame> = (0..2)
        .map(|_| super::page_alloc::alloc_frame().expect("memory"))
        .collect();
    for (i, frame) in frames.iter().enumerate() {
        // SAFETY: freshly allocated frames, written through the physical map before use.
        unsafe {
            super::phys_to_virt(frame.start_address())
                .as_mut_ptr::<u64>()
                .write(i as u64 + 1)
        };
    }
    let read_everywhere = || -> Vec<u64> {
        crate::cpu::all()
            .map(|c| {
                let seen = alloc::sync::Arc::new(AtomicU64::new(0));
                let out = seen.clone();
                crate::arch::ipi::smp_call_function(c.id, move || {
                    // SAFETY: VIRT is mapped (to one of the test frames) while this runs.
                    out.store(
                        unsafe { core::ptr::read_volatile(VIRT as *const u64) },
                        Ordering::SeqCst,
                    );
                })
                .expect("every CPU is online");
                seen.load(Ordering::SeqCst)
            })
            .collect()
    };
    // SAFETY: SCRATCH is the tests' own range and the frames are fresh.
    unsafe { map_page(virt, frames[0]) }.expect("map");
    assert!(
        read_everywhere().iter().all(|&v| v == 1),
        "every CPU sees the first frame"
    );
    // SAFETY: mapped above, read by nobody now.
    assert_eq!(unsafe { unmap_page(virt) }, Some(frames[0]));
    // SAFETY: as for the first mapping.
    unsafe { map_page(virt, frames[1]) }.expect("remap");
    let seen = read_everywhere();
    assert!(
        seen.iter().all(|&v| v == 2),
        "after the shoot-down every CPU sees the new frame: {seen:?}"
    );
    // SAFETY: mapped above, read by nobody now.
    assert_eq!(unsafe { unmap_page(virt) }, Some(frames[1]));
    for frame in frames {
        // SAFETY: unmapped everywhere, unused.
        unsafe { super::page_alloc::free_frame(frame) };
    }
}

/// Makes sure the kernel page containing `virt` is mapped, mapping a fresh zeroed frame if it
/// is not. For sparse tables (such as the slab descriptors) that are filled in on demand.
/// `Ok(true)` when it mapped a frame now.
pub(crate) fn ensure_mapped(virt: VirtAddr) -> Result<bool, MapToError<Size4KiB>> {
    use x86_64::structures::paging::Translate;
    let page = Page::<Size4KiB>::containing_address(virt);
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    if mapper.translate_addr(page.start_address()).is_some() {
        return Ok(false);
    }
    map_zeroed(mapper, page).map(|()| true)
}
