//! Listing a directory without allocating: [`Sysfs::for_each_entry`] hands each entry to a
//! closure as an [`EntryRef`] borrowed from the tree, a link's target as a [`LinkTarget`] that
//! writes its path from the tree (the shell's `ls` when memory is exhausted).

use core::fmt;

use super::{Kind, ROOT, Sysfs, Target, Tree, errno};
use crate::kobject::Errno;

/// An entry of a directory as [`Sysfs::for_each_entry`] shows it, borrowed from the tree.
pub enum EntryRef<'a> {
    /// A subdirectory.
    Dir(&'a str),
    /// An attribute file, with its mode.
    File(&'a str, u16),
    /// A symlink and where it leads (`None`: its target is gone).
    Link(&'a str, Option<LinkTarget<'a>>),
}

/// The target of a symlink met by [`Sysfs::for_each_entry`]: its absolute path (`Display`),
/// written without allocating.
pub struct LinkTarget<'a> {
    tree: &'a Tree,
    id: u64,
    /// The directory being listed.
    dir: u64,
}

impl LinkTarget<'_> {
    /// The target's name, if it is in the directory being listed (Linux's sysfs link then
    /// reads as that name alone).
    pub fn name_in_same_dir(&self) -> Option<&str> {
        let node = self.tree.nodes.get(&self.id)?;
        (node.parent == self.dir).then_some(node.name.as_str())
    }
}

impl fmt::Display for LinkTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Writes `/a/b/c` for node `id`, its ancestors first (the depth is a few levels).
        fn write_path(tree: &Tree, id: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if id == ROOT {
                return Ok(());
            }
            let Some(n) = tree.nodes.get(&id) else {
                return Ok(());
            };
            write_path(tree, n.parent, f)?;
            write!(f, "/{}", n.name)
        }
        if self.id == ROOT {
            return f.write_str("/");
        }
        write_path(self.tree, self.id, f)
    }
}

impl Sysfs {
    /// Calls `f` on every entry of the directory at `path`, sorted by name as [`read_dir`]
    /// lists them, without allocating (the shell's `ls` when memory is exhausted). `f` runs
    /// under the tree's lock: it must not call into this tree.
    ///
    /// [`read_dir`]: Self::read_dir
    pub fn for_each_entry(&self, path: &str, mut f: impl FnMut(EntryRef<'_>)) -> Result<(), Errno> {
        let tree = self.lock();
        let Target::Dir(id) = tree.resolve(path)? else {
            return Err(Errno(errno::ENOTDIR));
        };
        let Kind::Dir { kobj, children } = &tree.nodes[&id].kind else {
            unreachable!("resolve returns directories");
        };
        let attrs = match kobj {
            // SAFETY: a directory node names a live kobject (tree invariant, lock held).
            Some(k) => unsafe { k.get() }.lock().ktype.map_or(&[][..], |t| t.attrs),
            None => &[][..],
        };
        // The children come sorted (a `BTreeMap`); the attributes are merged in by picking the
        // smallest name above the last one shown (a directory has a few dozen).
        let next_attr = |after: Option<&str>| {
            attrs
                .iter()
                .filter(|a| after.is_none_or(|last| a.name > last))
                .min_by_key(|a| a.name)
        };
        let mut attr = next_attr(None);
        for (name, &child) in children {
            while let Some(a) = attr.filter(|a| a.name < name.as_str()) {
                f(EntryRef::File(a.name, a.mode));
                attr = next_attr(Some(a.name));
            }
            f(match &tree.nodes[&child].kind {
                Kind::Dir { .. } => EntryRef::Dir(name),
                Kind::Link { target } => EntryRef::Link(
                    name,
                    tree.nodes.contains_key(target).then_some(LinkTarget {
                        tree: &tree,
                        id: *target,
                        dir: id,
                    }),
                ),
            });
        }
        while let Some(a) = attr {
            f(EntryRef::File(a.name, a.mode));
            attr = next_attr(Some(a.name));
        }
        Ok(())
    }
}
