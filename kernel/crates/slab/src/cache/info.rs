//! What a cache tells about itself: its name and geometry, flags, statistics, reports, and
//! whether it is an alias of a primary (the accessors of `KmemCache`).

use core::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Counts of a cache's slabs and objects (the `/proc/slabinfo` columns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabInfo {
    /// Objects not on any slab free list (allocated, or cached in sheaves).
    pub active_objs: usize,
    /// Objects in all slabs.
    pub num_objs: usize,
    /// Slabs with at least one object in use.
    pub active_slabs: usize,
    /// All slabs.
    pub num_slabs: usize,
    /// Slabs on partial lists.
    pub nr_partial: usize,
    /// Objects in use on the partial slabs (`count_partial`).
    pub partial_objs: usize,
}

/// What one CPU's sheaves of a cache hold (the shell's `sheaves` command): objects in each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSheaves {
    /// Objects in the main sheaf (0 also when the CPU has no main sheaf).
    pub main: usize,
    /// Objects in the spare sheaf, if the CPU has one.
    pub spare: Option<usize>,
    /// Objects in the `rcu_free` sheaf (waiting for `kfree_rcu`'s sheaf to fill), if any.
    pub rcu_free: Option<usize>,
}

impl<P: Platform> KmemCache<P> {
    /// Calls `f` with each CPU's [`CpuSheaves`], read on that CPU while it is pinned
    /// ([`Platform::on_each_cpu`], which may sleep: process context only), in CPU order. A
    /// platform that cannot run code on other CPUs (the host), or not now (the kernel out of
    /// memory for its threads), reports the calling CPU only. Allocates nothing itself.
    /// `None` for a cache without sheaves (a debug cache); an alias reports its primary's.
    pub fn cpu_sheaves(&self, mut f: impl FnMut(usize, CpuSheaves)) -> Option<()> {
        if let Some(p) = self.alias_of() {
            return p.cpu_sheaves(f);
        }
        if self.sheaf_capacity() == 0 {
            return None;
        }
        // One word per CPU and field, written by that CPU; `usize::MAX` for "none". On the
        // stack, so that it works while memory is exhausted (the shell's `sheaves`).
        let slots: [[AtomicUsize; 4]; consts::MAX_CPUS] =
            core::array::from_fn(|_| core::array::from_fn(|_| AtomicUsize::new(usize::MAX)));
        let read = || {
            let pin = Pinned::new(&self.platform);
            let Some(on) = pin.on_cpu() else { return };
            let cpu = on.cpu();
            let pcs = self.pcs(on);
            let main = pcs.main.get().map_or(0, |s| s.len());
            let spare = pcs.spare.as_ref().map_or(usize::MAX, |s| s.len());
            let rcu = pcs.rcu_free.as_ref().map_or(usize::MAX, |s| s.len());
            if let Some(slot) = slots.get(cpu) {
                for (word, value) in slot.iter().zip([1, main, spare, rcu]) {
                    word.store(value, Ordering::Relaxed);
                }
            }
        };
        if !self.platform.on_each_cpu(&read) {
            read();
        }
        let some = |v: usize| (v != usize::MAX).then_some(v);
        for (cpu, slot) in slots.iter().enumerate() {
            let [seen, main, spare, rcu] = slot.each_ref().map(|w| w.load(Ordering::Relaxed));
            if seen == 1 {
                f(
                    cpu,
                    CpuSheaves {
                        main,
                        spare: some(spare),
                        rcu_free: some(rcu),
                    },
                );
            }
        }
        Some(())
    }

