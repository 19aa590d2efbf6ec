//! Owned kernel mappings with permissions: the safe way to get fresh pages mapped at a virtual
//! address of their own, in the [`layout::MODULES`] range (Linux's `module_alloc` /
//! `execmem_alloc`, with `set_memory_ro`/`set_memory_x` as [`KernelMapping::seal`]).
//!
//! A [`KernelMapping`] owns its virtual range and the frames behind it. It is born writable and
//! not executable, so its owner can fill it through [`KernelMapping::as_mut_slice`]; then it is
//! sealed to the permissions its content needs ([`Protection`]): code read-only and executable,
//! constants read-only, data read-write, never writable and executable at once (W^X). Dropping
//! it unmaps every page, shoots the translations down on every CPU, and only then gives the
//! frames back: a stale pointer into it faults instead of reading memory someone else now owns.
//! Each mapping is followed by an unmapped guard page, so running off its end faults too.
//!
//! Why the safe methods cannot break memory: the range is taken from a bitmap of the MODULES
//! range that nothing else allocates from, so no other code has pointers into it; the frames
//! come fresh from the page allocator and are zeroed before they are mapped; a mutable view is
//! handed out only through `&mut self` while the pages are writable, so it cannot outlive a
//! `seal` or the drop; a shared view ([`KernelMapping::as_slice`]) borrows `self`, so the drop
//! waits for it. Executing the content is the caller's business and takes `unsafe` (turning an
//! address into a function pointer).

use super::{PAGE_SIZE, layout, page_alloc, paging};
use crate::sync::SpinLock;
use x86_64::VirtAddr;
use x86_64::structures::paging::PageTableFlags;

/// The permissions of a mapping's pages. Never writable and executable together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Readable and writable, not executable: data, and every mapping until it is sealed.
    ReadWrite,
    /// Readable only: constants, and data made read-only after initialisation.
    ReadOnly,
    /// Readable and executable, not writable: code.
    ReadExec,
}

impl Protection {
    /// The page-table flags of a present page with these permissions.
    fn flags(self) -> PageTableFlags {
        let present = PageTableFlags::PRESENT;
        match self {
            Protection::ReadWrite => {
                present | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE
            }
            Protection::ReadOnly => present | PageTableFlags::NO_EXECUTE,
            Protection::ReadExec => present,
        }
    }
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Zero pages were asked for.
    Empty,
    /// No free stretch of the MODULES range is large enough.
    NoVirtualSpace,
    /// No free frame for a page or a page table.
    OutOfMemory,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MapError::Empty => "a mapping of zero pages",
            MapError::NoVirtualSpace => "the module address range is full",
            MapError::OutOfMemory => "out of memory",
        })
    }
}

/// Pages in the MODULES range.
const RANGE_PAGES: usize = (layout::MODULES.size() / PAGE_SIZE as u64) as usize;
/// One bit per page of the MODULES range: set while a mapping (or its guard page) holds it.
static USED: SpinLock<[u64; RANGE_PAGES.div_ceil(64)]> =
    SpinLock::new([0; RANGE_PAGES.div_ceil(64)]);

fn bit(map: &[u64], page: usize) -> bool {
    map[page / 64] & (1 << (page % 64)) != 0
}

fn set_bits(map: &mut [u64], first: usize, count: usize, value: bool) {
    for page in first..first + count {
        if value {
            map[page / 64] |= 1 << (page % 64);
        } else {
            map[page / 64] &= !(1 << (page % 64));
        }
    }
}

/// Takes `count` consecutive pages of the MODULES range (first fit); returns the first page's
/// index.
fn take_range(count: usize) -> Option<usize> {
    let mut used = USED.lock();
    let mut run = 0;
    for page in 0..RANGE_PAGES {
        if bit(&*used, page) {
            run = 0;
            continue;
        }
        run += 1;
        if run == count {
            let first = page + 1 - count;
            set_bits(&mut *used, first, count, true);
            return Some(first);
        }
    }
    None
}

fn give_range(first: usize, count: usize) {
    set_bits(&mut *USED.lock(), first, count, false);
}

fn page_addr(index: usize) -> VirtAddr {
    VirtAddr::new(layout::MODULES.start + (index * PAGE_SIZE) as u64)
}

/// Fresh pages mapped at a virtual range of their own in the MODULES range, owned: see the
/// module docs.
#[derive(Debug)]
pub struct KernelMapping {
    /// Index of the first page in the MODULES range.
    first: usize,
    /// Mapped pages (the guard page after them is not counted).
    pages: usize,
    /// Pages of the range taken: the mapped ones and the guard page (and, while `new` fails,
    /// the ones it could not map).
    reserved: usize,
    protection: Protection,
}

