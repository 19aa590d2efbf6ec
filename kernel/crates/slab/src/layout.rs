//! Object layout and slab geometry: Linux's `calculate_sizes`, `calculate_alignment`,
//! `calculate_order` and the sheaf-capacity rules, as pure functions that tests can call directly.

use crate::base::{PAGE_SIZE, get_order};
use crate::flags::{KmemCacheArgs, SlabFlags};

/// Size of a machine word: free pointers and tracking records are word sized.
pub const WORD: usize = core::mem::size_of::<usize>();
/// Largest slab order tried by [`calculate_order`] (`slub_max_order`).
pub const SLAB_MAX_ORDER: u32 = 3;
/// Largest order the page source is asked for (`MAX_PAGE_ORDER`).
pub const MAX_PAGE_ORDER: u32 = 10;
/// Most objects one slab may hold (`MAX_OBJS_PER_PAGE`): `inuse` is 16 bits in Linux.
pub const MAX_OBJS_PER_PAGE: usize = 32767;
/// Cache line size used by `SLAB_HWCACHE_ALIGN`.
pub const CACHE_LINE: usize = 64;
/// Size of a sheaf header; see [`crate::sheaf::Sheaf`].
pub const SHEAF_HEADER: usize = 32;
/// Bytes of one caller-tracking record ([`crate::Track`], Linux's `struct track`: caller,
/// stack handle, CPU, thread and time).
pub const TRACK_SIZE: usize = 4 * WORD;

/// Rounds `x` up to a multiple of the power of two `a`.
pub const fn align_up(x: usize, a: usize) -> usize {
    (x + a - 1) & !(a - 1)
}

/// Rounds `x` down to a multiple of the power of two `a`.
pub const fn align_down(x: usize, a: usize) -> usize {
    x & !(a - 1)
}

/// Position of the most significant set bit, counting from 1 (`fls(0) == 0`), as in Linux.
pub const fn fls(x: usize) -> u32 {
    usize::BITS - x.leading_zeros()
}

/// Object alignment for `flags` and a requested `align` (Linux's `calculate_alignment`).
///
/// `SLAB_HWCACHE_ALIGN` asks for cache-line alignment, but an object much smaller than a line
/// only gets the largest power of two it fills more than half of, so that small objects are not
/// padded to 64 bytes. The result is at least a word.
pub fn calculate_alignment(flags: SlabFlags, align: usize, size: usize) -> usize {
    let mut align = align;
    if flags.contains(SlabFlags::SLAB_HWCACHE_ALIGN) {
        let mut ralign = CACHE_LINE;
        while size <= ralign / 2 {
            ralign /= 2;
        }
        align = align.max(ralign);
    }
    align.max(WORD).next_power_of_two()
}

/// Number of objects of `size` bytes in a slab of `order`.
pub const fn order_objects(order: u32, size: usize) -> usize {
    (PAGE_SIZE << order) / size
}

/// Smallest order in `min_order..=max_order` whose leftover is at most `1/fract_leftover` of
/// the slab; `max_order + 1` if none is (Linux's `calc_slab_order`).
pub fn calc_slab_order(size: usize, min_order: u32, max_order: u32, fract_leftover: usize) -> u32 {
    let mut order = min_order;
    while order <= max_order {
        let slab_size = PAGE_SIZE << order;
        if slab_size % size <= slab_size / fract_leftover {
            break;
        }
        order += 1;
    }
    order
}

/// Slab order for objects of `size` bytes (Linux's `calculate_order`).
///
/// A slab should hold at least `4 * (fls(nr_cpus) + 1)` objects so that the per-CPU layers can
/// be refilled without touching the page allocator all the time, but should not be larger than
/// `slab_max_order` (3). Among the orders that give enough objects, the smallest one whose wasted
/// tail is at most 1/16 of the slab wins, then 1/8, 1/4, 1/2. Objects too big for that get the
/// smallest order that holds one of them.
pub fn calculate_order(size: usize, nr_cpus: usize) -> Option<u32> {
    let mut min_objects = 4 * (fls(nr_cpus) as usize + 1);
    let max_objects = order_objects(SLAB_MAX_ORDER, size);
    min_objects = min_objects.min(max_objects).max(1);
    let min_order = get_order(min_objects * size);
    if order_objects(min_order, size) > MAX_OBJS_PER_PAGE {
        return Some(get_order(size * MAX_OBJS_PER_PAGE) - 1);
    }
    for fraction in [16, 8, 4, 2] {
        let order = calc_slab_order(size, min_order, SLAB_MAX_ORDER, fraction);
        if order <= SLAB_MAX_ORDER {
            return Some(order);
        }
    }
    let order = get_order(size);
    (order <= MAX_PAGE_ORDER).then_some(order)
}

