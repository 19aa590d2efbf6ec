//! Debugging by cache flag: red zones, poisoning, caller tracking, and the reports produced when
//! something is wrong (Linux's `SLUB_DEBUG` checks).
//!
//! Debug caches (any of [`SlabFlags::SLAB_DEBUG_FLAGS`]) have no sheaves, so every allocation and
//! free reaches the slab layer, where the checks below run under the node lock:
//!
//! * **Red zones** (`SLAB_RED_ZONE`): bytes before and after each object hold 0xbb while the
//!   object is free and 0xcc while it is allocated. An overflow changes them; finding 0xbb when
//!   freeing means the object was already free (double free).
//! * **Poison** (`SLAB_POISON`): a freed object is filled with 0x6b and its last byte is 0xa5;
//!   allocation checks the pattern, so a write after free is caught.
//! * **Caller tracking** (`SLAB_STORE_USER`): the caller address of the last allocation and free
//!   of each object, and the CPU, are stored after the object.
//! * **Consistency** (`SLAB_CONSISTENCY_CHECKS`): a freed pointer must be an object of this
//!   cache: on a slab page, of this cache, at an object boundary, not already on the free list.
//!   And when a slab is freed (shrink, the free path giving back an empty slab beyond
//!   `min_partial`, destroy), every object of it is checked as a free object (red zones,
//!   poison, free pointer), as Linux's `free_slab` does (`free_slab_checks`).
//! * **Padding** (`SLAB_POISON`): the unused tail of a slab is checked when the slab is freed.
//!
//! [`KmemCache::validate`] (Linux's `validate_slab_cache`) checks every slab on demand: its
//! free list and counter, and in debug caches each object per its state.
//!
//! A problem is reported as a [`SlabReport`] naming the cache, the object and what was wrong; it
//! is returned when the operation can report it and kept in the cache's report log
//! ([`KmemCache::reports`]). The object is isolated: never handed out again and never freed. A
//! slab being freed with an isolated object is kept (Linux frees it after reporting): it goes
//! back on its node's lists, where its good objects are used again, and never becomes empty.

use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::KmemCache;
use crate::base::PAGE_SIZE;
use crate::flags::SlabFlags;
use crate::layout::TRACK_SIZE;
use crate::platform::Platform;
use crate::report::{REPORT_LOG_LEN, SlabErrorKind, SlabReport, Track, ValidateReport};

/// How many distinct locations [`KmemCache::for_each_trace`] tells apart.
pub const MAX_TRACES: usize = 64;

/// The objects of a `SLAB_STORE_USER` cache allocated (or last freed) at one call site with
/// one stack: a line of Linux's `alloc_traces` (`struct location`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceLocation {
    /// The call site ([`Track::addr`]); 0 when none was recorded.
    pub addr: usize,
    /// The stack ([`Track::handle`]); 0 for none.
    pub handle: u32,
    /// Objects.
    pub count: usize,
    /// Smallest, total and largest age of their records, in the platform's ticks.
    pub min_age: u64,
    /// See `min_age`.
    pub sum_age: u64,
    /// See `min_age`.
    pub max_age: u64,
    /// Smallest and largest thread id.
    pub min_pid: u32,
    /// See `min_pid`.
    pub max_pid: u32,
    /// The CPUs (bit N for CPU N, the first 64).
    pub cpus: u64,
    /// The nodes of the objects' slabs (bit N for node N, the first 64).
    pub nodes: u64,
}

impl TraceLocation {
    /// Counts one more object recorded by `t`, `age` ticks ago, in a slab of `node`.
    fn add(&mut self, t: &Track, age: u64, node: u16) {
        if self.count == 0 {
            (self.addr, self.handle) = (t.addr, t.handle);
            (self.min_age, self.max_age) = (age, age);
            (self.min_pid, self.max_pid) = (t.pid, t.pid);
        }
        self.count += 1;
        self.sum_age = self.sum_age.saturating_add(age);
        self.min_age = self.min_age.min(age);
        self.max_age = self.max_age.max(age);
        self.min_pid = self.min_pid.min(t.pid);
        self.max_pid = self.max_pid.max(t.pid);
        self.cpus |= 1u64.checked_shl(t.cpu).unwrap_or(0);
        self.nodes |= 1u64.checked_shl(u32::from(node)).unwrap_or(0);
    }
}
use crate::slabs::{FreeObject, Slab};

