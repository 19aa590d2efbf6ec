//! The `/sys/kernel/slab` view of the caches (Linux's SLUB sysfs in `mm/slub.c`:
//! `sysfs_slab_add`, `sysfs_slab_alias` and the `*_show` functions).
//!
//! Linux gives every cache a directory of small text files under `/sys/kernel/slab`, one value
//! per file. Merging makes the naming interesting: several names share one cache, so the
//! directory of a **mergeable** cache is named after what the merged caches have in common, a
//! unique id made of flag letters and the slot size (`create_unique_id`), and **every** name
//! of the cache, the first one too, is a symbolic link to it. An **unmergeable** cache can never
//! have a second name, so its directory simply carries its name:
//!
//! ```text
//! /sys/kernel/slab/
//!   :0000064/                 kmalloc-64's cache, and every cache merged into it
//!   kmalloc-64 -> :0000064
//!   dentry -> :0000064        an alias: kmem_cache_create("dentry", 60, ...) merged
//!   :a-0000104/               a SLAB_RECLAIM_ACCOUNT cache of 104-byte slots
//!   inode_cache/              unmergeable (a constructor): its own name, no link
//!     object_size  objs_per_slab  order  aliases  alloc_slowpath  ...
//! ```
//!
//! The id is `:`, then a letter for each flag that must match for merging (and for consistency
//! checks, as Linux does): `d` `SLAB_CACHE_DMA`, `a` `SLAB_RECLAIM_ACCOUNT`, `F`
//! `SLAB_CONSISTENCY_CHECKS`, `A` `SLAB_ACCOUNT`, then `-` if any letter was written, then the
//! slot size (`s->size`, the object stride) as 7 digits ([`unique_id`]).
//!
//! Every cache embeds a kobject ([`kobject::KObject`]); the registry adds it to the platform's
//! sysfs tree ([`Platform::slab_sysfs`]) under the slab kset (`/sys/kernel/slab`) when the
//! cache is created (Linux's `sysfs_slab_add`), links each further name to it
//! (`sysfs_slab_alias`), and deletes it when the cache is destroyed, at once, even if the
//! asynchronous destroy keeps the cache a while longer. The cache's structure is freed by its
//! kobject's release, after the last reference, so a reader of one of its files never sees it
//! go (Linux's `slab_kmem_cache_release`). The files are the attributes of one kobject type,
//! whose `show` functions render values on the spot into a page, without allocating, so
//! reading a counter does not move it.
//!
//! [`list`] gives the top directory, [`attributes`] the files of a cache directory, [`resolve`]
//! follows a name to its directory, [`read`] renders one file and [`write`] writes one.
//!
//! ## Where this differs from Linux
//! * Of the writable files only `shrink` and `validate` are there ([`write`]); `min_partial`,
//!   `sheaf_capacity` and the debug flags cannot be changed at run time. `cpu_slabs` counts
//!   the objects cached in sheaves (Sheaf has no CPU slabs), in slabs' worth, as one total,
//!   because `tools/mm/slabinfo` subtracts it from the slab counts; `trace` is always 0
//!   (no tracing). SLUB-only statistics (`deactivate_*`, `cmpxchg_*`, `cpu_partial_*`) are not
//!   there: `tools/mm/slabinfo` reads missing files as 0. The callers of `SLAB_STORE_USER`
//!   caches are in `alloc_traces`/`free_traces` (Linux: debugfs) and `alloc_calls`/
//!   `free_calls` (Linux's older names); a caller is 0 unless the allocation was made with
//!   `alloc_caller`/`free_caller` (Rust's allocator interface gives no return address).
//! * `ctor` prints the constructor's address (Linux prints its symbol with `%pS`); like Linux,
//!   the file is empty when the cache has none.
//! * Linux refuses to create a cache whose sysfs name is taken; Sheaf creates it, and gives its
//!   directory the first free name of `NAME`, `NAME.1`, `NAME.2`, ... (see [`list`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::marker::PhantomData;
use core::ptr::NonNull;

use kobject::{Attribute, DirEntry, Errno, KObject, KobjError, KobjType, PageBuf, errno};

use crate::cache::{KmemCache, SlabInfo};
use crate::flags::SlabFlags;
use crate::platform::Platform;
use crate::registry::SlabAllocator;
use crate::stats::Stat;

// Where a platform shows its caches; defined with the platform that returns it.
pub use crate::platform::SlabSysfs;

/// One entry of the `/sys/kernel/slab` directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A cache's directory: the unique id of a mergeable cache (`:0000064`) or the name of an
    /// unmergeable one.
    Dir(String),
    /// A name of a mergeable cache (its first name or an alias): a symbolic link to the cache's
    /// directory.
    Link {
        /// The cache name (`kmalloc-64`).
        name: String,
        /// The directory it points at (`:0000064`).
        target: String,
    },
}

impl Entry {
    /// The entry's name in the directory.
    pub fn name(&self) -> &str {
        match self {
            Entry::Dir(name) => name,
            Entry::Link { name, .. } => name,
        }
    }
}

