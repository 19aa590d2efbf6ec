//! Per-cache statistics, kept per CPU (Linux's `CONFIG_SLUB_STATS`).
//!
//! Each CPU increments its own counters while pinned, with a relaxed load and a relaxed store:
//! no atomic read-modify-write (no `lock` prefix) is needed because nobody else writes them, yet
//! readers on other CPUs see whole values. [`crate::KmemCache::stat`] sums over CPUs.

use core::sync::atomic::{AtomicU64, Ordering};

/// The events counted per cache, named like the files in `/sys/kernel/slab/<cache>/`: Linux's
/// set for SLUB with sheaves (`enum stat_item`, under its sysfs names), with Linux's meanings,
/// then the Sheaf-only ones under names Linux does not use. One of Linux's cannot happen in
/// Sheaf and reads 0 (`CmpxchgDoubleFail`; `docs/slab.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Stat {
    /// Allocation served by popping the CPU's main sheaf (Linux's `ALLOC_PCS`, shown as
    /// `alloc_fastpath`, the name `tools/mm/slabinfo` reads), or a prefilled sheaf. With
    /// `AllocSlowpath`, every allocation counts exactly once.
    AllocFastpath,
    /// Allocation that had to leave the fast path.
    AllocSlowpath,
    /// Free pushed onto the CPU's main sheaf (Linux's `FREE_PCS`, shown as `free_fastpath`).
    /// With `FreeSlowpath`, every free counts exactly once.
    FreeFastpath,
    /// Free that had to leave the fast path.
    FreeSlowpath,
    /// Object freed by `kfree_rcu` into the CPU's `rcu_free` sheaf.
    FreeRcuSheaf,
    /// Object freed by `kfree_rcu` that could not go into an `rcu_free` sheaf (a cache
    /// without sheaves, a remote-node object, no memory for a sheaf): queued on its own.
    FreeRcuSheafFail,
    /// A free into a slab moved the slab onto its node's partial list (it was full).
    FreeAddPartial,
    /// A free emptied a slab, which was taken off the partial list to be given back
    /// (the node keeps more than `min_partial` partial slabs).
    FreeRemovePartial,
    /// New slab allocated from the page source.
    AllocSlab,
    /// An allocation for another node than the CPU's (`kmem_cache_alloc_node`), which the
    /// CPU's sheaves (local objects only) cannot serve: served from that node's slabs.
    AllocNodeMismatch,
    /// Empty slab given back to the page source.
    FreeSlab,
    /// A new slab could not get pages of the cache's preferred order and fell back to the
    /// minimum order (`allocate_slab`).
    OrderFallback,
    /// A lockless slab free-list update lost a race (Linux's `cmpxchg_double`). Sheaf updates
    /// slabs under the node's `list_lock` only: always 0.
    CmpxchgDoubleFail,
    /// Objects flushed from sheaves back to slabs.
    SheafFlush,
    /// Objects loaded into sheaves from slabs.
    SheafRefill,
    /// Sheaf structures allocated.
    SheafAlloc,
    /// Sheaf structures freed.
    SheafFree,
    /// A full sheaf (or an empty one on the free side) was obtained from the barn.
    BarnGet,
    /// The barn had no suitable sheaf.
    BarnGetFail,
    /// A sheaf was handed to the barn.
    BarnPut,
    /// The barn refused a sheaf (already at its limit).
    BarnPutFail,
    /// `kmem_cache_prefill_sheaf` took the CPU's spare sheaf.
    SheafPrefillFast,
    /// `kmem_cache_prefill_sheaf` had no usable spare: a sheaf from the barn or a new one.
    SheafPrefillSlow,
    /// `kmem_cache_prefill_sheaf` for more objects than the sheaf capacity: an oversize
    /// sheaf made for the occasion.
    SheafPrefillOversize,
    /// `kmem_cache_return_sheaf` made the sheaf the CPU's spare.
    SheafReturnFast,
    /// `kmem_cache_return_sheaf` found a spare: the sheaf was refilled into the barn, or
    /// flushed and freed. (An oversize sheaf's return, always flushed and freed, counts
    /// neither, as in Linux.)
    SheafReturnSlow,
    /// Sheaf only: a free of an object whose slab is on another node than the CPU's, which
    /// went straight to the slab (also counted in `free_slowpath`).
    FreeRemoteNode,
}