/// Red zone byte of a free object.
pub const SLUB_RED_INACTIVE: u8 = 0xbb;
/// Red zone byte of an allocated object.
pub const SLUB_RED_ACTIVE: u8 = 0xcc;
/// Poison byte of a free object.
pub const POISON_FREE: u8 = 0x6b;
/// Last byte of a poisoned object.
pub const POISON_END: u8 = 0xa5;
/// Filler of the unused bytes at the end of a slab in poisoned caches (Linux's
/// `POISON_INUSE`, checked by `slab_pad_check` when the slab is freed).
pub const SLAB_PADDING: u8 = 0x5a;
impl<P: Platform> KmemCache<P> {
    /// Builds a report about `object`.
    pub(crate) fn make_report(&self, object: usize, kind: SlabErrorKind) -> SlabReport {
        SlabReport {
            cache: self.cache_name(),
            object,
            tracks: self.reported_tracks(object, &kind),
            kind,
        }
    }

    /// The tracking records of `object` for a report of `kind`: for problems of an object of
    /// this cache (a double free, a red zone or poison overwritten, a bad free pointer, an
    /// object left at destroy) in a `SLAB_STORE_USER` cache, after checking that `object` is
    /// an object boundary of one of this cache's slabs.
    fn reported_tracks(&self, object: usize, kind: &SlabErrorKind) -> Option<[Track; 2]> {
        self.layout.track_offset?;
        let of_object = matches!(
            kind,
            SlabErrorKind::DoubleFree
                | SlabErrorKind::RedzoneOverwritten { .. }
                | SlabErrorKind::KmallocRedzoneOverwritten { .. }
                | SlabErrorKind::PoisonOverwritten { .. }
                | SlabErrorKind::FreelistCorrupted
                | SlabErrorKind::ObjectRemaining
                | SlabErrorKind::KfreeRcuNoMemory
        );
        if !of_object || self.obj_to_slab(object).is_err() {
            return None;
        }
        // SAFETY: `object` is an object slot of one of this cache's slabs (just checked), and
        // the reporter holds it (it is being freed, checked or destroyed).
        let (alloc, free) = unsafe { self.object_track(object as *const u8) }?;
        Some([alloc, free])
    }

    /// Records a report in the log and tells the platform.
    pub(crate) fn report(&self, object: usize, kind: SlabErrorKind) {
        let r = self.make_report(object, kind);
        self.platform.slab_error(&r);
        self.reports.lock().push(r);
    }

    /// The most recent reports of this cache (at most [`REPORT_LOG_LEN`](crate::report::REPORT_LOG_LEN)), oldest first, and
    /// the total number ever made.
    pub fn reports(&self) -> (Vec<SlabReport>, usize) {
        self.reports.lock().recent()
    }

    /// Number of objects isolated after a failed check (never handed out, never freed).
    pub fn isolated_objects(&self) -> usize {
        self.isolated.load(Ordering::Relaxed)
    }

    /// Counts `n` objects isolated in bulk (the rest of a slab whose free list is corrupt).
    pub(crate) fn add_isolated(&self, n: usize) {
        self.isolated.fetch_add(n, Ordering::Relaxed);
    }

    /// Isolates the object at `obj` after a failed check: counted once, and remembered, so
    /// that freeing it (again) is reported as a double free and not counted twice.
    pub(crate) fn isolate(&self, obj: usize) {
        if self.isolated_objs.lock().insert(obj) {
            self.add_isolated(1);
        }
    }

    /// Whether the object at `obj` was isolated by [`Self::isolate`].
    pub(crate) fn is_isolated(&self, obj: usize) -> bool {
        self.isolated_objs.lock().contains(&obj)
    }

