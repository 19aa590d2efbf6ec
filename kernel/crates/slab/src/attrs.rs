//! A cache's files in `/sys/kernel/slab` and its directory there: the attributes (rendered
//! on the spot into a page, without allocating, so reading a counter does not move it), the
//! unique id of a mergeable cache, and adding, linking and removing a cache's directory, which
//! the registry does under `slab_mutex` (Linux's `sysfs_slab_add`, `sysfs_slab_alias`,
//! `sysfs_slab_unlink`). Below the registry: the view of the whole directory, which reads the
//! registry, is `sysfs.rs`; the `kobj_type` (these attributes with the registry's release) is
//! the registry's (`registry/owned.rs`).

use alloc::format;
use alloc::string::String;
use core::fmt::{self, Write};
use core::marker::PhantomData;
use core::ptr::NonNull;

use kobject::{Attribute, Errno, KObject, KobjError, KobjType, PageBuf, errno};

use crate::cache::{KmemCache, SlabInfo};
use crate::flags::SlabFlags;
use crate::platform::{Platform, SlabSysfs};
use crate::stats::Stat;

/// The attribute files of every cache directory other than the statistics, in `ls` order.
pub(crate) const ATTRIBUTES: &[&str] = &[
    "aliases",
    "align",
    "alloc_calls",
    "alloc_traces",
    "cache_dma",
    "cpu_slabs",
    "ctor",
    "destroy_by_rcu",
    "free_calls",
    "free_traces",
    "hwcache_align",
    "min_partial",
    "object_size",
    "objects",
    "objects_partial",
    "objs_per_slab",
    "order",
    "partial",
    "poison",
    "reclaim_account",
    "red_zone",
    "sanity_checks",
    "sheaf_capacity",
    "shrink",
    "slab_size",
    "slabs",
    "store_user",
    "total_objects",
    "trace",
    "usersize",
    "validate",
];

/// The files that can be written (mode 0644; the others are 0444).
pub const WRITABLE: &[&str] = &["shrink", "validate"];

/// The files in every cache directory: the attributes, alphabetically, then one file per
/// statistic ([`Stat::name`]) in [`Stat::ALL`] order.
pub fn attributes() -> impl Iterator<Item = &'static str> {
    ATTRIBUTES
        .iter()
        .copied()
        .chain(Stat::ALL.iter().map(|s| s.name()))
}

/// The directory name of a mergeable cache (`create_unique_id`): `:`, the flag letters (`d`
/// DMA, `a` reclaimable, `F` consistency checks, `A` accounted), `-` if there were any, and
/// the slot size (`s->size`) in 7 digits: `:0000064`, `:a-0000104`, `:dA-0000192`.
pub fn unique_id<P: Platform>(cache: &KmemCache<P>) -> String {
    let mut id = String::from(":");
    for (flag, letter) in [
        (SlabFlags::SLAB_CACHE_DMA, 'd'),
        (SlabFlags::SLAB_RECLAIM_ACCOUNT, 'a'),
        (SlabFlags::SLAB_CONSISTENCY_CHECKS, 'F'),
        (SlabFlags::SLAB_ACCOUNT, 'A'),
    ] {
        if cache.flags().contains(flag) {
            id.push(letter);
        }
    }
    if id.len() > 1 {
        id.push('-');
    }
    id + &format!("{:07}", cache.size())
}

/// The attribute files of a cache of platform `P`: every attribute, read and written through
/// one `show` and one `store` that look at the attribute's name (as Linux's `slab_attr_show`).
/// The registry puts them in the caches' `kobj_type` with its release, which frees the cache
/// (`registry/owned.rs`), so this file needs nothing of the registry.
pub(crate) struct SlabAttrs<P>(PhantomData<P>);

/// Number of files in a cache's directory.
pub(crate) const NR_FILES: usize = ATTRIBUTES.len() + Stat::COUNT;

