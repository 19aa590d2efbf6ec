//! The kernel's page tables, reached through the physical-memory mapping.
//!
//! Sheaf keeps the page tables the bootloader built and edits them with the `x86_64` crate's
//! [`OffsetPageTable`], which walks the tables through the physical-memory mapping.

use spin::Mutex;
use x86_64::VirtAddr;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};

static MAPPER: Mutex<Option<OffsetPageTable<'static>>> = Mutex::new(None);

/// Takes hold of the active level-4 page table.
pub fn init() {
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
        super::frame::alloc_frame()
    }
}

/// Maps `pages` pages from `start` to fresh, zeroed frames, writable and not executable.
///
/// Returns an error if memory runs out or a page is already mapped; the pages mapped before
/// the error stay mapped.
pub fn map_fresh(start: VirtAddr, pages: u64) -> Result<(), MapToError<Size4KiB>> {
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging::init has not run");
    let first = Page::<Size4KiB>::containing_address(start);
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for page in Page::range(first, first + pages) {
        let frame = Frames
            .allocate_frame()
            .ok_or(MapToError::FrameAllocationFailed)?;
        // SAFETY: the frame is fresh and mapped nowhere else; it is zeroed before the new
        // mapping is made visible, so the page never shows stale data.
        unsafe {
            super::phys_to_virt(frame.start_address())
                .as_mut_ptr::<u8>()
                .write_bytes(0, 4096);
            mapper.map_to(page, frame, flags, &mut Frames)?.flush();
        }
    }
    Ok(())
}