    /// The unused tail of a slab of `objects` objects in a block of `order`: (offset, length).
    fn slab_padding(&self, objects: usize, order: u32) -> (usize, usize) {
        let used = objects * self.layout.size;
        (used, (PAGE_SIZE << order).saturating_sub(used))
    }

    /// Fills a new slab's unused tail with [`SLAB_PADDING`] (poisoned caches only).
    pub(crate) fn init_slab_padding(&self, base: *mut u8, objects: usize, order: u32) {
        if !self.poisons() {
            return;
        }
        let (offset, len) = self.slab_padding(objects, order);
        // SAFETY: the tail lies inside the slab's own block, past its last object.
        unsafe { base.add(offset).write_bytes(SLAB_PADDING, len) };
    }

    /// Checks a slab's unused tail before its pages go back (`slab_pad_check`): a changed byte
    /// is reported; the pages are freed all the same, as Linux does (nothing lives there).
    pub(crate) fn check_slab_padding(&self, base: *mut u8, objects: usize, order: u32) {
        if !self.poisons() {
            return;
        }
        let (offset, len) = self.slab_padding(objects, order);
        // SAFETY: as in `init_slab_padding`; the slab is being discarded and is ours alone.
        if let Some(bad) = unsafe { restore_bytes(base.add(offset), len, SLAB_PADDING) } {
            let offset = offset + bad;
            self.report(
                base as usize + offset,
                SlabErrorKind::PaddingOverwritten { offset },
            );
        }
    }

    fn poisons(&self) -> bool {
        self.flags.contains(SlabFlags::SLAB_POISON)
            && self.ctor.is_none()
            && !self.flags.contains(SlabFlags::SLAB_TYPESAFE_BY_RCU)
    }

    /// Writes the debug patterns of a free (`active == false`) or allocated object
    /// (`init_object`).
    pub(crate) fn init_object_debug(&self, obj: *mut u8, active: bool) {
        if !self.debug {
            return;
        }
        let l = &self.layout;
        // SAFETY: the red zones and the object lie inside the object's slot, owned by the caller.
        unsafe {
            if self.flags.contains(SlabFlags::SLAB_RED_ZONE) {
                let val = if active {
                    SLUB_RED_ACTIVE
                } else {
                    SLUB_RED_INACTIVE
                };
                obj.sub(l.red_left_pad).write_bytes(val, l.red_left_pad);
                obj.add(l.object_size)
                    .write_bytes(val, l.inuse - l.object_size);
            }
            if !active && self.poisons() {
                obj.write_bytes(POISON_FREE, l.object_size - 1);
                obj.add(l.object_size - 1).write(POISON_END);
            }
        }
    }

    /// Checks the debug patterns of an object expected to be free or allocated (`check_object`).
    /// An object to be freed whose red zones all say "free" is a double free.
    fn check_object(&self, obj: *mut u8, active: bool) -> Result<(), SlabErrorKind> {
        self.check_object_as(obj, active, active)
    }

