//! `/sys` for the shell's `ls`, `cat` and `echo`. The tree is the kernel's kobjects
//! (`kcore::kobject::sysfs`: `/sys/kernel`, `/sys/module`, and whatever kobjects are added),
//! except `/sys/kernel/slab`, one directory of attribute files per slab cache as Linux's SLUB
//! shows them, which still comes from the slab allocator's own view (`slab::sysfs`) until the
//! caches embed kobjects. This module only walks the path and prints.
//!
//! ```text
//! sheaf> ls /sys/kernel/slab
//! :0000064/
//! kmalloc-64 -> :0000064
//! sheaf> cat /sys/kernel/slab/kmalloc-64/object_size
//! 64
//! ```

use kcore::kobject::{DirEntry, sysfs as tree};
use slab::sysfs::{self, Entry};

use crate::memory::kmalloc::slab;
use crate::{print, println};

/// Whether `path` is under `/sys`: `ls` and `cat` hand such paths here.
pub(super) fn is_sysfs(path: &str) -> bool {
    path == "/sys" || path.starts_with("/sys/")
}

/// A place in `/sys`.
enum Place<'a> {
    /// `/sys/kernel/slab` (the empty path) or a path below it (`kmalloc-64/order`): the slab
    /// allocator's view (`slab::sysfs`).
    Slab(&'a str),
    /// Anywhere else: the kobject tree (`kcore::kobject::sysfs`), by its path from `/sys`.
    Tree(&'a str),
}

/// Where `path` leads. Trailing slashes are ignored.
fn place(path: &str) -> Place<'_> {
    let path = path.trim_end_matches('/');
    if path == "/sys/kernel/slab" {
        return Place::Slab("");
    }
    match path.strip_prefix("/sys/kernel/slab/") {
        Some(rest) => Place::Slab(rest),
        None => Place::Tree(path.strip_prefix("/sys").unwrap_or(path)),
    }
}

/// `ls PATH` under `/sys`: a directory's entries (links as `name -> target`), or the path of a
/// file.
pub(super) fn ls(path: &str) {
    match place(path) {
        Place::Slab("") => {
            for entry in sysfs::list(slab()) {
                match entry {
                    Entry::Dir(name) => println!("{name}/"),
                    Entry::Link { name, target } => println!("{name} -> {target}"),
                }
            }
        }
        // A cache's directory (or a link to it): the attribute files.
        Place::Slab(name) if !name.contains('/') => match sysfs::resolve(slab(), name) {
            Ok(_) => sysfs::attributes().for_each(|a| println!("{a}")),
            Err(e) => println!("ls: {path}: {e}"),
        },
        Place::Slab(file) => match sysfs::read(slab(), file) {
            Ok(_) => println!("{path}"),
            Err(e) => println!("ls: {path}: {e}"),
        },
        Place::Tree(p) => match tree().read_dir(p) {
            Ok(entries) => {
                for e in entries {
                    match e {
                        DirEntry::Dir(name) => println!("{name}/"),
                        DirEntry::File(name, _) => println!("{name}"),
                        DirEntry::Link(name, Some(target)) => println!("{name} -> /sys{target}"),
                        DirEntry::Link(name, None) => println!("{name} -> (gone)"),
                    }
                }
            }
            Err(e) => println!("ls: {path}: {e}"),
        },
    }
}

/// `echo TEXT > PATH` under `/sys`: a writable attribute file.
pub(super) fn write(path: &str, text: &str) {
    let result = match place(path) {
        Place::Slab(file) => sysfs::write(slab(), file, text).map_err(|e| alloc::format!("{e}")),
        Place::Tree(p) => tree().write(p, text).map_err(|e| alloc::format!("{e}")),
    };
    if let Err(e) = result {
        println!("echo: {path}: {e}");
    }
}

/// `cat PATH` under `/sys`: an attribute file.
pub(super) fn cat(path: &str) {
    match place(path) {
        Place::Slab(file) => match sysfs::read(slab(), file) {
            Ok(text) => print!("{text}"),
            Err(e) => println!("cat: {path}: {e}"),
        },
        Place::Tree(p) => {
            let mut page = kcore::kobject::PageBuf::new();
            match tree().read(p, &mut page) {
                Ok(()) => print!("{}", page.as_str()),
                Err(e) => println!("cat: {path}: {e}"),
            }
        }
    }
}
