//! `/sys` for the shell's `ls`, `cat` and `echo`: the kernel's kobject tree
//! (`kcore::kobject::sysfs`): `/sys/kernel/slab` with a directory of attribute files per slab
//! cache as Linux's SLUB shows them, `/sys/module`, and whatever else is added. This module
//! only maps the path and prints.
//!
//! ```text
//! sheaf> ls /sys/kernel/slab
//! :0000064/
//! kmalloc-64 -> :0000064
//! sheaf> cat /sys/kernel/slab/kmalloc-64/object_size
//! 64
//! sheaf> echo 1 > /sys/kernel/slab/kmalloc-64/shrink
//! ```

use kcore::kobject::{EntryRef, PageBuf, sysfs as tree};

use crate::{print, println};

/// Whether `path` is under `/sys`: `ls`, `cat` and `echo` hand such paths here.
pub(super) fn is_sysfs(path: &str) -> bool {
    path == "/sys" || path.starts_with("/sys/")
}

/// The path in the tree (which is mounted at `/sys`), without trailing slashes.
fn in_tree(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    path.strip_prefix("/sys").unwrap_or(path)
}

/// Whether `path` under `/sys` is a directory (a link to one included).
pub(super) fn is_dir(path: &str) -> bool {
    tree().is_dir(in_tree(path))
}

/// A file named with a trailing `/`, which Linux refuses ("Not a directory"); the tree
/// itself ignores trailing slashes.
fn file_as_dir(path: &str) -> bool {
    path.ends_with('/') && tree().is_file(in_tree(path))
}

/// `ls PATH` under `/sys`: a directory's entries (a link as `name -> target`, relative when it
/// leads into the same directory, as Linux's sysfs links read), or the path of a file.
pub(super) fn ls(path: &str) {
    if file_as_dir(path) {
        return println!("ls: cannot access '{path}': Not a directory");
    }
    let p = in_tree(path);
    // Printed entry by entry from the tree: nothing allocated, so `ls` works when memory is
    // exhausted.
    let listed = tree().for_each_entry(p, |e| match e {
        EntryRef::Dir(name) => println!("{name}/"),
        EntryRef::File(name, _) => println!("{name}"),
        EntryRef::Link(name, Some(target)) => match target.name_in_same_dir() {
            Some(t) => println!("{name} -> {t}"),
            None => println!("{name} -> /sys{target}"),
        },
        EntryRef::Link(name, None) => println!("{name} -> (gone)"),
    });
    if let Err(e) = listed {
        // Not a directory: a file is listed by its path, as `ls FILE` does.
        let mut page = PageBuf::new();
        match tree().read(p, &mut page) {
            Ok(()) => println!("{path}"),
            Err(_) => println!("ls: cannot access '{path}': {e}"),
        }
    }
}

/// `echo TEXT > PATH` under `/sys`: a writable attribute file.
pub(super) fn write(path: &str, text: &str) {
    if file_as_dir(path) {
        return println!("echo: {path}: Not a directory");
    }
    if let Err(e) = tree().write(in_tree(path), text) {
        println!("echo: {path}: {e}");
    }
}

/// `cat PATH` under `/sys`: an attribute file, read into a page (no allocation, so reading a
/// slab counter does not move it).
pub(super) fn cat(path: &str) {
    if file_as_dir(path) {
        return println!("cat: {path}: Not a directory");
    }
    let mut page = PageBuf::new();
    match tree().read(in_tree(path), &mut page) {
        Ok(()) => print!("{}", page.as_str()),
        Err(e) => println!("cat: {path}: {e}"),
    }
}