    /// [`Self::check_object`]; `double_free` tells whether red zones that all say "free" on an
    /// object expected to be allocated mean a double free (when it is being freed) or simply
    /// an overwritten red zone (`validate`).
    fn check_object_as(
        &self,
        obj: *mut u8,
        active: bool,
        double_free: bool,
    ) -> Result<(), SlabErrorKind> {
        let l = &self.layout;
        // The first problem found is returned, and the range it was found in restored to
        // what it should hold (Linux's `restore_bytes`), so that this corruption is reported
        // once, not again at each later check of the object (validate, then shrink); another
        // corruption of the object is reported by the next check.
        // SAFETY: we read and write inside the object's slot, which the node lock protects
        // (or which the caller has to itself).
        unsafe {
            if self.flags.contains(SlabFlags::SLAB_RED_ZONE) {
                let (want, other) = if active {
                    (SLUB_RED_ACTIVE, SLUB_RED_INACTIVE)
                } else {
                    (SLUB_RED_INACTIVE, SLUB_RED_ACTIVE)
                };
                let left_start = obj.sub(l.red_left_pad);
                let right_start = obj.add(l.object_size);
                let right_len = l.inuse - l.object_size;
                let left = core::slice::from_raw_parts(left_start, l.red_left_pad);
                let right = core::slice::from_raw_parts(right_start, right_len);
                if double_free && left.iter().chain(right).all(|&b| b == other) {
                    return Err(SlabErrorKind::DoubleFree);
                }
                if let Some(i) = restore_bytes(left_start, l.red_left_pad, want) {
                    return Err(SlabErrorKind::RedzoneOverwritten {
                        offset: i as isize - l.red_left_pad as isize,
                    });
                }
                if let Some(i) = restore_bytes(right_start, right_len, want) {
                    return Err(SlabErrorKind::RedzoneOverwritten {
                        offset: (l.object_size + i) as isize,
                    });
                }
                if active
                    && let Some(orig) = self.orig_size(obj)
                    && let Some(i) =
                        restore_bytes(obj.add(orig), l.object_size - orig, SLUB_RED_ACTIVE)
                {
                    return Err(SlabErrorKind::KmallocRedzoneOverwritten {
                        offset: orig + i,
                        orig_size: orig,
                    });
                }
            }
            if !active && self.poisons() {
                let bad = restore_bytes(obj, l.object_size - 1, POISON_FREE).or_else(|| {
                    restore_bytes(obj.add(l.object_size - 1), 1, POISON_END)
                        .map(|_| l.object_size - 1)
                });
                if let Some(offset) = bad {
                    return Err(SlabErrorKind::PoisonOverwritten { offset });
                }
            }
        }
        Ok(())
    }

    fn set_track(&self, obj: *mut u8, free: bool, caller: usize) {
        if let Some(t) = self.layout.track_offset {
            let (_guard, cpu) = self.platform.pin();
            let mut track = Track {
                addr: caller,
                cpu: cpu as u32,
                ..Track::default()
            };
            self.platform.fill_track(&mut track);
            // SAFETY: the tracking records lie in the object's slot (layout), owned by us.
            unsafe {
                let at = obj
                    .add(t + if free { TRACK_SIZE } else { 0 })
                    .cast::<Track>();
                at.write_unaligned(track);
            }
        }
    }

    /// The size asked of `kmalloc` for the allocated `obj`, in kmalloc caches that record it
    /// (clamped to the object size, so a corrupted record cannot send a check out of the slot).
    pub(crate) fn orig_size(&self, obj: *mut u8) -> Option<usize> {
        let o = self.layout.orig_size_offset?;
        // SAFETY: the record lies in the object's slot (layout), owned by the caller.
        let size = unsafe { obj.add(o).cast::<usize>().read_unaligned() };
        Some(size.min(self.layout.object_size))
    }

    /// Records that `size` bytes of the allocated `obj` were asked for (`set_orig_size`) and,
    /// in a red-zoned cache, fills the rest of the object with the active red zone byte, so
    /// that the free checks a write past `size` (`kmalloc` red zone). Nothing in caches that do
    /// not record the size.
    pub(crate) fn set_orig_size(&self, obj: *mut u8, size: usize) {
        let Some(o) = self.layout.orig_size_offset else {
            return;
        };
        let size = size.min(self.layout.object_size);
        // SAFETY: the record and the object lie in the object's slot, owned by the caller.
        unsafe {
            obj.add(o).cast::<usize>().write_unaligned(size);
            if self.flags.contains(SlabFlags::SLAB_RED_ZONE) {
                obj.add(size)
                    .write_bytes(SLUB_RED_ACTIVE, self.layout.object_size - size);
            }
        }
    }

    /// The (allocation, free) tracking records of `obj` in a `SLAB_STORE_USER` cache.
    ///
    /// See also [`Self::for_each_trace`], the callers of all objects at once.
    ///
    /// # Safety
    /// `obj` must be an object of this cache (allocated or free).
    pub unsafe fn object_track(&self, obj: *const u8) -> Option<(Track, Track)> {
        let t = self.layout.track_offset?;
        // SAFETY: caller contract; the records are inside the slot.
        unsafe {
            let at = obj.add(t).cast::<Track>();
            Some((at.read_unaligned(), at.add(1).read_unaligned()))
        }
    }

