//! Per-cache statistics, kept per CPU (Linux's `CONFIG_SLUB_STATS`).
//!
//! Each CPU increments its own counters while pinned, with a relaxed load and a relaxed store:
//! no atomic read-modify-write (no `lock` prefix) is needed because nobody else writes them, yet
//! readers on other CPUs see whole values. [`crate::KmemCache::stat`] sums over CPUs.

use core::sync::atomic::{AtomicU64, Ordering};

/// The events counted per cache, named like the files in `/sys/kernel/slab/<cache>/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Stat {
    /// Allocation served by popping the CPU's main sheaf (Linux's `ALLOC_PCS`, shown as
    /// `alloc_fastpath`, the name `tools/mm/slabinfo` reads). With `AllocSlowpath`, every
    /// allocation counts exactly once.
    AllocFastpath,
    /// Allocation that had to leave the fast path.
    AllocSlowpath,
    /// Free pushed onto the CPU's main sheaf (Linux's `FREE_PCS`, shown as `free_fastpath`).
    /// With `FreeSlowpath`, every free counts exactly once.
    FreeFastpath,
    /// Free that had to leave the fast path.
    FreeSlowpath,
    /// New slab allocated from the page source.
    AllocSlab,
    /// Empty slab given back to the page source.
    FreeSlab,
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
    /// Free of an object whose slab is on another node: went straight to the slab.
    FreeRemoteNode,
    /// Prefilled sheaf obtained (`kmem_cache_prefill_sheaf`).
    SheafPrefill,
    /// Prefilled sheaf returned (`kmem_cache_return_sheaf`).
    SheafReturn,
    /// Object freed by `kfree_rcu` into the CPU's `rcu_free` sheaf.
    FreeRcuSheaf,
    /// Object freed by `kfree_rcu` that could not go into an `rcu_free` sheaf (a cache
    /// without sheaves, a remote-node object, no memory for a sheaf): queued on its own.
    FreeRcuSheafFail,
}

impl Stat {
    /// Number of statistics.
    pub const COUNT: usize = 19;
    /// Every statistic, in order.
    pub const ALL: [Stat; Self::COUNT] = [
        Stat::AllocFastpath,
        Stat::AllocSlowpath,
        Stat::FreeFastpath,
        Stat::FreeSlowpath,
        Stat::AllocSlab,
        Stat::FreeSlab,
        Stat::SheafFlush,
        Stat::SheafRefill,
        Stat::SheafAlloc,
        Stat::SheafFree,
        Stat::BarnGet,
        Stat::BarnGetFail,
        Stat::BarnPut,
        Stat::BarnPutFail,
        Stat::FreeRemoteNode,
        Stat::SheafPrefill,
        Stat::SheafReturn,
        Stat::FreeRcuSheaf,
        Stat::FreeRcuSheafFail,
    ];

    /// The Linux sysfs name of the statistic.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::AllocFastpath => "alloc_fastpath",
            Stat::AllocSlowpath => "alloc_slowpath",
            Stat::FreeFastpath => "free_fastpath",
            Stat::FreeSlowpath => "free_slowpath",
            Stat::AllocSlab => "alloc_slab",
            Stat::FreeSlab => "free_slab",
            Stat::SheafFlush => "sheaf_flush",
            Stat::SheafRefill => "sheaf_refill",
            Stat::SheafAlloc => "sheaf_alloc",
            Stat::SheafFree => "sheaf_free",
            Stat::BarnGet => "barn_get",
            Stat::BarnGetFail => "barn_get_fail",
            Stat::BarnPut => "barn_put",
            Stat::BarnPutFail => "barn_put_fail",
            Stat::FreeRemoteNode => "free_remote_node",
            Stat::SheafPrefill => "sheaf_prefill",
            Stat::SheafReturn => "sheaf_return",
            Stat::FreeRcuSheaf => "free_rcu_sheaf",
            Stat::FreeRcuSheafFail => "free_rcu_sheaf_fail",
        }
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