impl KernelMapping {
    /// Maps `pages` fresh, zeroed pages, readable and writable (not executable), followed by an
    /// unmapped guard page. Fails cleanly, with nothing left taken, when the range or memory
    /// runs out.
    pub fn new(pages: usize) -> Result<Self, MapError> {
        if pages == 0 {
            return Err(MapError::Empty);
        }
        let with_guard = pages.checked_add(1).ok_or(MapError::NoVirtualSpace)?;
        let first = take_range(with_guard).ok_or(MapError::NoVirtualSpace)?;
        let mut mapped = 0;
        while mapped < pages {
            if paging::map_fresh(page_addr(first + mapped), 1).is_err() {
                break;
            }
            mapped += 1;
        }
        let mapping = Self {
            first,
            pages: mapped,
            reserved: with_guard,
            protection: Protection::ReadWrite,
        };
        if mapped < pages {
            // The drop unmaps and frees what was mapped, and gives the whole range back.
            drop(mapping);
            return Err(MapError::OutOfMemory);
        }
        Ok(mapping)
    }

    /// The first address of the mapping.
    pub fn start(&self) -> VirtAddr {
        page_addr(self.first)
    }

    /// The mapping's size in bytes.
    pub fn len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// Whether the mapping has no pages (never true: a mapping has at least one).
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// Number of pages mapped.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The pages' current permissions.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    /// The content, to read.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `pages` pages from `start` are mapped readable for as long as `self` lives
        // (the drop unmaps them and needs `self`, which this borrow holds), and are owned by
        // this mapping alone (module docs).
        unsafe { core::slice::from_raw_parts(self.start().as_ptr(), self.len()) }
    }

    /// The content, to write, while the mapping is writable ([`Protection::ReadWrite`]);
    /// `None` once it is sealed read-only or executable.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        if self.protection != Protection::ReadWrite {
            return None;
        }
        // SAFETY: as in `as_slice`, and the pages are writable until `seal`, which needs
        // `&mut self` and so waits for this borrow to end.
        Some(unsafe { core::slice::from_raw_parts_mut(self.start().as_mut_ptr(), self.len()) })
    }

    /// Changes every page's permissions to `protection`, on every CPU (the TLB entries of the
    /// old permissions are shot down before this returns).
    pub fn seal(&mut self, protection: Protection) {
        // SAFETY: the pages are this mapping's own (module docs); no reference into them
        // exists (`&mut self`), so making them read-only breaks no `&mut`.
        unsafe { paging::update_flags(self.start(), self.pages, protection.flags()) };
        self.protection = protection;
    }
}

/// The most pages [`KernelMapping::seal_all`] flushes in one span (gaps between the mappings
/// included); mappings further apart are flushed one by one.
const SEAL_SPAN_PAGES: u64 = 256;

impl KernelMapping {
    /// [`seal`](Self::seal)s each mapping to its protection with one TLB shoot-down for all
    /// (when they lie within [`SEAL_SPAN_PAGES`] of each other, as a module's regions do):
    /// what a module load does for its regions, where a shoot-down per region cost more than
    /// the rest of the load under QEMU.
    pub fn seal_all(mappings: &mut [(&mut KernelMapping, Protection)]) {
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for (k, p) in mappings.iter_mut() {
            // SAFETY: as in `seal`: the pages are this mapping's own and no reference into
            // them exists (`&mut`); the shoot-down follows below, before this returns.
            unsafe { paging::update_flags_unflushed(k.start(), k.pages, p.flags()) };
            k.protection = *p;
            lo = lo.min(k.start().as_u64());
            hi = hi.max(k.start().as_u64() + k.len() as u64);
        }
        if lo >= hi {
            return;
        }
        let span = (hi - lo) / PAGE_SIZE as u64;
        if span <= SEAL_SPAN_PAGES {
            crate::arch::ipi::flush_tlb_kernel_range(VirtAddr::new(lo), span);
        } else {
            for (k, _) in mappings.iter() {
                crate::arch::ipi::flush_tlb_kernel_range(k.start(), k.pages as u64);
            }
        }
    }
}

impl Drop for KernelMapping {
    fn drop(&mut self) {
        let start = self.start();
        let free = |frame| {
            // SAFETY: `unmap_range` hands a frame over only once its page is unmapped and the
            // translation shot down on every CPU, so nothing reaches it any more.
            unsafe { page_alloc::free_frame(frame) }
        };
        // SAFETY: the pages are this mapping's own and nothing borrows them (`&mut self`).
        unsafe { paging::unmap_range(start, self.pages, free) };
        give_range(self.first, self.reserved);
    }
}