    /// Checks run when a debug cache hands out `obj` (`alloc_debug_processing`). `false` means
    /// the object is bad: it was reported and must be isolated.
    pub(crate) fn alloc_debug_checks(&self, obj: *mut u8, caller: usize) -> bool {
        if let Err(kind) = self.check_object(obj, false) {
            self.report(obj as usize, kind);
            return false;
        }
        self.init_object_debug(obj, true);
        self.set_track(obj, false, caller);
        // Until kmalloc says otherwise (an allocation straight from the cache), the whole
        // object was asked for.
        self.set_orig_size(obj, self.layout.object_size);
        true
    }

    /// Checks run when a debug cache gets `obj` back (`free_debug_processing`), node lock held.
    pub(crate) fn free_debug_checks(
        &self,
        slab: &Slab,
        obj: *mut u8,
        caller: usize,
    ) -> Result<(), SlabErrorKind> {
        if self.on_freelist(slab, obj) {
            return Err(SlabErrorKind::DoubleFree);
        }
        self.check_object(obj, true)?;
        self.init_object_debug(obj, false);
        self.set_track(obj, true, caller);
        Ok(())
    }

    /// Is `obj` on the free list of `slab` (`on_freelist`)? Walks at most `objects` links.
    fn on_freelist(&self, slab: &Slab, obj: *mut u8) -> bool {
        slab.freelist_iter(self.free_pointer()).any(|f| f == obj)
    }

    /// The address of object `i` of `slab`.
    fn slab_object(&self, slab: &Slab, i: usize) -> *mut u8 {
        slab.base
            .wrapping_add(self.layout.red_left_pad + i * self.layout.size)
    }

    /// Is the free pointer stored in `obj`, a free object of `slab`, null or an object of the
    /// slab (the free-pointer part of `check_object`)? The caller holds the slab's node lock
    /// or has the slab to itself.
    fn free_pointer_valid(&self, slab: &Slab, obj: *mut u8) -> bool {
        let fp = self.free_pointer();
        // SAFETY: `obj` is a free object of `slab`, whose free-pointer word we may read.
        let next = unsafe { fp.get(obj) };
        next.is_null() || slab.is_object(fp, next as usize)
    }

    /// Checks every object of an empty slab about to be freed, under
    /// `SLAB_CONSISTENCY_CHECKS` (Linux's `free_slab`: `check_object` of each object): each
    /// must have the patterns of a free object and a valid free pointer. Returns `true` when
    /// one did not: the slab must then be kept.
    ///
    /// A bad object is reported and isolated, as on the allocation path: the slab's free list
    /// is rebuilt (in address order) without it, it counts as in use, and it gets the red
    /// zones of an allocated object so that `validate` does not report it again. Linux
    /// reports and frees the slab all the same; Sheaf keeps it, so that memory somebody wrote
    /// to after freeing it goes neither back to the page allocator nor out to a new user.
    ///
    /// `slab` is empty, on no list and the caller's alone (`discard_slab`).
    pub(crate) fn free_slab_checks(&self, slab: &mut Slab) -> bool {
        if !self.flags.contains(SlabFlags::SLAB_CONSISTENCY_CHECKS) {
            return false;
        }
        let fp = self.free_pointer();
        // Forget the free list (every object is free) without touching the objects, whose links
        // are checked below; the list is rebuilt from those that pass.
        slab.freelist_forget();
        let mut bad = 0;
        for i in (0..slab.objects as usize).rev() {
            let obj = self.slab_object(slab, i);
            let check = self.check_object(obj, false).and_then(|()| {
                if self.free_pointer_valid(slab, obj) {
                    Ok(())
                } else {
                    Err(SlabErrorKind::FreelistCorrupted)
                }
            });
            match check {
                Ok(()) => {
                    // SAFETY: an object slot of the slab (not null), free (the slab is empty)
                    // and unused; the slab is ours alone and its free list was emptied, so no
                    // other token names it.
                    let obj = unsafe { FreeObject::new(NonNull::new_unchecked(obj)) };
                    slab.freelist_push(fp, obj);
                }
                Err(kind) => {
                    self.report(obj as usize, kind);
                    self.init_object_debug(obj, true);
                    bad += 1;
                }
            }
        }
        slab.inuse = bad;
        if bad != 0 {
            self.add_isolated(bad as usize);
        }
        bad != 0
    }

