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
//! follows a name to its directory, [`read`] renders one file and [`write`] writes one. The
//! files themselves and the cache's directory are `attrs.rs`'s, below the registry; this file,
//! the view, reads the registry.
//!
//! ## Where this differs from Linux
//! * Of the writable files only `shrink` and `validate` are there ([`write`]); `min_partial`,
//!   `sheaf_capacity` and the debug flags cannot be changed at run time. `cpu_slabs` counts
//!   the objects parked in sheaves and barns (Sheaf has no CPU slabs), in slabs' worth, per
//!   node (`3 N0=3`), because `tools/mm/slabinfo` subtracts it from the slab counts; `trace`
//!   is always 0 (no tracing). The statistics are Linux's set for SLUB with sheaves
//!   (`cmpxchg_double_fail` always 0: no lockless slab updates) plus Sheaf's
//!   `free_remote_node`; the older CPU-slab ones (`deactivate_*`, `cpu_partial_*`) are not
//!   there: `tools/mm/slabinfo` reads missing files as 0. A kmalloc cache's `usersize` is its
//!   object size, as in Linux. The callers of `SLAB_STORE_USER`
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
use core::fmt;

use kobject::{DirEntry, Errno, PageBuf, errno};

use crate::platform::Platform;
use crate::registry::SlabAllocator;

// The files of a cache directory (`attrs.rs`, below the registry).
pub use crate::attrs::{WRITABLE, attributes, unique_id};

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
#[allow(unsafe_code)]
#[cfg(test)]
mod tool_tests;
#[allow(unsafe_code)]
#[cfg(test)]
mod trace_tests;