/// `min_partial = clamp(ilog2(size) / 2, 5, 10)`: empty slabs kept per node before giving pages
/// back, more for larger objects (whose slabs are more expensive to rebuild).
pub fn min_partial(size: usize) -> usize {
    (size.max(1).ilog2() as usize / 2).clamp(5, 10)
}

/// The kmalloc size classes, smallest first.
pub const KMALLOC_SIZES: [usize; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
/// Largest size served by a kmalloc cache (`KMALLOC_MAX_CACHE_SIZE`); larger requests get pages.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 8192;

/// Sizes up to this one have their kmalloc class in [`SMALL_INDEX`].
pub const SMALL_KMALLOC_MAX: usize = 192;

/// Class of each size from 1 to 192 bytes in steps of 8 (Linux's `kmalloc_size_index`): the
/// classes there are not all powers of two (96, 192), so a table beats arithmetic. Entry
/// `(size - 1) / 8` is the class of `size`.
pub const SMALL_INDEX: [u8; SMALL_KMALLOC_MAX / 8] = {
    let mut table = [0u8; SMALL_KMALLOC_MAX / 8];
    let mut i = 0;
    while i < SMALL_KMALLOC_MAX / 8 {
        let size = (i + 1) * 8;
        let mut class = 0;
        while KMALLOC_SIZES[class] < size {
            class += 1;
        }
        table[i] = class as u8;
        i += 1;
    }
    table
};

/// Index of the smallest kmalloc class holding `size` bytes (`kmalloc_index`), `None` above
/// [`KMALLOC_MAX_CACHE_SIZE`]. A table lookup up to 192 bytes, a power of two above: no search
/// on the kmalloc fast path.
#[inline]
pub fn kmalloc_index(size: usize) -> Option<usize> {
    if size <= 192 {
        return Some(SMALL_INDEX[size.saturating_sub(1) / 8] as usize);
    }
    if size > KMALLOC_MAX_CACHE_SIZE {
        return None;
    }
    // 193..=8192: the power-of-two classes from 256 (index 7) up.
    Some(7 + (size.next_power_of_two().trailing_zeros() as usize - 8))
}

/// [`kmalloc_index`] without the 0 case: `None` for 0 too (which gets `ZERO_SIZE_PTR`, not a
/// cache), so that one unsigned comparison of `size - 1` sends both 0 and the large sizes
/// away. `kmalloc` itself takes sizes up to [`SMALL_KMALLOC_MAX`] from its table of cache
/// pointers and asks this only above.
#[inline(always)]
pub fn kmalloc_index_nonzero(size: usize) -> Option<usize> {
    let last = size.wrapping_sub(1);
    if last < 192 {
        Some(SMALL_INDEX[last / 8] as usize)
    } else if last < KMALLOC_MAX_CACHE_SIZE {
        // Laid out off the straight line of the small sizes (no jump over it for them).
        core::hint::cold_path();
        // 193..=8192: the power-of-two classes from 256 (index 7) up; `last >= 192`, so its
        // highest bit is bit 7 or above.
        Some(7 + (usize::BITS - last.leading_zeros()) as usize - 8)
    } else {
        None
    }
}

/// What a kmalloc of `size` bytes really gets (`kmalloc_size_roundup`).
pub fn kmalloc_size_roundup(size: usize) -> usize {
    match kmalloc_index(size) {
        Some(i) => KMALLOC_SIZES[i],
        None => PAGE_SIZE << get_order(size),
    }
}

/// Default sheaf capacity for objects of `size` bytes, before rounding: 4 objects of 4 KiB or
/// more, 12 of 1 KiB or more, 26 of 256 B or more, 60 smaller ones.
pub fn default_sheaf_capacity(size: usize) -> usize {
    match size {
        4096.. => 4,
        1024.. => 12,
        256.. => 26,
        _ => 60,
    }
}

/// The largest object any cache may have: the largest block the page source hands out (4 MiB).
/// Every size computed from a caller's request is bounded by it, so no layout arithmetic can
/// overflow.
pub const MAX_OBJECT_SIZE: usize = PAGE_SIZE << MAX_PAGE_ORDER;

/// The largest sheaf capacity: a sheaf (header plus pointer array) must itself fit in a
/// [`MAX_OBJECT_SIZE`] object.
pub const MAX_SHEAF_CAPACITY: usize = (MAX_OBJECT_SIZE - SHEAF_HEADER) / WORD;

/// Rounds a capacity up so that the sheaf (header plus pointer array) exactly fills the kmalloc
/// bucket it would be allocated from, as Linux does: 60 stays 60 (32 + 60*8 = 512 bytes).
/// `None` above [`MAX_SHEAF_CAPACITY`].
pub fn round_sheaf_capacity(capacity: usize) -> Option<usize> {
    if capacity == 0 {
        return Some(0);
    }
    if capacity > MAX_SHEAF_CAPACITY {
        return None;
    }
    let bytes = kmalloc_size_roundup(SHEAF_HEADER + capacity * WORD);
    Some((bytes - SHEAF_HEADER) / WORD)
}

/// Where things are inside each object slot, and how slabs are shaped (the result of
/// [`calculate_sizes`]). Offsets are relative to the object pointer handed to users, which sits
/// `red_left_pad` bytes into its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes the user asked for.
    pub object_size: usize,
    /// Stride of one object slot in the slab (`s->size`).
    pub size: usize,
    /// Offset of the metadata after the object: end of the right red zone (`s->inuse`).
    pub inuse: usize,
    /// Offset of the free pointer (`s->offset`).
    pub offset: usize,
    /// Left red zone before each object (`s->red_left_pad`).
    pub red_left_pad: usize,
    /// Object alignment.
    pub align: usize,
    /// Offset of the two caller-tracking records (`SLAB_STORE_USER`), if any.
    pub track_offset: Option<usize>,
    /// Offset of the word holding the size asked of `kmalloc` (`SLAB_KMALLOC` caches with
    /// `SLAB_STORE_USER`, Linux's `orig_size`), if any.
    pub orig_size_offset: Option<usize>,
    /// Preferred slab order and object count (`s->oo`).
    pub order: u32,
    /// Objects per slab of the preferred order.
    pub objects: usize,
    /// Fallback (minimum) slab order when the preferred one is not available (`s->min`).
    pub min_order: u32,
    /// Objects per slab of the fallback order.
    pub min_objects: usize,
}