    /// The cache's name (the first name it was created with), as long as the cache lives.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cache's name, to keep past the cache (an error, a listing): a shared reference
    /// on its copy, or the image's bytes; allocates nothing.
    pub fn cache_name(&self) -> CacheName {
        self.name.clone()
    }
    /// Bytes usable in each object (`object_size`), widened by merged aliases.
    pub fn object_size(&self) -> usize {
        self.object_size.load(Ordering::Relaxed)
    }
    /// The primary cache of an alias ([`Self::primary`]), `None` for a primary.
    #[inline]
    pub(crate) fn alias_of(&self) -> Option<&KmemCache<P>> {
        let p = self.primary.load(Ordering::Relaxed);
        // SAFETY: a primary outlives its aliases: each holds a reference on it (`refcount`),
        // dropped only when the alias is destroyed.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The cache whose storage this one uses: itself, or an alias's primary (the maintainer's
    /// `primary_cache`). Slabs and sheaves belong to primaries only.
    pub fn primary(&self) -> &KmemCache<P> {
        self.alias_of().unwrap_or(self)
    }

    pub(crate) fn widen_object_size(&self, size: usize) {
        self.object_size.fetch_max(size, Ordering::Relaxed);
    }
    /// Stride of one object slot including metadata (`slab_size`'s per-object part, `s->size`).
    pub fn size(&self) -> usize {
        self.layout.size
    }
    /// Object alignment.
    pub fn align(&self) -> usize {
        self.layout.align
    }
    /// The full object layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// Objects per slab (`objs_per_slab`).
    pub fn objs_per_slab(&self) -> usize {
        self.layout.objects
    }
    /// Slab page order (`order`).
    pub fn order(&self) -> u32 {
        self.layout.order
    }
    /// Bytes of one slab (`slab_size`).
    pub fn slab_size(&self) -> usize {
        PAGE_SIZE << self.layout.order
    }
    /// Sheaf capacity (`sheaf_capacity`), 0 for caches without sheaves.
    pub fn sheaf_capacity(&self) -> usize {
        self.sheaf_capacity
    }
    /// Empty slabs kept per node (`min_partial`).
    pub fn min_partial(&self) -> usize {
        self.min_partial
    }
    /// Creation flags.
    pub fn flags(&self) -> SlabFlags {
        self.flags
    }
    /// Number of names sharing the cache (1 + merged aliases).
    pub fn refcount(&self) -> usize {
        self.refcount.load(Ordering::Relaxed)
    }
    /// The per-cache secret mixed into free pointers.
    pub fn random(&self) -> usize {
        self.random
    }
    /// The usercopy region (`useroffset`, `usersize`). A kmalloc cache's is the whole object,
    /// as Linux's `create_kmalloc_cache` gives it (`0, size`): a kmalloc buffer may be copied
    /// to and from user space whole. (Only this view: the kmalloc caches keep `usersize` 0
    /// inside, so that they stay merge targets and keep their free pointer in the object,
    /// as Sheaf's layout and merging expect; Linux with `CONFIG_HARDENED_USERCOPY` makes them
    /// unmergeable instead.)
    pub fn usercopy_region(&self) -> (usize, usize) {
        if self.flags().contains(SlabFlags::SLAB_KMALLOC) {
            return (0, self.object_size());
        }
        (self.useroffset, self.usersize)
    }
    /// Whether the cache has debug flags (and therefore no sheaves).
    pub fn is_debug(&self) -> bool {
        self.debug
    }
    /// Statistic `stat`, summed over CPUs.
    pub fn stat(&self, stat: Stat) -> u64 {
        if let Some(p) = self.alias_of() {
            return p.stat(stat);
        }
        (0..self.cpu_stats.len())
            .map(|cpu| self.stat_cpu(stat, cpu))
            .sum()
    }
    /// Statistic `stat` of one CPU. Fast-path allocations and frees are counted in the CPU's
    /// slot (next to its main sheaf), the rest in its statistics; both are added here.
    pub fn stat_cpu(&self, stat: Stat, cpu: usize) -> u64 {
        if let Some(p) = self.alias_of() {
            return p.stat_cpu(stat, cpu);
        }
        let slot = &self.cpu_sheaves[cpu + 1];
        let fast = match stat {
            Stat::AllocFastpath => slot.alloc_fast.load(Ordering::Relaxed),
            Stat::FreeFastpath => slot.free_fast.load(Ordering::Relaxed),
            _ => 0,
        };
        self.cpu_stats[cpu].get(stat) + fast
    }
    /// Records that a caller on a CPU of `cpu_node` took (`delta` 1) or gave back (`delta` -1)
    /// an object of `obj_node` without passing through the sheaves (see
    /// `KmemCacheNode::held_moved`). Nothing when the nodes are the same.
    pub(crate) fn cross_node(&self, cpu_node: usize, obj_node: usize, delta: i64) {
        if cpu_node == obj_node || obj_node >= self.nodes.len() || cpu_node >= self.nodes.len() {
            return;
        }
        self.nodes[obj_node]
            .held_moved
            .fetch_add(delta, Ordering::Relaxed);
        self.nodes[cpu_node]
            .held_moved
            .fetch_sub(delta, Ordering::Relaxed);
    }

    /// Objects of `node` that callers hold: allocations minus frees counted at the node's
    /// CPUs (every path counts once), corrected by the cross-node ones. A snapshot: signed,
    /// since the counters are read one after another while CPUs work.
    pub(crate) fn held_on_node(&self, node: usize) -> i64 {
        let mut held = self.nodes[node].held_moved.load(Ordering::Relaxed);
        for cpu in 0..self.cpu_stats.len() {
            if self.cpu_sheaves[cpu + 1].node != node {
                continue;
            }
            let allocs =
                self.stat_cpu(Stat::AllocFastpath, cpu) + self.stat_cpu(Stat::AllocSlowpath, cpu);
            let frees =
                self.stat_cpu(Stat::FreeFastpath, cpu) + self.stat_cpu(Stat::FreeSlowpath, cpu);
            held = held.wrapping_add(allocs.wrapping_sub(frees) as i64);
        }
        held
    }

    /// Memory nodes the cache keeps lists and a barn for.
    pub fn nr_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// (full, empty) sheaves in the barn of `node`.
    pub fn barn_counts(&self, node: usize) -> (usize, usize) {
        // Barn locks are taken pinned (see `crate::sync`).
        let _pin = Pinned::new(&self.platform);
        self.barns[node].counts()
    }
    /// Whether this cache may absorb others (`slab_unmergeable` is false).
    pub(crate) fn mergeable(&self) -> bool {
        !self.flags.intersects(SlabFlags::SLAB_NEVER_MERGE)
            && self.ctor.is_none()
            && self.usersize == 0
            && !self.explicit_capacity
    }
}
