//! [`Sysfs`]: the tree of directories, attribute files and symlinks built from kobjects, and
//! the kobject life-cycle calls that change it.
//!
//! # The tree
//!
//! A node is a directory (a kobject's, or the root) or a symlink to another directory. A
//! directory's files are not nodes: they are its kobject's type's
//! [`Attribute`](crate::Attribute)s and the files its [`DynAttrs`](crate::DynAttrs) list at
//! run time, read and written through the kobject (Linux's kernfs keeps them as nodes too;
//! here they cannot disagree with the type).
//! A name names one thing: a subdirectory or symlink first, then a static attribute, then a
//! dynamic file (`sysfs/files.rs`).
//!
//! # Life cycle, and why reading a file never touches a released object
//!
//! ```text
//!   KObject::new ─ init ─► add (a directory; a reference on the parent) ─► del (no directory;
//!   the parent's reference dropped) ─► last put: release      (a put with the object still
//!   added deletes it first, as Linux's kobject_cleanup does)
//! ```
//!
//! Invariants (all under the tree lock):
//! - a directory node names a kobject whose release has not started: the last `put` removes
//!   the node (under the lock) before running the release;
//! - a reader that finds a directory takes a reference with `get_unless_zero` before dropping
//!   the lock, so a count that already fell to zero is refused (`ENOENT`), and a count above
//!   zero cannot reach zero until the reader's own `put`;
//! - so `show`/`store` always run on a live object, even if `del` and the owner's last `put`
//!   happen meanwhile: the reader's `put` is then the last one, and runs the release.
//!
//! Lock order: the tree lock, then a kobject's lock. Releases run with no lock held.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::ptr::NonNull;

use crate::kobject::{
    ADDED, Errno, INITIALIZED, KObject, KSet, KobjError, KobjPtr, KobjType, RELEASED, errno,
    name_of,
};

mod entries;
mod files;
use crate::sync::{Mutex, MutexGuard, Ordering};
pub use entries::{EntryRef, LinkTarget};

const ROOT: u64 = 0;

enum Kind {
    Dir {
        kobj: Option<KobjPtr>,
        children: BTreeMap<String, u64>,
    },
    Link {
        target: u64,
    },
}

struct Node {
    name: String,
    parent: u64,
    kind: Kind,
}

struct Tree {
    nodes: BTreeMap<u64, Node>,
    next_id: u64,
}

/// What a directory lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirEntry {
    /// A subdirectory.
    Dir(String),
    /// An attribute file, with its mode.
    File(String, u16),
    /// A symlink, with the absolute path it points at (`None`: its target is gone).
    Link(String, Option<String>),
}

impl DirEntry {
    /// The entry's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Dir(n) | Self::File(n, _) | Self::Link(n, _) => n,
        }
    }
}

/// Where a path leads.
enum Target<'a> {
    Dir(u64),
    /// An attribute of the directory `.0`, called `.1`.
    File(u64, &'a str),
}

/// A sysfs tree and the kobject calls that change it. The kernel has one (`/sys`); host tests
/// make their own.
pub struct Sysfs {
    tree: Mutex<Tree>,
    /// Where misuse found on internal paths is reported (a parent's put from `del`, a
    /// reader's put), where no caller gets the error.
    reporter: fn(&KobjError),
}