/// Why a cache layout cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Zero-sized objects are not supported.
    ZeroSize,
    /// `align` is not a power of two, or is larger than any slab.
    BadAlign,
    /// `freeptr_offset` is not word aligned, does not fit in the object, or overlaps the
    /// usercopy region (`useroffset`, `usersize`).
    BadFreeptrOffset,
    /// `useroffset + usersize` exceeds the object.
    BadUsercopy,
    /// The object is too large for any slab order (over [`MAX_OBJECT_SIZE`]).
    TooLarge,
    /// `sheaf_capacity` is over [`MAX_SHEAF_CAPACITY`].
    BadSheafCapacity,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LayoutError::ZeroSize => "zero-sized objects are not supported",
            LayoutError::BadAlign => "the alignment is not a power of two or exceeds 4 MiB",
            LayoutError::BadFreeptrOffset => {
                "freeptr_offset is unaligned, outside the object or inside the usercopy region"
            }
            LayoutError::BadUsercopy => "the usercopy region exceeds the object",
            LayoutError::TooLarge => "the object exceeds 4 MiB, the largest slab",
            LayoutError::BadSheafCapacity => "sheaf_capacity is too large",
        })
    }
}

/// Checks a cache's size and arguments as every creation does first, before merging or laying
/// out (Linux's `kmem_cache_sanity_check` and the checks of `__kmem_cache_create_args`): a
/// non-zero size of at most [`MAX_OBJECT_SIZE`], a power-of-two alignment no larger, a usercopy
/// region inside the object, a word-aligned `freeptr_offset` inside the object and outside the
/// usercopy region, and a sheaf capacity of at most [`MAX_SHEAF_CAPACITY`]. Every later size
/// computation relies on these bounds, so none of it can overflow.
pub fn check_args(object_size: usize, args: &KmemCacheArgs) -> Result<(), LayoutError> {
    if object_size == 0 {
        return Err(LayoutError::ZeroSize);
    }
    if object_size > MAX_OBJECT_SIZE {
        return Err(LayoutError::TooLarge);
    }
    if args.align != 0 && (!args.align.is_power_of_two() || args.align > MAX_OBJECT_SIZE) {
        return Err(LayoutError::BadAlign);
    }
    let usercopy_end = args.useroffset.checked_add(args.usersize);
    if args.usersize != 0 && usercopy_end.is_none_or(|e| e > object_size) {
        return Err(LayoutError::BadUsercopy);
    }
    if let Some(o) = args.freeptr_offset {
        let end = o.checked_add(WORD);
        let overlaps_usercopy = args.usersize != 0
            && usercopy_end.is_some_and(|u| o < u)
            && end.is_some_and(|e| args.useroffset < e);
        if o % WORD != 0 || end.is_none_or(|e| e > object_size) || overlaps_usercopy {
            return Err(LayoutError::BadFreeptrOffset);
        }
    }
    if args.sheaf_capacity > MAX_SHEAF_CAPACITY {
        return Err(LayoutError::BadSheafCapacity);
    }
    Ok(())
}

