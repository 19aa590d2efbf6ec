//! Sheaves: per-CPU arrays of object pointers, and the slow paths that trade them.
//!
//! A sheaf is a header followed by an array of `capacity` object pointers. Each CPU has, per
//! cache, a `main` sheaf that the fast paths pop from and push to (see [`crate::cache`]) and an
//! optional `spare`. When `main` runs empty (allocation) or full (free), the slow paths here
//! exchange it, in order of cost: with the spare, with the node's [`Barn`](crate::barn::Barn),
//! and finally with the slabs (refill from / flush to the slab free lists).
//!
//! A cache without sheaves (capacity 0, e.g. debug caches) points `main` at one shared static
//! zero-capacity sheaf: the fast paths see it as both empty and full and fall into the slow
//! paths, which then go straight to the slabs. So the fast paths need no "has sheaves" test.
//!
//! Where sheaves come from: Linux allocates them with `kmalloc`, which needs care because the
//! kmalloc caches have sheaves themselves. Sheaf gives every cache with sheaves a private
//! *sheaf cache* (a cache without sheaves whose objects are exactly one sheaf: 32-byte header
//! plus `capacity` pointers), so allocating a sheaf never recurses into the cache being
//! served. Capacities are still rounded as Linux does, so that a sheaf would exactly fill its
//! kmalloc bucket (60 pointers: 512 bytes). Oversize prefilled sheaves get whole pages.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use crate::barn::ReplaceFull;
use crate::cache::KmemCache;
use crate::debug::SlabReport;
use crate::layout::{SHEAF_HEADER, WORD};
use crate::platform::{CPU_SLOT_BYTES, Gfp, Platform, cpu_slot, get_order, slot_cpu};
use crate::stats::Stat;

/// Objects moved per batch when a sheaf is flushed to slabs (`PCS_BATCH_MAX`).
pub const SHEAF_FLUSH_BATCH: usize = 32;

/// Marks a sheaf allocated from the cache's sheaf cache rather than from whole pages.
const NOT_OVERSIZE: u32 = u32::MAX;

/// The header of a sheaf (Linux's `struct slab_sheaf`); `capacity` object pointers follow it.
#[repr(C)]
#[derive(Debug)]
pub struct Sheaf {
    /// Number of objects in the sheaf.
    pub(crate) size: u32,
    /// Number of pointers the array has room for.
    pub(crate) capacity: u32,
    /// Node the sheaf was allocated for.
    pub(crate) node: u32,
    /// Page order of an oversize prefilled sheaf, or `u32::MAX` for a regular one.
    pub(crate) oversize_order: u32,
    /// Address of the owning cache.
    pub(crate) cache: usize,
    /// The free fast path pushes while `size < push_limit`: `capacity`, or 0 in caches of a
    /// multi-node machine, whose frees all take the slow path for its remote-node test (so
    /// that the single-node fast path does not pay for that test).
    pub(crate) push_limit: u32,
    _reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Sheaf>() == SHEAF_HEADER);

impl Sheaf {
    /// A header with room for `capacity` objects holding `size` of them (for tests of the barn:
    /// real sheaves are allocated with their pointer array).
    pub(crate) const fn header(capacity: u32, size: u32) -> Self {
        Self {
            size,
            capacity,
            node: 0,
            oversize_order: NOT_OVERSIZE,
            cache: 0,
            push_limit: capacity,
            _reserved: 0,
        }
    }

    /// The pointer array following the header.
    ///
    /// # Safety
    /// `this` must point to a sheaf allocated with its array (or to the static empty sheaf, in
    /// which case the array has no element).
    #[inline(always)]
    pub(crate) unsafe fn objects(this: *mut Sheaf) -> *mut *mut u8 {
        // SAFETY: the array starts right after the 32-byte header (caller contract).
        unsafe { this.add(1).cast() }
    }
}

struct StaticSheaf(Sheaf);
// SAFETY: the static sheaf is never written (capacity 0: the fast paths never store into it).
unsafe impl Sync for StaticSheaf {}