impl Default for Sysfs {
    fn default() -> Self {
        Self::new()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

impl Tree {
    fn dir_children(&mut self, id: u64) -> &mut BTreeMap<String, u64> {
        match &mut self.nodes.get_mut(&id).expect("live node").kind {
            Kind::Dir { children, .. } => children,
            Kind::Link { .. } => unreachable!("a link has no children"),
        }
    }

    fn insert(&mut self, parent: u64, name: &str, kind: Kind) -> Result<u64, KobjError> {
        if self.dir_children(parent).contains_key(name) {
            let mut path = self.path(parent);
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(name);
            return Err(KobjError::Duplicate(path));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.insert(
            id,
            Node {
                name: String::from(name),
                parent,
                kind,
            },
        );
        self.dir_children(parent).insert(String::from(name), id);
        Ok(id)
    }

    /// Removes `id` and everything below it, calling `gone` with each kobject whose directory
    /// went. Allocates nothing.
    fn remove(&mut self, id: u64, gone: &mut dyn FnMut(KobjPtr)) {
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        if let Some(p) = self.nodes.get_mut(&node.parent)
            && let Kind::Dir { children, .. } = &mut p.kind
        {
            children.remove(&node.name);
        }
        if let Kind::Dir { kobj, children } = node.kind {
            kobj.into_iter().for_each(&mut *gone);
            for (_, child) in children {
                // The child's parent is gone already: remove it without unlinking.
                self.remove_below(child, gone);
            }
        }
    }

    fn remove_below(&mut self, id: u64, gone: &mut dyn FnMut(KobjPtr)) {
        if let Some(node) = self.nodes.remove(&id)
            && let Kind::Dir { kobj, children } = node.kind
        {
            kobj.into_iter().for_each(&mut *gone);
            for (_, child) in children {
                self.remove_below(child, gone);
            }
        }
    }

    /// Removes the link `name` in directory `at`, if there is one (and, with `to`, only if it
    /// leads to that node). Allocates nothing.
    fn unlink(&mut self, at: u64, name: &str, to: Option<u64>) -> bool {
        let id = self.dir_children(at).get(name).copied();
        match id.map(|id| (id, &self.nodes[&id].kind)) {
            Some((id, Kind::Link { target })) if to.is_none_or(|t| t == *target) => {
                self.remove(id, &mut |_| {});
                true
            }
            _ => false,
        }
    }

    /// The absolute path of a node (`/kernel/slab`), `/` for the root.
    fn path(&self, mut id: u64) -> String {
        let mut parts = Vec::new();
        while id != ROOT {
            let Some(n) = self.nodes.get(&id) else {
                break;
            };
            parts.push(n.name.as_str());
            id = n.parent;
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(p);
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    }

    /// Follows a symlink (a link to a link is not made by this crate, but followed anyway,
    /// a bounded number of times).
    fn follow(&self, mut id: u64) -> Result<u64, Errno> {
        for _ in 0..8 {
            match &self.nodes.get(&id).ok_or(Errno(errno::ENOENT))?.kind {
                Kind::Dir { .. } => return Ok(id),
                Kind::Link { target } => id = *target,
            }
        }
        Err(Errno(errno::ENOENT))
    }

    /// Resolves an absolute path below the root (`/kernel/slab/kmalloc-64/order`; a leading
    /// `/sys` is the caller's business). Symlinks on the way are followed.
    fn resolve<'a>(&self, path: &'a str) -> Result<Target<'a>, Errno> {
        self.resolve_from(ROOT, path)
    }

    /// Resolves `path` relative to the directory `start`.
    fn resolve_from<'a>(&self, start: u64, path: &'a str) -> Result<Target<'a>, Errno> {
        let mut cur = start;
        let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
        while let Some(part) = parts.next() {
            let Kind::Dir { kobj, children } = &self.nodes.get(&cur).expect("live").kind else {
                return Err(Errno(errno::ENOTDIR));
            };
            match children.get(part) {
                Some(&child) => cur = self.follow(child)?,
                None => {
                    // A static attribute or a dynamic file (its type's `list` runs here,
                    // under the tree lock).
                    let is_attr = kobj.is_some_and(|k| {
                        // SAFETY: a directory node names a live kobject (tree invariant; the
                        // tree lock is held by the caller).
                        files::find_file(unsafe { k.get() }, part).is_some()
                    });
                    if is_attr && parts.peek().is_none() {
                        return Ok(Target::File(cur, part));
                    }
                    return Err(Errno(if is_attr {
                        errno::ENOTDIR
                    } else {
                        errno::ENOENT
                    }));
                }
            }
        }
        Ok(Target::Dir(cur))
    }