impl Stat {
    /// Number of statistics.
    pub const COUNT: usize = 27;
    /// Every statistic, in order: Linux's, then Sheaf's own.
    pub const ALL: [Stat; Self::COUNT] = [
        Stat::AllocFastpath,
        Stat::AllocSlowpath,
        Stat::FreeFastpath,
        Stat::FreeSlowpath,
        Stat::FreeRcuSheaf,
        Stat::FreeRcuSheafFail,
        Stat::FreeAddPartial,
        Stat::FreeRemovePartial,
        Stat::AllocSlab,
        Stat::AllocNodeMismatch,
        Stat::FreeSlab,
        Stat::OrderFallback,
        Stat::CmpxchgDoubleFail,
        Stat::SheafFlush,
        Stat::SheafRefill,
        Stat::SheafAlloc,
        Stat::SheafFree,
        Stat::BarnGet,
        Stat::BarnGetFail,
        Stat::BarnPut,
        Stat::BarnPutFail,
        Stat::SheafPrefillFast,
        Stat::SheafPrefillSlow,
        Stat::SheafPrefillOversize,
        Stat::SheafReturnFast,
        Stat::SheafReturnSlow,
        Stat::FreeRemoteNode,
    ];

    /// The sysfs name of the statistic (Linux's, for all but the Sheaf-only ones).
    pub const fn name(self) -> &'static str {
        match self {
            Stat::AllocFastpath => "alloc_fastpath",
            Stat::AllocSlowpath => "alloc_slowpath",
            Stat::FreeFastpath => "free_fastpath",
            Stat::FreeSlowpath => "free_slowpath",
            Stat::FreeRcuSheaf => "free_rcu_sheaf",
            Stat::FreeRcuSheafFail => "free_rcu_sheaf_fail",
            Stat::FreeAddPartial => "free_add_partial",
            Stat::FreeRemovePartial => "free_remove_partial",
            Stat::AllocSlab => "alloc_slab",
            Stat::AllocNodeMismatch => "alloc_node_mismatch",
            Stat::FreeSlab => "free_slab",
            Stat::OrderFallback => "order_fallback",
            Stat::CmpxchgDoubleFail => "cmpxchg_double_fail",
            Stat::SheafFlush => "sheaf_flush",
            Stat::SheafRefill => "sheaf_refill",
            Stat::SheafAlloc => "sheaf_alloc",
            Stat::SheafFree => "sheaf_free",
            Stat::BarnGet => "barn_get",
            Stat::BarnGetFail => "barn_get_fail",
            Stat::BarnPut => "barn_put",
            Stat::BarnPutFail => "barn_put_fail",
            Stat::SheafPrefillFast => "sheaf_prefill_fast",
            Stat::SheafPrefillSlow => "sheaf_prefill_slow",
            Stat::SheafPrefillOversize => "sheaf_prefill_oversize",
            Stat::SheafReturnFast => "sheaf_return_fast",
            Stat::SheafReturnSlow => "sheaf_return_slow",
            Stat::FreeRemoteNode => "free_remote_node",
        }
    }

    /// Whether Linux has this statistic (under the same name and meaning).
    pub const fn is_linux(self) -> bool {
        !matches!(self, Stat::FreeRemoteNode)
    }
}

/// One CPU's counters for one cache.
#[derive(Default)]
pub struct CpuStats([AtomicU64; Stat::COUNT]);

impl CpuStats {
    /// Adds `n` to `stat`. Only the owning (pinned) CPU calls this.
    #[inline(always)]
    pub fn add(&self, stat: Stat, n: u64) {
        let c = &self.0[stat as usize];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Reads `stat`.
    pub fn get(&self, stat: Stat) -> u64 {
        self.0[stat as usize].load(Ordering::Relaxed)
    }
}

/// One CPU's statistics on their own cache lines (no false sharing between CPUs).
#[repr(align(64))]
pub(crate) struct PaddedStats(pub(crate) CpuStats);

impl core::ops::Deref for PaddedStats {
    type Target = CpuStats;
    fn deref(&self) -> &CpuStats {
        &self.0
    }
}