/// The one zero-capacity sheaf shared by all caches without sheaves.
static EMPTY_SHEAF: StaticSheaf = StaticSheaf(Sheaf::header(0, 0));

/// Pointer to the shared zero-capacity sheaf. Only ever read through.
pub(crate) fn empty_sheaf() -> *mut Sheaf {
    ptr::addr_of!(EMPTY_SHEAF.0).cast_mut()
}

/// One CPU's sheaves of one cache (Linux's `struct slub_percpu_sheaves`), as seen by the slow
/// paths while the CPU is pinned.
///
/// Borrowed from the CPU's [`PerCpu`] slot in [`KmemCache::cpu_sheaves`].
pub(crate) struct PerCpuSheaves<'a> {
    /// Never null: a real sheaf or the static empty one.
    pub(crate) main: &'a mut *mut Sheaf,
    /// Null, or a sheaf in any state (empty, partially filled or full).
    pub(crate) spare: &'a mut *mut Sheaf,
    /// Null, or the sheaf collecting `kfree_rcu` objects (never full: a full one is handed
    /// to RCU at once).
    pub(crate) rcu_free: &'a mut *mut Sheaf,
    /// This CPU's node.
    pub(crate) node: usize,
}

/// A CPU's slot in a cache: its sheaves and node, alone on a cache line.
#[repr(C, align(64))]
pub(crate) struct PerCpu {
    /// Never null: a real sheaf or the static empty one. The fast paths read only this.
    pub(crate) main: UnsafeCell<*mut Sheaf>,
    /// Null, or a sheaf in any state.
    pub(crate) spare: UnsafeCell<*mut Sheaf>,
    /// Null, or the sheaf collecting `kfree_rcu` objects.
    pub(crate) rcu_free: UnsafeCell<*mut Sheaf>,
    /// This CPU's node.
    pub(crate) node: usize,
}

const _: () = assert!(core::mem::size_of::<PerCpu>() == CPU_SLOT_BYTES);

/// The page source could not provide the memory asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// A sheaf handed to a caller by [`KmemCache::kmem_cache_prefill_sheaf`]: allocations from it
/// cannot fail until it is empty, which lets a caller reserve objects before entering a section
/// that must not fail (Linux uses this for maple tree nodes).
///
/// Give it back with [`KmemCache::kmem_cache_return_sheaf`]; dropping it leaks its objects.
#[must_use = "return the sheaf with kmem_cache_return_sheaf"]
#[derive(Debug)]
pub struct PrefilledSheaf {
    sheaf: NonNull<Sheaf>,
}

// SAFETY: a prefilled sheaf is owned by whoever holds this handle; it is not per-CPU state.
unsafe impl Send for PrefilledSheaf {}