impl<P: Platform> SlabAttrs<P> {
    /// Every file of a cache's directory.
    pub(crate) const ATTRS: [Attribute; NR_FILES] = {
        let mut attrs = [Attribute::ro("", show::<P>); NR_FILES];
        let mut i = 0;
        while i < NR_FILES {
            let name = if i < ATTRIBUTES.len() {
                ATTRIBUTES[i]
            } else {
                Stat::ALL[i - ATTRIBUTES.len()].name()
            };
            attrs[i] = if is_writable(name) {
                Attribute::rw(name, show::<P>, store::<P>)
            } else {
                Attribute::ro(name, show::<P>)
            };
            i += 1;
        }
        attrs
    };
}

/// Is `name` one of [`WRITABLE`]?
const fn is_writable(name: &str) -> bool {
    let mut i = 0;
    while i < WRITABLE.len() {
        let (a, b) = (name.as_bytes(), WRITABLE[i].as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// The cache whose kobject is `k`.
fn cache_of<P: Platform>(k: &KObject) -> &KmemCache<P> {
    let offset = core::mem::offset_of!(KmemCache<P>, kobj);
    // SAFETY: the functions of `SlabKtype<P>` are only called on kobjects of that type, which
    // are the `kobj` field of a live `KmemCache<P>` (sysfs holds a reference on it for the
    // call, and the cache is freed only by the kobject's release).
    unsafe {
        NonNull::from(k)
            .byte_sub(offset)
            .cast::<KmemCache<P>>()
            .as_ref()
    }
}

/// `show` of every cache attribute.
fn show<P: Platform>(k: &KObject, attr: &Attribute, out: &mut PageBuf) -> Result<(), Errno> {
    let cache = cache_of::<P>(k);
    // The destroy waits for this to end before it shuts the cache down, or refuses it once
    // that began (`cache/sysfs_active.rs`).
    if !cache.sysfs_enter() {
        return Err(Errno(errno::ENOENT));
    }
    // Only primaries have directories (an alias is a link to its primary's); `primary()` is
    // the cache itself then.
    let result = render(cache.primary(), attr.name, out).map_err(|_| Errno(errno::EIO));
    cache.sysfs_exit();
    result
}

/// `store` of the writable attributes (`shrink_store`, `validate_store`): `1` runs the action;
/// anything else is `EINVAL` (Linux looks at the first byte only).
fn store<P: Platform>(k: &KObject, attr: &Attribute, data: &str) -> Result<usize, Errno> {
    let cache = cache_of::<P>(k);
    if data.as_bytes().first() != Some(&b'1') {
        return Err(Errno(errno::EINVAL));
    }
    if !matches!(attr.name, "shrink" | "validate") {
        return Err(Errno(errno::EACCES));
    }
    // As in `show`: a destroy waits for the action to end before its shutdown.
    if !cache.sysfs_enter() {
        return Err(Errno(errno::ENOENT));
    }
    if attr.name == "shrink" {
        cache.shrink();
    } else {
        cache.validate();
    }
    cache.sysfs_exit();
    Ok(data.len())
}

/// Writes attribute `name` of `s` (the `*_show` functions) into `out`, allocating nothing.
fn render<P: Platform>(s: &KmemCache<P>, name: &str, out: &mut PageBuf) -> fmt::Result {
    let flag = |out: &mut PageBuf, f: SlabFlags| writeln!(out, "{}", s.flags().contains(f) as u8);
    let per_node = |out: &mut PageBuf, get: fn(&SlabInfo) -> usize| {
        let total: usize = (0..s.nodes.len()).map(|n| get(&s.node_slabinfo(n))).sum();
        write!(out, "{total}")?;
        for n in 0..s.nodes.len() {
            let x = get(&s.node_slabinfo(n));
            if x != 0 {
                write!(out, " N{n}={x}")?;
            }
        }
        writeln!(out)
    };
    match name {
        // Geometry. Linux's `slab_size` is the slot size `s->size`, not the bytes of a slab
        // (that is `KmemCache::slab_size`).
        "slab_size" => writeln!(out, "{}", s.size()),
        "object_size" => writeln!(out, "{}", s.object_size()),
        "objs_per_slab" => writeln!(out, "{}", s.objs_per_slab()),
        "order" => writeln!(out, "{}", s.order()),
        "align" => writeln!(out, "{}", s.align()),
        "min_partial" => writeln!(out, "{}", s.min_partial()),
        "sheaf_capacity" => writeln!(out, "{}", s.sheaf_capacity()),
        "usersize" => writeln!(out, "{}", s.usercopy_region().1),
        // Actions: nothing to read (Linux's `shrink_show` and `validate_show` write 0 bytes).
        "shrink" | "validate" => Ok(()),
        // The callers of the objects in use / free, in `SLAB_STORE_USER` caches (Linux keeps
        // these under debugfs): `count caller cpus=list`, most objects first; empty otherwise.
        // `alloc_calls`/`free_calls`: the same, under the names of Linux's older sysfs files,
        // which `tools/mm/slabinfo -t` still reads.
        "alloc_traces" | "free_traces" | "alloc_calls" | "free_calls" => {
            let free = name.starts_with("free");
            let stacks = name.ends_with("traces");
            let many = (s.platform.nr_cpus() > 1, s.nodes.len() > 1);
            let mut full = false;
            s.for_each_trace(free, |l| {
                if full {
                    return;
                }
                let start = out.len();
                let r = write_location(out, &s.platform, l, stacks, many);
                if r.is_err() || out.truncated() {
                    // End the page at the last whole location (the busiest come first).
                    out.cut_to(start);
                    full = true;
                }
            });
            Ok(())
        }
        // The objects parked in the per-CPU layer, in slabs' worth, per node (see
        // `cpu_slabs`).
        "cpu_slabs" => {
            let per_node = |n| cpu_slabs(s, n);
            let total: u64 = (0..s.nodes.len()).map(per_node).sum();
            write!(out, "{total}")?;
            for n in 0..s.nodes.len() {
                let x = per_node(n);
                if x != 0 {
                    write!(out, " N{n}={x}")?;
                }
            }
            writeln!(out)
        }
        // Sheaf has no allocation tracing (`slub_debug=T`): always off.
        "trace" => writeln!(out, "0"),
        // Names sharing the cache besides the first (`s->refcount - 1`).
        "aliases" => writeln!(out, "{}", s.refcount().saturating_sub(1)),
        "ctor" => match s.ctor {
            Some(ctor) => writeln!(out, "{:#x}", ctor as usize),
            None => Ok(()),
        },
        // Flags.
        "cache_dma" => flag(out, SlabFlags::SLAB_CACHE_DMA),
        "destroy_by_rcu" => flag(out, SlabFlags::SLAB_TYPESAFE_BY_RCU),
        "hwcache_align" => flag(out, SlabFlags::SLAB_HWCACHE_ALIGN),
        "poison" => flag(out, SlabFlags::SLAB_POISON),
        "reclaim_account" => flag(out, SlabFlags::SLAB_RECLAIM_ACCOUNT),
        "red_zone" => flag(out, SlabFlags::SLAB_RED_ZONE),
        "sanity_checks" => flag(out, SlabFlags::SLAB_CONSISTENCY_CHECKS),
        "store_user" => flag(out, SlabFlags::SLAB_STORE_USER),
        // Slab and object counts, with a per-node breakdown (`show_slab_objects`).
        // `objects`: objects in use, sheaf-cached ones included, as in Linux.
        "objects" => per_node(out, |c| c.active_objs),
        "objects_partial" => per_node(out, |c| c.partial_objs),
        "partial" => per_node(out, |c| c.nr_partial),
        "slabs" => per_node(out, |c| c.num_slabs),
        "total_objects" => per_node(out, |c| c.num_objs),
        // Statistics, with a per-CPU breakdown (`show_stat`).
        _ => {
            let Some(stat) = Stat::ALL.into_iter().find(|st| st.name() == name) else {
                return Err(fmt::Error);
            };
            let cpus = 0..s.cpu_stats.len();
            write!(
                out,
                "{}",
                cpus.clone().map(|c| s.stat_cpu(stat, c)).sum::<u64>()
            )?;
            for c in cpus {
                let x = s.stat_cpu(stat, c);
                if x != 0 {
                    write!(out, " C{c}={x}")?;
                }
            }
            writeln!(out)
        }
    }
}

/// `cpu_slabs` of `node`: the objects of the node's slabs parked in the per-CPU layer (the
/// CPUs' main, spare and `rcu_free` sheaves, the barn, prefilled sheaves, `kfree_rcu` objects
/// waiting for their grace period), which is where Linux's CPU slabs kept the memory a cache
/// holds off its node lists: the objects the slabs count as in use (`objects`), less those
/// callers hold (allocations minus frees at the node's CPUs, which count every path once,
/// corrected by the cross-node ones: [`KmemCache::held_on_node`]).
///
/// Shown in slabs' worth (rounded up), at most the node's full slabs: Linux's unit, and what
/// `tools/mm/slabinfo` assumes when it shows `slabs - cpu_slabs / partial / cpu_slabs`. 0 for
/// a cache without sheaves (a debug cache), and after a shrink. A snapshot, like Linux's.
fn cpu_slabs<P: Platform>(s: &KmemCache<P>, node: usize) -> u64 {
    let info = s.node_slabinfo(node);
    let held = s.held_on_node(node).max(0) as u64;
    let cached = (info.active_objs as u64).saturating_sub(held);
    let per_slab = s.objs_per_slab().max(1) as u64;
    let full = info.num_slabs.saturating_sub(info.nr_partial) as u64;
    cached.div_ceil(per_slab).min(full)
}

/// One location of `alloc_traces` / `alloc_calls`, as Linux prints it:
/// `  count function+0xoff/0xlen age=min/avg/max pid=min-max cpus=list nodes=list` (an age,
/// a pid when all are equal; `cpus=` on a machine of several CPUs, `nodes=` of several nodes;
/// `<not-available>` for caller 0: none recorded, or locations beyond those told apart),
/// then for the `*_traces` files the stack, a frame per line, and an empty line.
fn write_location<P: Platform>(
    out: &mut PageBuf,
    platform: &P,
    l: &crate::cache::debug::TraceLocation,
    stacks: bool,
    (many_cpus, many_nodes): (bool, bool),
) -> fmt::Result {
    write!(out, "{:7} ", l.count)?;
    if l.addr == 0 {
        out.write_str("<not-available>")?;
    } else {
        platform.write_symbol(out, l.addr)?;
    }
    if l.min_age == l.max_age {
        write!(out, " age={}", l.min_age)?;
    } else {
        let avg = l.sum_age / l.count.max(1) as u64;
        write!(out, " age={}/{avg}/{}", l.min_age, l.max_age)?;
    }
    if l.min_pid == l.max_pid {
        write!(out, " pid={}", l.min_pid)?;
    } else {
        write!(out, " pid={}-{}", l.min_pid, l.max_pid)?;
    }
    if many_cpus && l.cpus != 0 {
        out.write_str(" cpus=")?;
        write_bit_list(out, l.cpus)?;
    }
    if many_nodes && l.nodes != 0 {
        out.write_str(" nodes=")?;
        write_bit_list(out, l.nodes)?;
    }
    writeln!(out)?;
    if stacks {
        let mut r = Ok(());
        platform.stack_frames(l.handle, &mut |frame| {
            if r.is_ok() {
                r = out
                    .write_str("        ")
                    .and_then(|()| platform.write_symbol(out, frame))
                    .and_then(|()| writeln!(out));
            }
        });
        r?;
        writeln!(out)?;
    }
    Ok(())
}

/// Writes the set bits of `bits` as a list of ranges (Linux's `%*pbl`: `0-1,3`).
fn write_bit_list(out: &mut PageBuf, bits: u64) -> fmt::Result {
    let mut bit = 0;
    let mut first = true;
    while bit < 64 {
        if bits >> bit & 1 == 0 {
            bit += 1;
            continue;
        }
        let start = bit;
        while bit < 64 && bits >> bit & 1 != 0 {
            bit += 1;
        }
        if !first {
            out.write_char(',')?;
        }
        first = false;
        if bit - start > 1 {
            write!(out, "{start}-{}", bit - 1)?;
        } else {
            write!(out, "{start}")?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The registry's side: adding, aliasing and removing caches (`slab_mutex` held).

/// Gives `cache` its directory (Linux's `sysfs_slab_add`): under its unique id with a link per
/// name if `by_id` (a mergeable cache while merging is on), else under its name. A directory
/// name already taken gets `.1`, `.2`, ... appended.
///
/// # Safety
/// `kobj` is the cache's `kobj` field, projected from the pointer that owns the cache: the
/// release (the last put) gets it back and frees the cache through it; `ktype` has
/// [`SlabAttrs::ATTRS`] of `P` and that release.
pub(crate) unsafe fn add_cache<P: Platform>(
    sys: SlabSysfs<'_>,
    cache: &KmemCache<P>,
    kobj: NonNull<KObject>,
    ktype: &'static KobjType,
    by_id: bool,
    names: &[&str],
) {
    if cache.kobj.init(ktype).is_err() {
        return;
    }
    cache.kobj.set_kset(sys.kset);
    let base = if by_id {
        unique_id(cache)
    } else {
        String::from(cache.name())
    };
    let mut n = 0usize;
    loop {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}.{n}")
        };
        // A link of that name (an older cache's) gives way to the directory, as
        // `sysfs_slab_add` removes it first; a directory of that name is a clash.
        if by_id && n == 0 {
            sys.sysfs.remove_link_if_any(Some(&sys.kset.kobj), &name);
        }
        // SAFETY: forwarded contract: the cache stays until its kobject's release.
        match unsafe { sys.sysfs.kobject_add(kobj, None, &name) } {
            Ok(()) => break,
            Err(KobjError::Duplicate(_)) => n += 1,
            // Anything else (a bad name) leaves the cache without a directory.
            Err(_) => return,
        }
    }
    if by_id {
        for name in names {
            link_name(sys, cache, name);
        }
    }
}

/// Links `name` to the cache's directory (Linux's `sysfs_slab_alias`), replacing a link of that
/// name (the newest cache wins, as `find_cache` looks up). A directory of that name keeps it.
pub(crate) fn link_name<P: Platform>(sys: SlabSysfs<'_>, cache: &KmemCache<P>, name: &str) {
    if !cache.kobj.in_sysfs() {
        return;
    }
    sys.sysfs.remove_link_if_any(Some(&sys.kset.kobj), name);
    let _ = sys
        .sysfs
        .create_link(Some(&sys.kset.kobj), &cache.kobj, name);
}

/// Removes the link `name` if it leads to the cache's directory. Allocates nothing.
pub(crate) fn unlink_name<P: Platform>(sys: SlabSysfs<'_>, cache: &KmemCache<P>, name: &str) {
    sys.sysfs
        .remove_link_to(Some(&sys.kset.kobj), name, &cache.kobj);
}

/// Takes the cache out of `/sys/kernel/slab`: the links of `names`, then its directory. The
/// cache lives on until the last reference to its kobject is put. Allocates nothing.
pub(crate) fn remove_cache<'n, P: Platform>(
    sys: SlabSysfs<'_>,
    cache: &KmemCache<P>,
    names: impl IntoIterator<Item = &'n str>,
) {
    for name in names {
        unlink_name(sys, cache, name);
    }
    sys.sysfs.kobject_del(&cache.kobj);
}

// ---------------------------------------------------------------------------------------------
// Reading the tree (the shell's `ls`, `cat` and `echo`, and the tests).
