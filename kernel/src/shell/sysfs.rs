//! `/sys` for the shell's `ls`, `cat` and `echo`: `/sys/kernel/slab`, one directory of
//! attribute files per slab cache, as Linux's SLUB shows them. The tree and the files come from
//! `slab::sysfs`; this module only walks the path and prints.
//!
//! ```text
//! sheaf> ls /sys/kernel/slab
//! :0000064/
//! kmalloc-64 -> :0000064
//! sheaf> cat /sys/kernel/slab/kmalloc-64/object_size
//! 64
//! ```

use slab::sysfs::{self, Entry};

use crate::memory::kmalloc::slab;
use crate::{print, println};

/// Whether `path` is under `/sys`: `ls` and `cat` hand such paths here.
pub(super) fn is_sysfs(path: &str) -> bool {
    path == "/sys" || path.starts_with("/sys/")
}

/// A place in `/sys`.
enum Place<'a> {
    /// `/sys`.
    Sys,
    /// `/sys/kernel`.
    Kernel,
    /// `/sys/kernel/slab` (the empty path) or a path below it (`kmalloc-64/order`).
    Slab(&'a str),
}

/// Where `path` leads, `None` if nowhere. Trailing slashes are ignored.
fn place(path: &str) -> Option<Place<'_>> {
    match path.trim_end_matches('/') {
        "/sys" => Some(Place::Sys),
        "/sys/kernel" => Some(Place::Kernel),
        "/sys/kernel/slab" => Some(Place::Slab("")),
        path => path.strip_prefix("/sys/kernel/slab/").map(Place::Slab),
    }
}

/// `ls PATH` under `/sys`: a directory's entries (links as `name -> target`), or the path of a
/// file.
pub(super) fn ls(path: &str) {
    match place(path) {
        Some(Place::Sys) => println!("kernel/"),
        Some(Place::Kernel) => println!("slab/"),
        Some(Place::Slab("")) => {
            for entry in sysfs::list(slab()) {
                match entry {
                    Entry::Dir(name) => println!("{name}/"),
                    Entry::Link { name, target } => println!("{name} -> {target}"),
                }
            }
        }
        // A cache's directory (or a link to it): the attribute files.
        Some(Place::Slab(name)) if !name.contains('/') => match sysfs::resolve(slab(), name) {
            Ok(_) => sysfs::attributes().for_each(|a| println!("{a}")),
            Err(e) => println!("ls: {path}: {e}"),
        },
        Some(Place::Slab(file)) => match sysfs::read(slab(), file) {
            Ok(_) => println!("{path}"),
            Err(e) => println!("ls: {path}: {e}"),
        },
        None => println!("ls: {path}: No such file or directory"),
    }
}

/// `echo TEXT > PATH` under `/sys`: a writable attribute file of a cache (`shrink`,
/// `validate`).
pub(super) fn write(path: &str, text: &str) {
    match place(path) {
        Some(Place::Slab(file)) => {
            if let Err(e) = sysfs::write(slab(), file, text) {
                println!("echo: {path}: {e}");
            }
        }
        Some(_) => println!("echo: {path}: Is a directory"),
        None => println!("echo: {path}: No such file or directory"),
    }
}

/// `cat PATH` under `/sys`: an attribute file of a cache.
pub(super) fn cat(path: &str) {
    match place(path) {
        Some(Place::Slab(file)) => match sysfs::read(slab(), file) {
            Ok(text) => print!("{text}"),
            Err(e) => println!("cat: {path}: {e}"),
        },
        Some(_) => println!("cat: {path}: Is a directory"),
        None => println!("cat: {path}: No such file or directory"),
    }
}
