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
//! Nothing is stored: every call takes a snapshot of the list of caches
//! ([`SlabAllocator::caches`]) and renders values on the spot, as Linux's `show` functions do.
//! [`list`] gives the top directory, [`attributes`] the files of a cache directory, [`resolve`]
//! follows a name to its directory and [`read`] renders one file.
//!
//! ## Where this differs from Linux
//! * Of the writable files only `shrink` and `validate` are there ([`write`]); `min_partial`,
//!   `sheaf_capacity` and the debug flags cannot be changed at run time. `cpu_slabs`, `trace`
//!   and the like have no Sheaf counterpart yet.
//! * `ctor` prints the constructor's address (Linux prints its symbol with `%pS`); like Linux,
//!   the file is empty when the cache has none.
//! * Linux refuses to create a cache whose sysfs name is taken; Sheaf creates it, so clashes are
//!   resolved here (see [`list`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::cache::{KmemCache, SlabInfo};
use crate::flags::SlabFlags;
use crate::platform::Platform;
use crate::registry::SlabAllocator;
use crate::stats::Stat;

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
        name: &'static str,
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
    "cache_dma",
    "ctor",
    "destroy_by_rcu",
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

/// The directory tree at one moment: every cache's directory, then the links.
struct Tree<'a, P: Platform> {
    /// Directory names and their caches, oldest cache first.
    dirs: Vec<(String, &'a KmemCache<P>)>,
    /// Link names and the index of their directory in `dirs`.
    links: Vec<(&'static str, usize)>,
}

impl<'a, P: Platform> Tree<'a, P> {
    /// Builds the tree from the list of caches (Linux builds it as caches come and go, in
    /// `sysfs_slab_add` and `sysfs_slab_alias`).
    fn new(slab: &'a SlabAllocator<P>) -> Self {
        let caches = slab.caches_with_names();
        let by_id = |c: &KmemCache<P>| slab.merge_enabled() && c.mergeable();
        let mut dirs: Vec<(String, &KmemCache<P>)> = Vec::with_capacity(caches.len());
        for &(cache, _) in &caches {
            // `KmemCache::mergeable` is the registry's own test of a merge candidate (Linux's
            // `!slab_unmergeable`): debug flags, RCU, NO_MERGE, ctor, usercopy, sheaf capacity.
            // Under `slab_nomerge` nothing is ever merged, so every cache goes by its own name.
            let base = if by_id(cache) {
                unique_id(cache)
            } else {
                String::from(cache.name())
            };
            // A name already taken (two mergeable caches with the same id, or two unmergeable
            // caches with the same name) gets `.1`, `.2`, ...: the oldest keeps the plain name.
            let taken = |name: &str| dirs.iter().any(|(d, _)| d == name);
            let name = if taken(&base) {
                (1..)
                    .map(|n| format!("{base}.{n}"))
                    .find(|n| !taken(n))
                    .expect("some suffix is free")
            } else {
                base
            };
            dirs.push((name, cache));
        }
        // Newest cache first, so that a name used twice leads where `find_cache` looks it up
        // (Linux's `sysfs_slab_alias` likewise replaces an older link).
        let mut links: Vec<(&'static str, usize)> = Vec::new();
        for (i, (cache, names)) in caches.iter().enumerate().rev() {
            if !by_id(cache) {
                continue;
            }
            for &name in names {
                let taken =
                    dirs.iter().any(|(d, _)| d == name) || links.iter().any(|l| l.0 == name);
                if !taken {
                    links.push((name, i));
                }
            }
        }
        Self { dirs, links }
    }

    /// The index of the directory that `name` (a directory or a link) leads to.
    fn lookup(&self, name: &str) -> Option<usize> {
        self.dirs
            .iter()
            .position(|(d, _)| d == name)
            .or_else(|| self.links.iter().find(|l| l.0 == name).map(|l| l.1))
    }
}

/// The entries of `/sys/kernel/slab`, sorted by name as `ls` shows them.
///
/// Name clashes, which Linux avoids by refusing to create the cache, are resolved so that every
/// cache keeps a directory of its own:
/// * two mergeable caches with the same id (they can coexist when merging was refused, e.g.
///   under `slab_nomerge`), or two unmergeable caches with the same name: the oldest cache gets
///   the plain name, later ones `.1`, `.2`, ... appended (`:0000064.1`);
/// * a name given to several caches links to the newest one, the one
///   [`SlabAllocator::find_cache`] returns;
/// * a cache name equal to a directory's name has no link (a directory and a link cannot share a
///   name); the cache is still reachable through its id.
pub fn list<P: Platform>(slab: &SlabAllocator<P>) -> Vec<Entry> {
    let tree = Tree::new(slab);
    let mut entries: Vec<Entry> = tree
        .links
        .iter()
        .map(|&(name, i)| Entry::Link {
            name,
            target: tree.dirs[i].0.clone(),
        })
        .collect();
    entries.extend(tree.dirs.into_iter().map(|(name, _)| Entry::Dir(name)));
    entries.sort_by(|a, b| a.name().cmp(b.name()));
    entries
}

/// The directory that `name` (a directory or a link of `/sys/kernel/slab`) leads to: `:0000064`
/// for `kmalloc-64`, the name itself for a directory. Slashes around the name are ignored.
pub fn resolve<P: Platform>(slab: &SlabAllocator<P>, name: &str) -> Result<String, SysfsError> {
    let tree = Tree::new(slab);
    let i = tree
        .lookup(name.trim_matches('/'))
        .ok_or(SysfsError::NotFound)?;
    Ok(tree.dirs[i].0.clone())
}

/// Reads `path`, relative to `/sys/kernel/slab`: `<dir-or-link>/<attribute>` gives the file's
/// contents (`"64\n"`); links are followed. `<dir-or-link>` alone (or the empty path, the slab
/// directory itself) is a directory, which cannot be read: see [`list`] and [`attributes`].
pub fn read<P: Platform>(slab: &SlabAllocator<P>, path: &str) -> Result<String, SysfsError> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Err(SysfsError::IsADirectory);
    }
    let (name, attribute) = match path.split_once('/') {
        Some((name, attribute)) => (name, Some(attribute)),
        None => (path, None),
    };
    let tree = Tree::new(slab);
    let i = tree.lookup(name).ok_or(SysfsError::NotFound)?;
    let Some(attribute) = attribute else {
        return Err(SysfsError::IsADirectory);
    };
    show(tree.dirs[i].1, attribute).ok_or(SysfsError::NotFound)
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
    let path = path.trim_matches('/');
    let (name, attribute) = path.split_once('/').ok_or(SysfsError::IsADirectory)?;
    let tree = Tree::new(slab);
    let cache = tree.dirs[tree.lookup(name).ok_or(SysfsError::NotFound)?].1;
    if !attributes().any(|a| a == attribute) {
        return Err(SysfsError::NotFound);
    }
    let one = data.as_bytes().first() == Some(&b'1');
    match attribute {
        "shrink" if one => {
            cache.shrink();
        }
        "validate" if one => {
            cache.validate();
        }
        "shrink" | "validate" => return Err(SysfsError::InvalidArgument),
        _ => return Err(SysfsError::PermissionDenied),
    }
    Ok(data.len())
}