    fn kobj_of(&self, dir: u64) -> Option<KobjPtr> {
        match &self.nodes.get(&dir)?.kind {
            Kind::Dir { kobj, .. } => *kobj,
            Kind::Link { .. } => None,
        }
    }
}

impl Sysfs {
    /// An empty tree (only the root directory) that drops internal reports.
    pub fn new() -> Self {
        Self::with_reporter(|_| {})
    }

    /// An empty tree that hands misuse found on internal paths to `reporter` (the kernel
    /// logs it).
    pub fn with_reporter(reporter: fn(&KobjError)) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            ROOT,
            Node {
                name: String::new(),
                parent: ROOT,
                kind: Kind::Dir {
                    kobj: None,
                    children: BTreeMap::new(),
                },
            },
        );
        Self {
            tree: Mutex::new(Tree { nodes, next_id: 1 }),
            reporter,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock()
    }

    /// Hands a misuse to the tree's reporter (for callers that find one where nobody else
    /// would see it, as the tree does on its internal paths).
    pub fn report(&self, e: &KobjError) {
        (self.reporter)(e);
    }

    /// Gives `kobj` the name `name` and a directory under `parent` (or, without one, under its
    /// kset's directory, or the root), and takes a reference on the parent (Linux's
    /// `kobject_add`).
    ///
    /// # Safety
    /// `kobj` must point at a kobject that stays at its address, alive, until its release runs
    /// (its last `put`): the tree, its children and its kset keep its address, and the release
    /// gets this very pointer back, so derive it from the pointer that owns the structure
    /// around the kobject (as `container_of` will step back from it).
    pub unsafe fn kobject_add(
        &self,
        kobj_ptr: NonNull<KObject>,
        parent: Option<&KObject>,
        name: &str,
    ) -> Result<(), KobjError> {
        // SAFETY: alive (caller contract).
        let kobj = unsafe { kobj_ptr.as_ref() };
        if !valid_name(name) {
            return Err(KobjError::BadName(String::from(name)));
        }
        // Under the tree lock: `add` and `del` change ADDED only there.
        let mut tree = self.lock();
        let state = kobj.state();
        if state & INITIALIZED == 0 {
            return Err(KobjError::NotInitialized(String::from(name)));
        }
        if state & RELEASED != 0 {
            return Err(KobjError::AfterRelease(kobj.name(), "add"));
        }
        if state & ADDED != 0 {
            return Err(KobjError::AlreadyAdded(kobj.name()));
        }
        let parent = match parent {
            // The parent's own pointer if it has one (given to its `add`): a child's last
            // reference may be what releases it.
            Some(p) => Some(p.lock().this.unwrap_or(KobjPtr::from(p))),
            None => kobj.lock().kset,
        };
        let parent_sd = match parent {
            // SAFETY: `parent` is a live object: the caller's reference (an argument), or the
            // kset, which outlives its members (it is `'static`).
            Some(p) => match unsafe { p.get() }.lock().sd {
                Some(sd) => sd,
                None => return Err(KobjError::ParentNotAdded(String::from(name))),
            },
            None => ROOT,
        };
        let id = tree.insert(
            parent_sd,
            name,
            Kind::Dir {
                kobj: Some(KobjPtr(kobj_ptr)),
                children: BTreeMap::new(),
            },
        )?;
        if let Some(p) = parent {
            // SAFETY: as above. The parent is in the tree (it has a directory), so its count
            // is above zero and this get cannot fail for that reason.
            let p = unsafe { p.get() };
            if let Err(e) = p.kref.get() {
                tree.remove(id, &mut |_| {});
                return Err(KobjError::Ref(p.name(), e));
            }
        }
        let mut inner = kobj.lock();
        inner.name = Some(String::from(name));
        inner.parent = parent;
        inner.sd = Some(id);
        inner.this = Some(KobjPtr(kobj_ptr));
        kobj.state.fetch_or(ADDED, Ordering::AcqRel);
        Ok(())
    }

    /// `init` then `add` (Linux's `kobject_init_and_add`).
    ///
    /// # Safety
    /// As for [`kobject_add`](Self::kobject_add).
    pub unsafe fn kobject_init_and_add(
        &self,
        kobj: NonNull<KObject>,
        ktype: &'static KobjType,
        parent: Option<&KObject>,
        name: &str,
    ) -> Result<(), KobjError> {
        // SAFETY: alive (caller contract).
        unsafe { kobj.as_ref() }.init(ktype)?;
        // SAFETY: forwarded contract.
        unsafe { self.kobject_add(kobj, parent, name) }
    }

    /// Adds a kset's directory (Linux's `kset_register`).
    ///
    /// # Safety
    /// As for [`kobject_add`](Self::kobject_add).
    pub unsafe fn kset_register(
        &self,
        kset: &KSet,
        parent: Option<&KObject>,
        name: &str,
    ) -> Result<(), KobjError> {
        static KSET_KTYPE: KobjType = KobjType {
            // A kset is static in Sheaf: nothing to free.
            release: Some(release_nothing),
            attrs: &[],
            dynamic: None,
        };
        // SAFETY: forwarded contract.
        unsafe { self.kobject_init_and_add(NonNull::from(&kset.kobj), &KSET_KTYPE, parent, name) }
    }

    /// Removes `kobj`'s directory (with everything below it) and drops its reference on the
    /// parent (Linux's `kobject_del`). The object lives on while references remain; reading
    /// its files through paths is no longer possible. Does nothing if it is not added.
    pub fn kobject_del(&self, kobj: &KObject) {
        let parent = {
            let mut tree = self.lock();
            let mut inner = kobj.lock();
            if kobj.state() & ADDED == 0 {
                return;
            }
            let sd = inner.sd.take();
            drop(inner);
            if let Some(sd) = sd {
                tree.remove(sd, &mut |k| {
                    if k != KobjPtr::from(kobj) {
                        // SAFETY: `k` had a directory in the tree until now, under the lock we
                        // hold, so it is alive (tree invariant). Its directory is gone with its
                        // parent's: it stays added (and keeps its parent's reference) until its
                        // own del, as in Linux.
                        unsafe { k.get() }.lock().sd = None;
                    }
                });
            }
            kobj.state.fetch_and(!ADDED, Ordering::AcqRel);
            kobj.lock().parent.take()
        };
        if let Some(p) = parent {
            // SAFETY: this object held a reference on its parent since `add`, so the parent is
            // alive; that reference is dropped here.
            if let Err(e) = unsafe { self.kobject_put(p.0) } {
                (self.reporter)(&e);
            }
        }
    }

    /// Takes a reference (Linux's `kobject_get`). A get on a released object, or one that
    /// would overflow the count, is refused and reported.
    pub fn kobject_get(&self, kobj: &KObject) -> Result<(), KobjError> {
        kobj.get()
    }

    /// Drops a reference (Linux's `kobject_put`); the last one deletes the object from sysfs
    /// if needed and runs its type's release. A put on a released object is refused and
    /// reported (the count is not touched).
    ///
    /// # Safety
    /// `kobj` must point at a kobject that is still in memory: the caller owns a reference on
    /// it, or (to have a misuse reported rather than be undefined) its memory outlives its
    /// release (a static, or a structure the release does not free).
    pub unsafe fn kobject_put(&self, kobj: NonNull<KObject>) -> Result<(), KobjError> {
        let release = {
            // SAFETY: in memory (caller contract); the reference ends before the release.
            let k = unsafe { kobj.as_ref() };
            let state = k.state();
            if state & RELEASED != 0 {
                return Err(KobjError::AfterRelease(k.name(), "put"));
            }
            if state & INITIALIZED == 0 {
                return Err(KobjError::NotInitialized(k.name()));
            }
            match k.kref.put() {
                Ok(false) => return Ok(()),
                Err(e) => return Err(KobjError::Ref(k.name(), e)),
                Ok(true) => {}
            }
            // The count is zero: no new reference can be taken through the tree
            // (`get_unless_zero`), so this is the only user left.
            self.kobject_del(k);
            // Both the flag and the release decision are made once: the count reached zero
            // in exactly one put.
            k.state.fetch_or(RELEASED, Ordering::AcqRel);
            let inner = k.lock();
            match inner.ktype.and_then(|t| t.release) {
                Some(f) => f,
                None => return Err(KobjError::NoRelease(name_of(&inner))),
            }
        };
        // SAFETY: the count reached zero in this call, once; the object left sysfs above, and
        // nothing else holds a reference: the release owns it (`ReleaseFn` contract).
        unsafe { release(kobj) };
        Ok(())
    }

    /// Creates a symlink `name` in `dir`'s directory (the root if `None`) to `target`'s
    /// directory (Linux's `sysfs_create_link`).
    pub fn create_link(
        &self,
        dir: Option<&KObject>,
        target: &KObject,
        name: &str,
    ) -> Result<(), KobjError> {
        if !valid_name(name) {
            return Err(KobjError::BadName(String::from(name)));
        }
        let mut tree = self.lock();
        let at = dir_node(dir).ok_or_else(|| KobjError::ParentNotAdded(String::from(name)))?;
        let to = target
            .lock()
            .sd
            .ok_or_else(|| KobjError::TargetNotAdded(String::from(name)))?;
        tree.insert(at, name, Kind::Link { target: to }).map(|_| ())
    }

    /// Removes the symlink `name` from `dir`'s directory (the root if `None`) (Linux's
    /// `sysfs_remove_link`).
    pub fn remove_link(&self, dir: Option<&KObject>, name: &str) -> Result<(), KobjError> {
        if self.remove_link_if_any(dir, name) {
            Ok(())
        } else {
            Err(KobjError::NotFound(String::from(name)))
        }
    }

    /// Removes the symlink `name` from `dir`'s directory (the root if `None`) if it leads to
    /// `target`'s directory; `true` if it did. Allocates nothing (a cache's destroy uses it).
    pub fn remove_link_to(&self, dir: Option<&KObject>, name: &str, target: &KObject) -> bool {
        let mut tree = self.lock();
        match (dir_node(dir), target.lock().sd) {
            (Some(at), Some(to)) => tree.unlink(at, name, Some(to)),
            _ => false,
        }
    }

    /// Removes the symlink `name` from `dir`'s directory (the root if `None`) whatever it leads
    /// to; `true` if there was one. Allocates nothing.
    pub fn remove_link_if_any(&self, dir: Option<&KObject>, name: &str) -> bool {
        let mut tree = self.lock();
        dir_node(dir).is_some_and(|at| tree.unlink(at, name, None))
    }

    /// The path of `kobj`'s directory from the root (`/kernel/slab/kmalloc-64`; Linux's
    /// `kobject_get_path`), `None` if it has none.
    pub fn path_of(&self, kobj: &KObject) -> Option<String> {
        let tree = self.lock();
        let sd = kobj.lock().sd?;
        Some(tree.path(sd))
    }

    /// Finds the member of `kset` named `name` and takes a reference on it (Linux's
    /// `kset_find_obj`); the caller puts it.
    pub fn kset_find_obj(&self, kset: &KSet, name: &str) -> Option<NonNull<KObject>> {
        let tree = self.lock();
        let sd = kset.kobj.lock().sd?;
        let Kind::Dir { children, .. } = &tree.nodes.get(&sd)?.kind else {
            return None;
        };
        let k = tree.kobj_of(*children.get(name)?)?;
        // SAFETY: a directory node names a live kobject (tree invariant, lock held).
        let obj = unsafe { k.get() };
        let belongs = obj.lock().kset == Some(KobjPtr::from(&kset.kobj));
        (belongs && obj.kref.get_unless_zero() == Ok(true)).then_some(k.0)
    }

    /// Lists a directory: subdirectories, symlinks and attribute files (static and dynamic),
    /// sorted by name.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Errno> {
        let tree = self.lock();
        let Target::Dir(id) = tree.resolve(path)? else {
            return Err(Errno(errno::ENOTDIR));
        };
        let Kind::Dir { kobj, children } = &tree.nodes[&id].kind else {
            unreachable!("resolve returns directories");
        };
        let mut out: Vec<DirEntry> = children
            .iter()
            .map(|(name, &child)| match &tree.nodes[&child].kind {
                Kind::Dir { .. } => DirEntry::Dir(name.clone()),
                Kind::Link { target } => DirEntry::Link(
                    name.clone(),
                    tree.nodes.contains_key(target).then(|| tree.path(*target)),
                ),
            })
            .collect();
        if let Some(k) = kobj {
            // SAFETY: a directory node names a live kobject (tree invariant, lock held).
            let obj = unsafe { k.get() };
            let ktype = obj.lock().ktype;
            let attrs = ktype.map_or(&[][..], |t| t.attrs);
            for a in attrs {
                out.push(DirEntry::File(String::from(a.name), a.mode));
            }
            if let Some(d) = ktype.and_then(|t| t.dynamic) {
                // Without the object's lock (`list` may take it), under the tree lock.
                let mut dynamic = Vec::new();
                (d.list)(obj, &mut |n, mode| {
                    let hidden = children.contains_key(n) || attrs.iter().any(|a| a.name == n);
                    if files::shown_name(n) && !hidden {
                        dynamic.push(DirEntry::File(String::from(n), mode));
                    }
                });
                // A name listed twice is shown once, with its first mode (a stable sort).
                dynamic.sort_by(|a, b| a.name().cmp(b.name()));
                dynamic.dedup_by(|a, b| a.name() == b.name());
                out.append(&mut dynamic);
            }
        }
        out.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(out)
    }

    /// Where the symlink at `path` points (an absolute path).
    pub fn read_link(&self, path: &str) -> Result<String, Errno> {
        let tree = self.lock();
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let Target::Dir(at) = tree.resolve(dir)? else {
            return Err(Errno(errno::ENOTDIR));
        };
        let Kind::Dir { children, .. } = &tree.nodes[&at].kind else {
            unreachable!("resolve returns directories");
        };
        let id = *children.get(name).ok_or(Errno(errno::ENOENT))?;
        match &tree.nodes[&id].kind {
            Kind::Link { target } if tree.nodes.contains_key(target) => Ok(tree.path(*target)),
            Kind::Link { .. } => Err(Errno(errno::ENOENT)),
            Kind::Dir { .. } => Err(Errno(errno::EINVAL)),
        }
    }

    /// Is `path` a directory (through symlinks)?
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.lock().resolve(path), Ok(Target::Dir(_)))
    }

    /// Writes the whole tree below `path`, one entry per line (for debugging and tests).
    pub fn dump(&self, path: &str, out: &mut String) -> Result<(), Errno> {
        for e in self.read_dir(path)? {
            let _ = match &e {
                DirEntry::Dir(n) => writeln!(out, "{path}/{n}/"),
                DirEntry::File(n, mode) => writeln!(out, "{path}/{n} {mode:o}"),
                DirEntry::Link(n, t) => writeln!(out, "{path}/{n} -> {t:?}"),
            };
            if let DirEntry::Dir(n) = e {
                let mut sub = String::from(path);
                sub.push('/');
                sub.push_str(&n);
                self.dump(&sub, out)?;
            }
        }
        Ok(())
    }
}

/// The directory node of `dir` (the root for `None`), `None` if it has none (never added, or
/// deleted). Taken under the tree lock by the callers.
fn dir_node(dir: Option<&KObject>) -> Option<u64> {
    match dir {
        Some(d) => d.lock().sd,
        None => Some(ROOT),
    }
}

/// The release of objects that live forever (a static kset).
///
/// # Safety
/// None needed: it does nothing.
unsafe fn release_nothing(_: NonNull<KObject>) {}