    /// Checks every slab of the cache (Linux's `validate_slab_cache`, behind
    /// `/sys/kernel/slab/NAME/validate`): under each node's lock, every slab on its partial
    /// and full lists. A slab's free list must hold objects of the slab only, without a cycle,
    /// and exactly as many as the slab's counter says are free; then, in a debug cache, each
    /// object must have the red zones and poison of its state, free (on the free list) or
    /// allocated. Every problem is reported as the free and allocation checks report them (the
    /// cache's log, [`Platform::slab_error`]) and returned, with the numbers of slabs and
    /// objects checked.
    ///
    /// Objects held in sheaves (per-CPU, barn, prefilled, `rcu_free`) are allocated as far as
    /// their slabs know, and checked as such, as in Linux. Unlike Linux, which first flushes
    /// the CPUs' sheaves (`flush_all`), `validate` changes nothing: debug caches have no
    /// sheaves, so their checks are the same. Objects isolated after a failed check count as
    /// allocated too; one isolated on the allocation path still has the patterns of a free
    /// object and is reported again.
    #[doc(alias = "validate_slab_cache")]
    pub fn validate(&self) -> ValidateReport {
        if let Some(p) = self.alias_of() {
            return p.validate();
        }
        // Allocated before any node lock is taken: an allocation may come to this cache.
        let mut free = vec![false; self.layout.objects.max(self.layout.min_objects)];
        let mut out = ValidateReport {
            reports: Vec::with_capacity(REPORT_LOG_LEN),
            ..ValidateReport::default()
        };
        self.for_each_slab(|slab| {
            out.slabs += 1;
            out.objects += slab.objects as usize;
            self.validate_slab(slab, &mut free, &mut out);
        });
        out
    }

    /// For the objects in use of a `SLAB_STORE_USER` cache, where they were allocated
    /// (`free == false`) or last freed (`free == true`, before they were allocated again; a
    /// location of caller 0 if never): Linux's `alloc_traces`/`free_traces` under debugfs,
    /// whose totals are both the objects in use. Objects are grouped by call site and stack
    /// (Linux's `add_location`), over every slab on the node lists; `f` gets each
    /// [`TraceLocation`], most objects first. Allocates nothing: at most [`MAX_TRACES`]
    /// locations are told apart (the rest are counted in the last, as caller 0), and the free
    /// objects of a slab are marked in a bitmap on the stack (slabs of more than 4096 objects
    /// are skipped). Objects in sheaves count as allocated, as for `validate`.
    pub fn for_each_trace(&self, free: bool, mut f: impl FnMut(&TraceLocation)) {
        if self.layout.track_offset.is_none() {
            return;
        }
        let now = self.platform.jiffies();
        let mut locations = [TraceLocation::default(); MAX_TRACES];
        let mut used = 0;
        let fp = self.free_pointer();
        self.for_each_slab(|slab| {
            let objects = slab.objects as usize;
            let mut is_free = [0u64; 64];
            if objects > 64 * 64 {
                return;
            }
            let first = slab.base as usize + self.layout.red_left_pad;
            let mut next = slab.freelist_head();
            let mut listed = 0;
            while !next.is_null() && listed < objects && slab.is_object(fp, next as usize) {
                let i = (next as usize - first) / self.layout.size;
                is_free[i / 64] |= 1 << (i % 64);
                listed += 1;
                // SAFETY: `next` is an object of this slab on its free list (node lock held).
                next = unsafe { fp.get(next) };
            }
            for i in 0..objects {
                if is_free[i / 64] >> (i % 64) & 1 != 0 {
                    continue;
                }
                let obj = (first + i * self.layout.size) as *const u8;
                // SAFETY: an object slot of this slab, whose node lock is held.
                let Some((alloc, freed)) = (unsafe { self.object_track(obj) }) else {
                    return;
                };
                let t = if free { freed } else { alloc };
                let found = locations[..used]
                    .iter()
                    .position(|l| l.addr == t.addr && l.handle == t.handle);
                let slot = match found {
                    Some(j) => j,
                    None if used < MAX_TRACES => {
                        used += 1;
                        used - 1
                    }
                    // Out of room: counted as an unknown caller in the last entry.
                    None => {
                        let last = &mut locations[MAX_TRACES - 1];
                        (last.addr, last.handle) = (0, 0);
                        MAX_TRACES - 1
                    }
                };
                locations[slot].add(&t, now.wrapping_sub(t.when), slab.node);
            }
        });
        let locations = &mut locations[..used];
        locations.sort_unstable_by(|a, b| b.count.cmp(&a.count).then(a.addr.cmp(&b.addr)));
        for l in locations.iter() {
            f(l);
        }
    }