/// Pages of the MODULES range in use by mappings, guard pages included (for tests and
/// statistics).
pub fn pages_in_use() -> usize {
    USED.lock().iter().map(|w| w.count_ones() as usize).sum()
}

/// Out of memory part-way (here at once: memory is exhausted), `new` fails and gives back the
/// whole virtual range it took (guard page and unmapped tail included).
#[crate::ktest]
fn a_mapping_that_runs_out_of_memory_gives_its_range_back() {
    // The page tables of the range's start exist after a first mapping.
    drop(KernelMapping::new(4).expect("memory"));
    crate::selftest::quiesce();
    let range_before = pages_in_use();
    let exhausted = crate::selftest::exhaust();
    let result = KernelMapping::new(8);
    let range_after = pages_in_use();
    exhausted.give_back();
    assert_eq!(result.unwrap_err(), MapError::OutOfMemory);
    assert_eq!(range_after, range_before, "the range comes back whole");
}

#[crate::ktest]
fn a_mapping_is_zeroed_writable_then_sealed_and_gives_everything_back() {
    // A first mapping makes the page tables of the range's start, which stay.
    drop(KernelMapping::new(4).expect("memory"));
    let frames_before = page_alloc::stats().free();
    let range_before = pages_in_use();
    let mut m = KernelMapping::new(3).expect("memory");
    assert_eq!(m.len(), 3 * PAGE_SIZE);
    assert!(layout::MODULES.contains(m.start().as_u64()));
    assert_eq!(pages_in_use(), range_before + 4, "three pages and a guard");
    let data = m.as_mut_slice().expect("writable until sealed");
    assert!(data.iter().all(|&b| b == 0), "fresh pages are zeroed");
    data[0] = 0xc3;
    data[3 * PAGE_SIZE - 1] = 7;
    m.seal(Protection::ReadExec);
    assert!(m.as_mut_slice().is_none(), "sealed code is not writable");
    assert_eq!(m.as_slice()[0], 0xc3, "the content stays");
    assert_eq!(m.as_slice()[3 * PAGE_SIZE - 1], 7);
    m.seal(Protection::ReadWrite);
    assert!(m.as_mut_slice().is_some(), "writable again once sealed so");
    let second = KernelMapping::new(1).expect("memory");
    assert!(
        second.start().as_u64() >= m.start().as_u64() + 4 * PAGE_SIZE as u64
            || second.start().as_u64() + 2 * PAGE_SIZE as u64 <= m.start().as_u64(),
        "mappings never share pages or guard pages"
    );
    drop((m, second));
    assert_eq!(pages_in_use(), range_before, "the range comes back");
    assert_eq!(
        page_alloc::stats().free(),
        frames_before,
        "the frames come back"
    );
    assert_eq!(KernelMapping::new(0).unwrap_err(), MapError::Empty);
}

/// A write to a sealed read-only mapping faults (CR0.WP: the kernel honours read-only pages).
#[crate::ktest(fault = "page_fault")]
fn a_write_to_sealed_code_faults() {
    let mut m = KernelMapping::new(1).expect("memory");
    m.seal(Protection::ReadExec);
    let p = m.start().as_mut_ptr::<u8>();
    // SAFETY: not sound on purpose: the page is mapped read-only and the write must fault.
    unsafe { core::ptr::write_volatile(p, 1) };
}

/// A read through a pointer kept past the drop faults: the pages are unmapped on every CPU
/// before their frames go back.
#[crate::ktest(fault = "page_fault")]
fn a_read_after_the_drop_faults() {
    let m = KernelMapping::new(1).expect("memory");
    let p = m.start().as_ptr::<u8>();
    // Another CPU caches the translation first, so a missing shoot-down would show.
    let other = crate::cpu::other_online_ids().next();
    if let Some(cpu) = other {
        let addr = p as usize;
        crate::arch::ipi::smp_call_function(cpu, move || {
            // SAFETY: mapped while the mapping lives, which it does until this call returns.
            let _ = unsafe { core::ptr::read_volatile(addr as *const u8) };
        })
        .expect("online");
    }
    // SAFETY: mapped while `m` lives; this CPU caches the translation too.
    let _ = unsafe { core::ptr::read_volatile(p) };
    drop(m);
    // SAFETY: not sound on purpose: the page is unmapped and the read must fault.
    let _ = unsafe { core::ptr::read_volatile(p) };
}