impl<P: Platform> KmemCache<P> {
    /// The sheaves of `cpu`.
    ///
    /// # Safety
    /// The caller is pinned to `cpu` (or nobody else uses the cache), and holds no other
    /// reference to that CPU's sheaves.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn pcs(&self, cpu: usize) -> PerCpuSheaves<'_> {
        let slot = &self.cpu_sheaves[cpu + 1];
        // SAFETY: caller contract: this CPU's sheaves are exclusively ours.
        unsafe {
            PerCpuSheaves {
                main: &mut *slot.main.get(),
                spare: &mut *slot.spare.get(),
                rcu_free: &mut *slot.rcu_free.get(),
                node: slot.node,
            }
        }
    }

    /// The `push_limit` of this cache's sheaves of `capacity` (see [`Sheaf::push_limit`]).
    fn push_limit(&self, capacity: usize) -> u32 {
        if self.multi_node { 0 } else { capacity as u32 }
    }

    /// Allocates an empty sheaf of this cache's capacity from its sheaf cache
    /// (`alloc_empty_sheaf`).
    pub(crate) fn alloc_empty_sheaf(&self, node: usize, gfp: Gfp) -> Option<NonNull<Sheaf>> {
        let sc = self.sheaf_cache.as_ref()?;
        let s = sc.alloc(gfp)?.cast::<Sheaf>();
        // SAFETY: the object is big enough for a header and `sheaf_capacity` pointers.
        unsafe {
            s.as_ptr().write(Sheaf {
                capacity: self.sheaf_capacity as u32,
                node: node as u32,
                cache: self as *const Self as usize,
                push_limit: self.push_limit(self.sheaf_capacity),
                ..Sheaf::header(0, 0)
            });
        }
        self.stat_add(Stat::SheafAlloc, 1);
        Some(s)
    }

    /// Allocates an oversize sheaf for `capacity` objects from whole pages.
    fn alloc_oversize_sheaf(
        &self,
        capacity: usize,
        node: usize,
        gfp: Gfp,
    ) -> Option<NonNull<Sheaf>> {
        let order = get_order(SHEAF_HEADER + capacity * WORD);
        let p = self.platform.alloc_pages(order, node, gfp)?.cast::<Sheaf>();
        // SAFETY: the block holds the header and `capacity` pointers.
        unsafe {
            p.as_ptr().write(Sheaf {
                capacity: capacity as u32,
                node: node as u32,
                oversize_order: order,
                cache: self as *const Self as usize,
                push_limit: self.push_limit(capacity),
                ..Sheaf::header(0, 0)
            });
        }
        self.stat_add(Stat::SheafAlloc, 1);
        Some(p)
    }

    /// Frees an empty sheaf structure (`free_empty_sheaf`).
    ///
    /// # Safety
    /// `s` must be an empty sheaf of this cache, owned by the caller.
    pub(crate) unsafe fn free_sheaf(&self, s: NonNull<Sheaf>) {
        // SAFETY: the caller owns the sheaf; it came from the sheaf cache or from pages.
        unsafe {
            debug_assert_eq!(s.as_ref().size, 0);
            let order = s.as_ref().oversize_order;
            if order == NOT_OVERSIZE {
                let sc = self
                    .sheaf_cache
                    .as_ref()
                    .expect("regular sheaf implies a sheaf cache");
                let _ = sc.free(s.cast());
            } else {
                self.platform.free_pages(s.cast(), order);
            }
        }
        self.stat_add(Stat::SheafFree, 1);
    }

    /// Fills `sheaf` from the slabs of `node` up to `target` objects (`refill_sheaf`); returns
    /// how many were added.
    ///
    /// # Safety
    /// The caller owns `sheaf`, a real sheaf of this cache, and `target <= capacity`.
    pub(crate) unsafe fn refill_sheaf(
        &self,
        sheaf: *mut Sheaf,
        target: usize,
        node: usize,
        gfp: Gfp,
    ) -> usize {
        // SAFETY: the caller owns the sheaf; slots `size..target` are inside its array.
        let got = unsafe {
            let size = (*sheaf).size as usize;
            if size >= target {
                return 0;
            }
            let slots =
                core::slice::from_raw_parts_mut(Sheaf::objects(sheaf).add(size), target - size);
            let got = self.alloc_from_slabs(node, gfp, slots, 0);
            (*sheaf).size += got as u32;
            got
        };
        self.stat_add(Stat::SheafRefill, got as u64);
        got
    }

    /// Returns every object of `sheaf` to the slabs, [`SHEAF_FLUSH_BATCH`] at a time
    /// (`sheaf_flush_unused`): each batch is copied out of the sheaf first, so the slab locks
    /// are taken with the sheaf already consistent.
    ///
    /// # Safety
    /// The caller owns `sheaf` (a real sheaf of this cache).
    pub(crate) unsafe fn sheaf_flush(&self, sheaf: *mut Sheaf) {
        let mut batch = [ptr::null_mut(); SHEAF_FLUSH_BATCH];
        loop {
            // SAFETY: the caller owns the sheaf; the copied range is below `size`.
            let n = unsafe {
                let size = (*sheaf).size as usize;
                if size == 0 {
                    return;
                }
                let n = size.min(SHEAF_FLUSH_BATCH);
                ptr::copy_nonoverlapping(
                    Sheaf::objects(sheaf).add(size - n),
                    batch.as_mut_ptr(),
                    n,
                );
                (*sheaf).size = (size - n) as u32;
                n
            };
            // SAFETY: the objects came out of a sheaf of this cache, so they are allocated
            // objects of this cache no longer used by anyone.
            let _ = unsafe { self.free_to_slabs(&batch[..n], 0) };
            self.stat_add(Stat::SheafFlush, n as u64);
        }
    }

    /// Allocation slow path: `main` of `slot` (from [`Platform::pin_fast`]) is empty, or
    /// `slot` is 0 and the CPU still has to be asked for with [`Platform::pin`].
    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_slow(&self, slot: usize, gfp: Gfp, caller: usize) -> Option<*mut u8> {
        if slot != 0 {
            return self.alloc_refill(slot_cpu(slot), gfp, caller);
        }
        let (_guard, cpu) = self.platform.pin();
        // SAFETY: pinned to `cpu`: its main sheaf is ours, and always a valid sheaf.
        unsafe {
            let main = *self.main_slot(cpu_slot(cpu));
            if (*main).size != 0 {
                (*main).size -= 1;
                return Some(*Sheaf::objects(main).add((*main).size as usize));
            }
        }
        self.alloc_refill(cpu, gfp, caller)
    }

    /// Allocation with `main` empty, pinned to `cpu`.
    ///
    /// Swap with a non-empty spare; else trade the empty main for a full sheaf from the barn;
    /// else refill main from the slabs. A cache without sheaves takes one object from the slabs.
    fn alloc_refill(&self, cpu: usize, gfp: Gfp, caller: usize) -> Option<*mut u8> {
        // SAFETY: the caller is pinned to `cpu`.
        let pcs = unsafe { self.pcs(cpu) };
        let stats = &self.cpu_stats[cpu];
        stats.add(Stat::AllocSlowpath, 1);
        let main = *pcs.main;
        // SAFETY: `main` is always a valid sheaf, and we are pinned to this CPU.
        unsafe {
            if (*main).capacity == 0 {
                let mut one = [ptr::null_mut()];
                return (self.alloc_from_slabs(pcs.node, gfp, &mut one, caller) == 1)
                    .then_some(one[0]);
            }
            let spare = *pcs.spare;
            if !spare.is_null() && (*spare).size != 0 {
                *pcs.spare = main;
                *pcs.main = spare;
            } else {
                match self.barns[pcs.node].replace_empty_sheaf(NonNull::new_unchecked(main)) {
                    Ok((full, extra)) => {
                        stats.add(Stat::BarnGet, 1);
                        *pcs.main = full.as_ptr();
                        if let Some(e) = extra {
                            if (*pcs.spare).is_null() {
                                *pcs.spare = e.as_ptr();
                            } else {
                                self.free_sheaf(e);
                            }
                        }
                    }
                    Err(_) => {
                        stats.add(Stat::BarnGetFail, 1);
                        let cap = (*main).capacity as usize;
                        if self.refill_sheaf(main, cap, pcs.node, gfp) == 0 {
                            return None;
                        }
                    }
                }
            }
            let main = *pcs.main;
            (*main).size -= 1;
            Some(*Sheaf::objects(main).add((*main).size as usize))
        }
    }

    /// Free slow path: `main` of `slot` (from [`Platform::pin_fast`]) is full (or absent),
    /// the cache is on a multi-node machine (remote-node test), or `slot` is 0 and the CPU
    /// still has to be asked for with [`Platform::pin`].
    #[cold]
    #[inline(never)]
    pub(crate) fn free_slow(
        &self,
        slot: usize,
        obj: *mut u8,
        caller: usize,
    ) -> Result<(), SlabReport> {
        if slot != 0 {
            return self.free_flush(slot_cpu(slot), obj, caller);
        }
        let (_guard, cpu) = self.platform.pin();
        self.free_flush(cpu, obj, caller)
    }

    /// Free with the object remote or `main` full, pinned to `cpu` (also takes the defensive
    /// case of a local object and room in `main`).
    ///
    /// No spare: get an empty sheaf (barn, else a new one) and make main the spare. Spare not
    /// full: swap. Both full: hand main to the barn for an empty sheaf; if the barn refuses,
    /// flush the spare to the slabs and swap it in.
    fn free_flush(&self, cpu: usize, obj: *mut u8, caller: usize) -> Result<(), SlabReport> {
        // SAFETY: the caller is pinned to `cpu`.
        let pcs = unsafe { self.pcs(cpu) };
        let stats = &self.cpu_stats[cpu];
        let main = *pcs.main;
        // SAFETY: `main` is always valid, we are pinned, and the caller passes an object of
        // this cache that is no longer used (checked at the slab for slab-bound objects).
        unsafe {
            let remote = self.multi_node && self.platform.page_node(obj as usize) != pcs.node;
            if !remote && (*main).size < (*main).capacity {
                // What the fast path does, for a local object of a multi-node cache or when
                // the fast path could not tell the CPU.
                self.push(main, obj);
                #[cfg(feature = "fastpath-stats")]
                stats.add(Stat::FreeFastpath, 1);
                return Ok(());
            }
            stats.add(Stat::FreeSlowpath, 1);
            if (*main).capacity == 0 || remote {
                if remote {
                    stats.add(Stat::FreeRemoteNode, 1);
                }
                return self
                    .free_to_slabs(&[obj], caller)
                    .map_err(|kind| self.make_report(obj as usize, kind));
            }
            let spare = *pcs.spare;
            if spare.is_null() {
                let empty = match self.barns[pcs.node].get_empty_sheaf() {
                    Some(e) => {
                        stats.add(Stat::BarnGet, 1);
                        Some(e)
                    }
                    None => {
                        stats.add(Stat::BarnGetFail, 1);
                        self.alloc_empty_sheaf(pcs.node, Gfp::ATOMIC)
                    }
                };
                match empty {
                    Some(e) => {
                        *pcs.spare = main;
                        *pcs.main = e.as_ptr();
                    }
                    None => {
                        return self
                            .free_to_slabs(&[obj], caller)
                            .map_err(|k| self.make_report(obj as usize, k));
                    }
                }
            } else if (*spare).size < (*spare).capacity {
                *pcs.spare = main;
                *pcs.main = spare;
            } else {
                let barn = &self.barns[pcs.node];
                let swapped = match barn.replace_full_sheaf(NonNull::new_unchecked(main)) {
                    Ok(empty) => {
                        *pcs.main = empty.as_ptr();
                        true
                    }
                    Err(ReplaceFull::Refused(_)) => false,
                    Err(ReplaceFull::NoEmpty(_)) => {
                        match self.alloc_empty_sheaf(pcs.node, Gfp::ATOMIC) {
                            Some(e) => match barn.put_full_sheaf(NonNull::new_unchecked(main)) {
                                Ok(()) => {
                                    *pcs.main = e.as_ptr();
                                    true
                                }
                                Err(_) => {
                                    // Another CPU filled the barn meanwhile.
                                    self.free_sheaf(e);
                                    false
                                }
                            },
                            None => false,
                        }
                    }
                };
                stats.add(
                    if swapped {
                        Stat::BarnPut
                    } else {
                        Stat::BarnPutFail
                    },
                    1,
                );
                if !swapped {
                    self.sheaf_flush(spare);
                    *pcs.spare = main;
                    *pcs.main = spare;
                }
            }
            self.push(*pcs.main, obj);
        }
        Ok(())
    }

    /// Pushes `obj` on a sheaf known to have room.
    ///
    /// # Safety
    /// `s` is a real sheaf owned by the current CPU with `size < capacity`.
    #[inline(always)]
    unsafe fn push(&self, s: *mut Sheaf, obj: *mut u8) {
        // SAFETY: caller contract.
        unsafe {
            let size = (*s).size;
            *Sheaf::objects(s).add(size as usize) = obj;
            (*s).size = size + 1;
        }
    }

    /// Flushes one CPU's main and spare sheaves to the slabs and frees the spare
    /// (`pcs_flush_all`). With `release_main`, main is freed too and replaced by the static
    /// empty sheaf (cache destruction).
    ///
    /// # Safety
    /// Either `cpu` is the current pinned CPU, or no other context uses this cache at all.
    pub(crate) unsafe fn pcs_flush(&self, cpu: usize, release_main: bool) {
        // SAFETY: caller contract: nobody else touches this CPU's sheaves.
        unsafe {
            let pcs = self.pcs(cpu);
            let main = *pcs.main;
            if (*main).capacity != 0 {
                self.sheaf_flush(main);
                if release_main {
                    *pcs.main = empty_sheaf();
                    self.free_sheaf(NonNull::new_unchecked(main));
                }
            }
            if let Some(spare) = NonNull::new(*pcs.spare) {
                *pcs.spare = ptr::null_mut();
                self.sheaf_flush(spare.as_ptr());
                self.free_sheaf(spare);
            }
        }
    }

    /// Empties every barn: full sheaves are flushed to slabs, all sheaves are freed.
    pub(crate) fn barns_shrink(&self) {
        for barn in self.barns.iter() {
            barn.shrink(|s| {
                // SAFETY: sheaves taken out of the barn belong to us now.
                unsafe {
                    self.sheaf_flush(s.as_ptr());
                    self.free_sheaf(s);
                }
            });
        }
    }

    /// Returns a sheaf holding at least `count` objects, for allocations that must not fail
    /// (`kmem_cache_prefill_sheaf`). `count` above the cache's sheaf capacity gives an oversize
    /// sheaf allocated for the occasion. `None` when memory is short.
    pub fn kmem_cache_prefill_sheaf(&self, gfp: Gfp, count: usize) -> Option<PrefilledSheaf> {
        let (_guard, cpu) = self.platform.pin();
        let node = self.platform.cpu_to_node(cpu);
        self.stat_add(Stat::SheafPrefill, 1);
        let sheaf = if count > self.sheaf_capacity || self.sheaf_capacity == 0 {
            self.alloc_oversize_sheaf(count.max(1), node, gfp)?
        } else {
            // SAFETY: pinned to `cpu`: its sheaves are ours.
            let pcs = unsafe { self.pcs(cpu) };
            let spare = *pcs.spare;
            // SAFETY: the spare, when present, is a valid sheaf of this CPU.
            if !spare.is_null() && unsafe { (*spare).size } as usize >= count {
                *pcs.spare = ptr::null_mut();
                // SAFETY: checked non-null.
                unsafe { NonNull::new_unchecked(spare) }
            } else if let Some(full) = self.barns[node].get_full_sheaf() {
                full
            } else {
                self.alloc_empty_sheaf(node, gfp)?
            }
        };
        let mut p = PrefilledSheaf { sheaf };
        if self.kmem_cache_refill_sheaf(gfp, &mut p, count).is_err() {
            self.kmem_cache_return_sheaf(p);
            return None;
        }
        Some(p)
    }

    /// Tops up a prefilled sheaf so it holds at least `count` objects
    /// (`kmem_cache_refill_sheaf`). A regular sheaf is filled to capacity; if `count` exceeds
    /// its capacity, the sheaf is exchanged for a bigger one. `Err` when memory is short (the
    /// sheaf keeps what it had).
    pub fn kmem_cache_refill_sheaf(
        &self,
        gfp: Gfp,
        sheaf: &mut PrefilledSheaf,
        count: usize,
    ) -> Result<(), OutOfMemory> {
        let s = sheaf.sheaf.as_ptr();
        // SAFETY: the caller owns the prefilled sheaf.
        let (size, cap, regular) = unsafe {
            (
                (*s).size as usize,
                (*s).capacity as usize,
                (*s).oversize_order == NOT_OVERSIZE,
            )
        };
        if size >= count {
            return Ok(());
        }
        if count > cap {
            let bigger = self
                .kmem_cache_prefill_sheaf(gfp, count)
                .ok_or(OutOfMemory)?;
            let old = core::mem::replace(sheaf, bigger);
            self.kmem_cache_return_sheaf(old);
            return Ok(());
        }
        let (_guard, cpu) = self.platform.pin();
        let node = self.platform.cpu_to_node(cpu);
        let target = if regular { cap } else { count };
        // SAFETY: the caller owns the sheaf and `target <= capacity`.
        unsafe { self.refill_sheaf(s, target, node, gfp) };
        // SAFETY: as above.
        if (unsafe { (*s).size } as usize) < count {
            Err(OutOfMemory)
        } else {
            Ok(())
        }
    }

    /// Allocates from a prefilled sheaf (`kmem_cache_alloc_from_sheaf`): cannot fail while the
    /// sheaf holds objects, and returns `None` (no fallback to the cache) once it is empty.
    pub fn kmem_cache_alloc_from_sheaf(
        &self,
        gfp: Gfp,
        sheaf: &mut PrefilledSheaf,
    ) -> Option<NonNull<u8>> {
        let s = sheaf.sheaf.as_ptr();
        // SAFETY: the caller owns the sheaf; popping stays within `size`.
        let obj = unsafe {
            if (*s).size == 0 {
                return None;
            }
            (*s).size -= 1;
            NonNull::new_unchecked(*Sheaf::objects(s).add((*s).size as usize))
        };
        if gfp.contains(Gfp::ZERO) {
            // SAFETY: the object is ours and `object_size` bytes long.
            unsafe { obj.as_ptr().write_bytes(0, self.object_size()) };
        }
        Some(obj)
    }

    /// Number of objects left in a prefilled sheaf (`kmem_cache_sheaf_size`).
    pub fn kmem_cache_sheaf_size(&self, sheaf: &PrefilledSheaf) -> usize {
        // SAFETY: the caller owns the sheaf.
        unsafe { sheaf.sheaf.as_ref().size as usize }
    }

    /// Gives a prefilled sheaf back (`kmem_cache_return_sheaf`): it becomes this CPU's spare if
    /// there is none; else it is refilled and put in the barn if the barn has room; else its
    /// objects are flushed to the slabs and it is freed. Oversize sheaves are always flushed
    /// and freed.
    pub fn kmem_cache_return_sheaf(&self, sheaf: PrefilledSheaf) {
        let s = sheaf.sheaf;
        self.stat_add(Stat::SheafReturn, 1);
        // SAFETY: the caller gave us the sheaf.
        let regular = unsafe { s.as_ref().oversize_order == NOT_OVERSIZE };
        if regular {
            let (_guard, cpu) = self.platform.pin();
            // SAFETY: pinned to `cpu`.
            let pcs = unsafe { self.pcs(cpu) };
            if (*pcs.spare).is_null() {
                *pcs.spare = s.as_ptr();
                return;
            }
            // SAFETY: we own the sheaf.
            unsafe {
                let cap = s.as_ref().capacity as usize;
                self.refill_sheaf(s.as_ptr(), cap, pcs.node, Gfp::ATOMIC);
                if s.as_ref().size as usize == cap && self.barns[pcs.node].put_full_sheaf(s).is_ok()
                {
                    return;
                }
            }
        }
        // SAFETY: we own the sheaf.
        unsafe {
            self.sheaf_flush(s.as_ptr());
            self.free_sheaf(s);
        }
    }
}
