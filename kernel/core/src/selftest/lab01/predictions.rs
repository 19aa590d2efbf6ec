//! Lab 01, your predictions (docs/labs/01-watching-the-slab-allocator.md).
//!
//! Replace each `None` with `Some(N)`, the number you predict, *before* you measure anything.
//! Then run `cargo lab grade 01`: each graded test measures the number on the running kernel
//! and tells you whether your prediction was right, and where to look if not. This is the only
//! file of the lab you edit (the grader uses its own copy of `lab01.rs`, the tests).

/// Objects per slab of a cache of 200-byte objects (`kmem_cache_create("lab01-...", 200, ...)`).
// LAB(01) BEGIN
// LAB-HINT: `slabinfo` shows `objper` for the kmalloc caches; layout.rs (calculate_order) says why.
// LAB-STUB: pub const OBJS_PER_SLAB: Option<usize> = None;
pub const OBJS_PER_SLAB: Option<usize> = Some(20);
// LAB(01) END

/// Slabs of a fresh 200-byte cache (slabinfo's `num_slabs`) after 1,000 allocations on one CPU.
// LAB(01) BEGIN
// LAB-HINT: allocations pop the CPU's main sheaf; an empty sheaf is refilled from the slabs.
// LAB-STUB: pub const SLABS_FOR_1000: Option<usize> = None;
pub const SLABS_FOR_1000: Option<usize> = Some(51);
// LAB(01) END

/// Sheaf capacity of a cache of 300-byte objects.
// LAB(01) BEGIN
// LAB-HINT: `default_sheaf_capacity` and `round_sheaf_capacity` in kernel/crates/slab/src/layout.rs.
// LAB-STUB: pub const SHEAF_CAPACITY_300: Option<usize> = None;
pub const SHEAF_CAPACITY_300: Option<usize> = Some(28);
// LAB(01) END

/// Objects still cached (in the CPU's sheaves and the barn, not back in their slabs) after the
/// 1,000 objects of `SLABS_FOR_1000` are freed on the same CPU.
// LAB(01) BEGIN
// LAB-HINT: a full main sheaf is swapped with the spare or given to the barn (how many does it hold?).
// LAB-STUB: pub const CACHED_AFTER_FREE: Option<usize> = None;
pub const CACHED_AFTER_FREE: Option<usize> = Some(720);
// LAB(01) END

/// Empty slabs a cache of 200-byte objects without sheaves keeps after all its 1,000 objects
/// are freed (the `free_slab` statistic counts the others, given back to the page allocator).
// LAB(01) BEGIN
// LAB-HINT: `min_partial` in kernel/crates/slab/src/layout.rs; `free_slab` in `slabinfo -s`.
// LAB-STUB: pub const EMPTY_SLABS_KEPT: Option<usize> = None;
pub const EMPTY_SLABS_KEPT: Option<usize> = Some(5);
// LAB(01) END