/// Lays out objects of `object_size` bytes (Linux's `calculate_sizes`), after [`check_args`].
///
/// In order, each slot holds: the left red zone (red-zone caches), the object, the right red
/// zone up to the next word (at least one word), the free pointer when it must live outside the
/// object, the two tracking records (`SLAB_STORE_USER`) and, for kmalloc caches that track,
/// the requested size (`orig_size`); the slot is then rounded up to the
/// alignment. The free pointer of other caches sits in the middle of the free object, at
/// `ALIGN_DOWN(object_size / 2, word)`, where a small overflow from the previous object is less
/// likely to corrupt it than at offset 0.
pub fn calculate_sizes(
    object_size: usize,
    args: &KmemCacheArgs,
    flags: SlabFlags,
    nr_cpus: usize,
) -> Result<Layout, LayoutError> {
    check_args(object_size, args)?;
    let align = calculate_alignment(flags, args.align, object_size);
    let red = flags.contains(SlabFlags::SLAB_RED_ZONE);
    let mut size = align_up(object_size, WORD);
    if red && size == object_size {
        size += WORD;
    }
    let inuse = size;
    let outside = flags.contains(SlabFlags::SLAB_POISON)
        || (red && object_size < WORD)
        || (args.freeptr_offset.is_none()
            && (args.ctor.is_some() || flags.contains(SlabFlags::SLAB_TYPESAFE_BY_RCU)));
    let offset = if outside {
        let o = size;
        size += WORD;
        o
    } else if let Some(o) = args.freeptr_offset {
        o // checked by `check_args`
    } else {
        align_down(object_size / 2, WORD)
    };
    let track_offset = flags.contains(SlabFlags::SLAB_STORE_USER).then(|| {
        let t = size;
        size += 2 * TRACK_SIZE;
        t
    });
    let orig_size_offset = (flags.contains(SlabFlags::SLAB_KMALLOC)
        && flags.contains(SlabFlags::SLAB_STORE_USER))
    .then(|| {
        let o = size;
        size += WORD;
        o
    });
    let red_left_pad = if red { align_up(WORD, align) } else { 0 };
    size = align_up(size + red_left_pad, align);
    if size > MAX_OBJECT_SIZE {
        return Err(LayoutError::TooLarge);
    }
    let order = calculate_order(size, nr_cpus).ok_or(LayoutError::TooLarge)?;
    let min_order = get_order(size);
    Ok(Layout {
        object_size,
        size,
        inuse,
        offset,
        red_left_pad,
        align,
        track_offset,
        orig_size_offset,
        order,
        objects: order_objects(order, size),
        min_order,
        min_objects: order_objects(min_order, size),
    })
}

/// The object-boundary test of the free fast paths: whether an offset into a slab is a
/// multiple of the stride `d` and below the slab's object count, with one multiply and one
/// comparison (Linux's `obj_to_index` divides with a reciprocal multiply; this is Lemire's
/// divisibility test, whose remainder also tells the quotient, so the boundary and the range
/// checks are one comparison).
///
/// With `mul = floor(2^64 / d) + 1` and `step = mul * d - 2^64` (between 1 and `d`): for an
/// offset `n = q * d + m` (`0 <= m < d`) below `2^32`, `n * mul mod 2^64` is `q * step` when
/// `m` is 0, and at least `mul` (which is larger than `objects * step`) otherwise. So `n` is
/// the offset of object `q < objects` exactly when the product is below `objects * step`,
/// the slab's `free_limit` (in its descriptor, [`crate::slabs::Slab`]). (Slabs are at most
/// [`MAX_OBJECT_SIZE`] bytes, objects at most as large: `mul`
/// is at least `2^42`, far above any `objects * step` or offset.)
#[derive(Clone, Copy, Debug)]
pub struct ObjIndex {
    /// `floor(2^64 / d) + 1`.
    mul: u64,
    /// `mul * d - 2^64`: what each whole stride adds to the product.
    step: u64,
}

impl ObjIndex {
    /// The test for stride `size` (at least 2).
    pub const fn new(size: usize) -> Self {
        let d = size as u128;
        let mul = (1u128 << 64) / d + 1;
        Self {
            mul: mul as u64,
            step: (mul * d - (1u128 << 64)) as u64,
        }
    }

    /// The slab's bound for [`ObjIndex::key`] of an object's offset: `objects * step`.
    pub const fn limit(self, objects: usize) -> u64 {
        objects as u64 * self.step
    }

    /// The key of byte `offset` (below the slab's size) of a slab: below the slab's
    /// [`ObjIndex::limit`] exactly when `offset` is an object's start.
    #[inline(always)]
    pub fn key(self, offset: usize) -> u64 {
        (offset as u64).wrapping_mul(self.mul)
    }
}

#[cfg(test)]
mod tests;