/// Renders attribute `name` of `cache` (the `*_show` functions), `None` for an unknown name.
fn show<P: Platform>(s: &KmemCache<P>, name: &str) -> Option<String> {
    let flag = |f: SlabFlags| format!("{}\n", s.flags().contains(f) as u8);
    let per_node = |get: fn(&SlabInfo) -> usize| {
        let counts: Vec<usize> = (0..s.nodes.len())
            .map(|node| get(&s.node_slabinfo(node)))
            .collect();
        per_part(&counts, 'N')
    };
    Some(match name {
        // Geometry. Linux's `slab_size` is the slot size `s->size`, not the bytes of a slab
        // (that is `KmemCache::slab_size`).
        "slab_size" => format!("{}\n", s.size()),
        "object_size" => format!("{}\n", s.object_size()),
        "objs_per_slab" => format!("{}\n", s.objs_per_slab()),
        "order" => format!("{}\n", s.order()),
        "align" => format!("{}\n", s.align()),
        "min_partial" => format!("{}\n", s.min_partial()),
        "sheaf_capacity" => format!("{}\n", s.sheaf_capacity()),
        "usersize" => format!("{}\n", s.usercopy_region().1),
        // Actions: nothing to read (Linux's `shrink_show` and `validate_show` write 0 bytes).
        "shrink" | "validate" => String::new(),
        // Names sharing the cache besides the first (`s->refcount - 1`).
        "aliases" => format!("{}\n", s.refcount().saturating_sub(1)),
        "ctor" => match s.ctor {
            Some(ctor) => format!("{:#x}\n", ctor as usize),
            None => String::new(),
        },
        // Flags.
        "cache_dma" => flag(SlabFlags::SLAB_CACHE_DMA),
        "destroy_by_rcu" => flag(SlabFlags::SLAB_TYPESAFE_BY_RCU),
        "hwcache_align" => flag(SlabFlags::SLAB_HWCACHE_ALIGN),
        "poison" => flag(SlabFlags::SLAB_POISON),
        "reclaim_account" => flag(SlabFlags::SLAB_RECLAIM_ACCOUNT),
        "red_zone" => flag(SlabFlags::SLAB_RED_ZONE),
        "sanity_checks" => flag(SlabFlags::SLAB_CONSISTENCY_CHECKS),
        "store_user" => flag(SlabFlags::SLAB_STORE_USER),
        // Slab and object counts, with a per-node breakdown (`show_slab_objects`).
        // `objects`: objects in use, sheaf-cached ones included, as in Linux.
        "objects" => per_node(|c| c.active_objs),
        "objects_partial" => per_node(|c| c.partial_objs),
        "partial" => per_node(|c| c.nr_partial),
        "slabs" => per_node(|c| c.num_slabs),
        "total_objects" => per_node(|c| c.num_objs),
        // Statistics, with a per-CPU breakdown (`show_stat`).
        _ => {
            let stat = Stat::ALL.into_iter().find(|st| st.name() == name)?;
            let cpus: Vec<u64> = (0..s.cpu_stats.len())
                .map(|cpu| s.stat_cpu(stat, cpu))
                .collect();
            per_part(&cpus, 'C')
        }
    })
}

/// `total` followed by ` N0=5` (or ` C0=5`) for every non-zero part, and a newline, as Linux
/// writes counts split by node (under `CONFIG_NUMA`) or by CPU.
fn per_part<T: Copy + Default + PartialEq + fmt::Display + core::iter::Sum>(
    parts: &[T],
    letter: char,
) -> String {
    let mut out = format!("{}", parts.iter().copied().sum::<T>());
    for (i, &x) in parts.iter().enumerate() {
        if x != T::default() {
            out += &format!(" {letter}{i}={x}");
        }
    }
    out.push('\n');
    out
}

// The tests free objects, which is unsafe.
#[allow(unsafe_code)]
#[cfg(test)]
mod tests;