/// Why a path cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysfsError {
    /// No cache directory, link or attribute has that name (`ENOENT`).
    NotFound,
    /// The path names a directory, not a file (`EISDIR`).
    IsADirectory,
    /// The file cannot be written (`EACCES`): every attribute but `shrink` and `validate`.
    PermissionDenied,
    /// The value written is not accepted (`EINVAL`): `shrink` and `validate` take `1`.
    InvalidArgument,
}

impl SysfsError {
    fn from_errno(e: Errno) -> Self {
        match e.0 {
            errno::EISDIR => Self::IsADirectory,
            errno::EACCES => Self::PermissionDenied,
            errno::EINVAL => Self::InvalidArgument,
            _ => Self::NotFound,
        }
    }
}

impl fmt::Display for SysfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SysfsError::NotFound => "No such file or directory",
            SysfsError::IsADirectory => "Is a directory",
            SysfsError::PermissionDenied => "Permission denied",
            SysfsError::InvalidArgument => "Invalid argument",
        })
    }
}

/// The attribute files of every cache directory other than the statistics, in `ls` order.
const ATTRIBUTES: &[&str] = &[
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

/// The kobject type of a cache of platform `P`: every attribute, read and written through one
/// `show` and one `store` that look at the attribute's name (as Linux's `slab_attr_show`), and
/// the release that frees the cache.
struct SlabKtype<P>(PhantomData<P>);

/// Number of files in a cache's directory.
const NR_FILES: usize = ATTRIBUTES.len() + Stat::COUNT;

impl<P: Platform> SlabKtype<P> {
    const ATTRS: [Attribute; NR_FILES] = {
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
    const KTYPE: KobjType = KobjType {
        release: Some(crate::registry::release_cache_kobj::<P>),
        attrs: &Self::ATTRS,
        dynamic: None,
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
    // A static alias's directory shows its primary, whose storage it uses (the alias's
    // reference keeps the primary from being shut down).
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
            let mut r = Ok(());
            let free = name.starts_with("free");
            s.for_each_trace(free, |addr, n, cpus| {
                if r.is_ok() {
                    r = write_trace(out, addr, n, cpus);
                }
            });
            r
        }
        // The objects cached in sheaves, in slabs' worth (see `cpu_slabs`).
        "cpu_slabs" => writeln!(out, "{}", cpu_slabs(s)),
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

/// The objects cached in sheaves (per-CPU, barns, prefilled, `rcu_free`), where Linux counts
/// its CPU slabs: the objects the slabs count as in use, less those callers hold (allocations
/// minus frees, which count every path once). Shown in slabs' worth, rounded up and at most
/// the full slabs, because `tools/mm/slabinfo` subtracts `cpu_slabs` from the slab counts.
/// A snapshot, like Linux's.
fn cpu_slabs<P: Platform>(s: &KmemCache<P>) -> u64 {
    let held = [Stat::AllocFastpath, Stat::AllocSlowpath]
        .iter()
        .map(|&st| s.stat(st))
        .sum::<u64>()
        .saturating_sub(s.stat(Stat::FreeFastpath) + s.stat(Stat::FreeSlowpath));
    let info = s.slabinfo();
    let cached = (info.active_objs as u64).saturating_sub(held);
    let per_slab = s.objs_per_slab().max(1) as u64;
    let full = info.num_slabs.saturating_sub(info.nr_partial) as u64;
    cached.div_ceil(per_slab).min(full)
}

/// One line of `alloc_traces`: `   count 0xcaller cpus=0-1,3` (`<not-available>` for
/// caller 0: none recorded, or callers beyond what is told apart).
fn write_trace(out: &mut PageBuf, addr: usize, n: usize, cpus: u64) -> fmt::Result {
    if addr == 0 {
        // No caller recorded (as Linux prints a zero address).
        write!(out, "{n:7} <not-available> cpus=")?;
    } else {
        write!(out, "{n:7} {addr:#x} cpus=")?;
    }
    let mut cpu = 0;
    let mut first = true;
    while cpu < 64 {
        if cpus >> cpu & 1 == 0 {
            cpu += 1;
            continue;
        }
        let start = cpu;
        while cpu < 64 && cpus >> cpu & 1 != 0 {
            cpu += 1;
        }
        if !first {
            out.write_char(',')?;
        }
        first = false;
        if cpu - start > 1 {
            write!(out, "{start}-{}", cpu - 1)?;
        } else {
            write!(out, "{start}")?;
        }
    }
    writeln!(out)
}

// ---------------------------------------------------------------------------------------------
// The registry's side: adding, aliasing and removing caches (`slab_mutex` held).

/// Gives `cache` its directory (Linux's `sysfs_slab_add`): under its unique id with a link per
/// name if `by_id` (a mergeable cache while merging is on), else under its name. A directory
/// name already taken gets `.1`, `.2`, ... appended.
///
/// # Safety
/// `kobj` is the cache's `kobj` field, projected from the pointer that owns the cache: the
/// release (the last put) gets it back and frees the cache through it.
pub(crate) unsafe fn add_cache<P: Platform>(
    sys: SlabSysfs<'_>,
    cache: &KmemCache<P>,
    kobj: NonNull<KObject>,
    by_id: bool,
    names: &[&str],
) {
    if cache.kobj.init(&SlabKtype::<P>::KTYPE).is_err() {
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

/// The allocator's slab directory and its path in the tree.
fn slab_dir<P: Platform>(slab: &SlabAllocator<P>) -> Result<(SlabSysfs<'_>, String), SysfsError> {
    let sys = slab.platform().slab_sysfs().ok_or(SysfsError::NotFound)?;
    let path = sys
        .sysfs
        .path_of(&sys.kset.kobj)
        .ok_or(SysfsError::NotFound)?;
    Ok((sys, path))
}

/// The entries of `/sys/kernel/slab`, sorted by name as `ls` shows them.
///
/// Name clashes, which Linux avoids by refusing to create the cache:
/// * two mergeable caches with the same id (they can coexist when merging was refused), or two
///   unmergeable caches with the same name: the older cache has the plain name, later ones
///   `.1`, `.2`, ... appended (`:0000064.1`);
/// * a name given to several caches links to the newest one, the one
///   [`SlabAllocator::find_cache`] returns;
/// * a cache name equal to a directory's name has no link (a directory and a link cannot share a
///   name); the cache is still reachable through its id.
pub fn list<P: Platform>(slab: &SlabAllocator<P>) -> Vec<Entry> {
    let Ok((sys, path)) = slab_dir(slab) else {
        return Vec::new();
    };
    let last = |p: &str| String::from(p.rsplit('/').next().unwrap_or(p));
    sys.sysfs
        .read_dir(&path)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| match e {
            DirEntry::Dir(name) => Some(Entry::Dir(name)),
            DirEntry::Link(name, Some(target)) => Some(Entry::Link {
                name,
                target: last(&target),
            }),
            _ => None,
        })
        .collect()
}

/// The directory that `name` (a directory or a link of `/sys/kernel/slab`) leads to: `:0000064`
/// for `kmalloc-64`, the name itself for a directory. Slashes around the name are ignored.
pub fn resolve<P: Platform>(slab: &SlabAllocator<P>, name: &str) -> Result<String, SysfsError> {
    let (sys, path) = slab_dir(slab)?;
    let name = name.trim_matches('/');
    if name.is_empty() || name.contains('/') {
        return Err(SysfsError::NotFound);
    }
    let full = format!("{path}/{name}");
    if let Ok(target) = sys.sysfs.read_link(&full) {
        return Ok(String::from(target.rsplit('/').next().unwrap_or(&target)));
    }
    if sys.sysfs.is_dir(&full) {
        Ok(String::from(name))
    } else {
        Err(SysfsError::NotFound)
    }
}

/// Reads `path`, relative to `/sys/kernel/slab`: `<dir-or-link>/<attribute>` gives the file's
/// contents (`"64\n"`); links are followed. `<dir-or-link>` alone (or the empty path, the slab
/// directory itself) is a directory, which cannot be read: see [`list`] and [`attributes`].
pub fn read<P: Platform>(slab: &SlabAllocator<P>, path: &str) -> Result<String, SysfsError> {
    let mut page = PageBuf::new();
    read_into(slab, path, &mut page)?;
    Ok(String::from(page.as_str()))
}

/// [`read`] into a page, allocating nothing.
pub fn read_into<P: Platform>(
    slab: &SlabAllocator<P>,
    path: &str,
    page: &mut PageBuf,
) -> Result<(), SysfsError> {
    let sys = slab.platform().slab_sysfs().ok_or(SysfsError::NotFound)?;
    sys.sysfs
        .read_at(Some(&sys.kset.kobj), path.trim_matches('/'), page)
        .map_err(SysfsError::from_errno)
}

/// Writes `data` to `path`, relative to `/sys/kernel/slab` (`kmalloc-64/shrink`), as
/// `echo 1 > FILE` does; returns the bytes consumed (all of them). The writable files:
/// - `shrink`: `1` runs `kmem_cache_shrink` (`shrink_store`): sheaves are flushed and empty
///   slabs freed;
/// - `validate`: `1` runs `validate_slab_cache` (`validate_store`); problems are reported
///   through the cache's log, as the free checks report them. Linux accepts this only for
///   caches with debug flags (`EINVAL` otherwise); Sheaf's validate also checks the free lists
///   of other caches, so every cache accepts it.
///
/// Anything else written to them is `InvalidArgument` (Linux looks at the first byte only);
/// the other attributes are `PermissionDenied`.
pub fn write<P: Platform>(
    slab: &SlabAllocator<P>,
    path: &str,
    data: &str,
) -> Result<usize, SysfsError> {
    let sys = slab.platform().slab_sysfs().ok_or(SysfsError::NotFound)?;
    sys.sysfs
        .write_at(Some(&sys.kset.kobj), path.trim_matches('/'), data)
        .map_err(SysfsError::from_errno)
}

// The tests free objects, which is unsafe.
#[allow(unsafe_code)]
#[cfg(test)]
mod tests;
