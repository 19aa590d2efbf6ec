//! Listing a directory without allocating: [`Sysfs::for_each_entry`] hands each entry to a
//! closure as an [`EntryRef`] borrowed from the tree, a link's target as a [`LinkTarget`] that
//! writes its path from the tree (the shell's `ls` when memory is exhausted).

use core::fmt;

use super::files::{NameBuf, next_dynamic};
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
    /// lists them (dynamic files too), without allocating (the shell's `ls` when memory is
    /// exhausted). `f` runs under the tree's lock: it must not call into this tree.
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
        // SAFETY: a directory node names a live kobject (tree invariant, lock held).
        let obj = kobj.map(|k| unsafe { k.get() });
        let ktype = obj.and_then(|o| o.lock().ktype);
        let attrs = ktype.map_or(&[][..], |t| t.attrs);
        // The children come sorted (a `BTreeMap`); the attributes are merged in by picking the
        // smallest name above the last one shown (a directory has a few dozen), the dynamic
        // files likewise, with one call of their `list` each (their names copied onto the
        // stack, so nothing is allocated).
        let next_attr = |after: Option<&str>| {
            attrs
                .iter()
                .filter(|a| after.is_none_or(|last| a.name > last))
                .min_by_key(|a| a.name)
        };
        let dynamic = ktype.and_then(|t| t.dynamic).zip(obj);
        let hidden = |n: &str| children.contains_key(n) || attrs.iter().any(|a| a.name == n);
        let (mut dyn_name, mut spare) = (NameBuf::new(), NameBuf::new());
        let mut dyn_mode =
            dynamic.and_then(|(d, o)| next_dynamic(d, o, None, &hidden, &mut dyn_name));
        let mut attr = next_attr(None);
        let mut kids = children.iter().peekable();
        loop {
            let kid = kids.peek().map(|(n, _)| n.as_str());
            let dyn_file = dyn_mode.map(|m| (dyn_name.as_str(), m));
            // The smallest of the three; a child before an attribute of its name (a dynamic
            // file of that name is hidden).
            let file = match (attr, dyn_file) {
                (Some(a), Some((d, _))) if d < a.name => dyn_file,
                (Some(a), _) => Some((a.name, a.mode)),
                (None, d) => d,
            };
            match (kid, file) {
                (None, None) => break,
                (Some(k), Some((f, _))) if f < k => {}
                (Some(_), _) => {
                    let (name, &child) = kids.next().expect("peeked");
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
                    continue;
                }
                (None, Some(_)) => {}
            }
            let (name, mode) = file.expect("a file is next");
            f(EntryRef::File(name, mode));
            if attr.is_some_and(|a| a.name == name) {
                attr = next_attr(Some(name));
            } else if let Some((d, o)) = dynamic {
                dyn_mode = next_dynamic(d, o, Some(dyn_name.as_str()), &hidden, &mut spare);
                core::mem::swap(&mut dyn_name, &mut spare);
            }
        }
        Ok(())
    }
}