    /// [`Self::validate`] of one slab (`validate_slab`), its node lock held; `free` has room
    /// for a slab's objects.
    fn validate_slab(&self, slab: &Slab, free: &mut [bool], out: &mut ValidateReport) {
        let mut problem = |object: usize, kind: SlabErrorKind| {
            self.report(object, kind.clone());
            out.push(self.make_report(object, kind));
        };
        let fp = self.free_pointer();
        let objects = slab.objects as usize;
        let Some(free) = free.get_mut(..objects) else {
            problem(slab.base as usize, SlabErrorKind::FreelistCorrupted);
            return;
        };
        free.fill(false);
        let first = slab.base as usize + self.layout.red_left_pad;
        // The link being followed is stored in the descriptor, then in each free object.
        let mut holder = slab.base as usize;
        let mut next = slab.freelist_head();
        let mut listed = 0;
        while !next.is_null() {
            let seen = slab
                .is_object(fp, next as usize)
                .then(|| &mut free[(next as usize - first) / self.layout.size]);
            match seen {
                Some(seen) if !*seen => *seen = true,
                // Outside the slab, or already on the list (a cycle).
                _ => {
                    problem(holder, SlabErrorKind::FreelistCorrupted);
                    return;
                }
            }
            listed += 1;
            holder = next as usize;
            // SAFETY: `next` is an object slot of this slab on its free list (node lock
            // held): a free object, whose free-pointer word we may read.
            next = unsafe { fp.get(next) };
        }
        let inuse = slab.inuse as usize;
        if listed + inuse != objects {
            problem(
                slab.base as usize,
                SlabErrorKind::WrongObjectCount {
                    inuse,
                    free_listed: listed,
                },
            );
            return;
        }
        if !self.debug {
            return;
        }
        for (i, &is_free) in free.iter().enumerate() {
            let obj = self.slab_object(slab, i);
            if let Err(kind) = self.check_object_as(obj, !is_free, false) {
                problem(obj as usize, kind);
            }
        }
    }
}

/// Linux's `check_bytes` and `restore_bytes`: the offset of the first of the `len` bytes at
/// `start` that is not `value`, after writing `value` over everything from it to the last
/// such byte, so that the same corruption is not reported again by a later check.
///
/// # Safety
/// The `len` bytes at `start` are the caller's to read and write (inside an object slot or
/// slab it holds the node lock of, or has to itself).
unsafe fn restore_bytes(start: *mut u8, len: usize, value: u8) -> Option<usize> {
    // SAFETY: caller contract.
    let bytes = unsafe { core::slice::from_raw_parts_mut(start, len) };
    let first = bytes.iter().position(|&b| b != value)?;
    let last = bytes.iter().rposition(|&b| b != value).unwrap_or(first);
    bytes[first..=last].fill(value);
    Some(first)
}
