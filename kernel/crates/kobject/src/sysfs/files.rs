//! A directory's files: finding one by name (a static [`Attribute`] first, then a file of the
//! type's [`DynAttrs`]), and reading and writing it through its kobject with a reference held.

use super::{ROOT, Sysfs, Target, valid_name};
use crate::kobject::{Attribute, DynAttrs, Errno, KObject, KobjPtr, NAME_MAX, errno};
use crate::pagebuf::PageBuf;

/// A file found by name (the name borrowed from the path that named it).
pub(super) enum FileRef<'a> {
    /// A static attribute of the kobject's type.
    Static(&'static Attribute),
    /// A dynamic file: the type's [`DynAttrs`], the name, the mode `list` gave.
    Dynamic(&'static DynAttrs, &'a str, u16),
}

/// Can a dynamic file have this name?
pub(super) fn shown_name(name: &str) -> bool {
    valid_name(name) && name.len() <= NAME_MAX
}

/// The file `name` of `obj`'s directory, if its type has one. Takes the object's lock only to
/// read its type, so `list` runs without it (under the caller's tree lock).
pub(super) fn find_file<'a>(obj: &KObject, name: &'a str) -> Option<FileRef<'a>> {
    let ktype = obj.lock().ktype?;
    if let Some(a) = ktype.attr(name) {
        return Some(FileRef::Static(a));
    }
    let d = ktype.dynamic?;
    if !shown_name(name) {
        return None;
    }
    let mut mode = None;
    (d.list)(obj, &mut |n, m| {
        if mode.is_none() && n == name {
            mode = Some(m);
        }
    });
    mode.map(|m| FileRef::Dynamic(d, name, m))
}

/// A dynamic file's name copied onto the stack (listing without allocating).
pub(super) struct NameBuf {
    buf: [u8; NAME_MAX],
    len: usize,
}

impl NameBuf {
    pub(super) const fn new() -> Self {
        Self {
            buf: [0; NAME_MAX],
            len: 0,
        }
    }

    /// Keeps `name` (at most `NAME_MAX` bytes: [`shown_name`]).
    fn set(&mut self, name: &str) {
        self.buf[..name.len()].copy_from_slice(name.as_bytes());
        self.len = name.len();
    }

    pub(super) fn as_str(&self) -> &str {
        // A whole `&str` was copied in (`set`).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Finds, with one call of `list`, the smallest dynamic name of `obj` above `after` (all of
/// them if `None`) that `hidden` does not hide; copies it into `best` and returns its mode.
pub(super) fn next_dynamic(
    d: &DynAttrs,
    obj: &KObject,
    after: Option<&str>,
    hidden: &dyn Fn(&str) -> bool,
    best: &mut NameBuf,
) -> Option<u16> {
    let mut mode = None;
    (d.list)(obj, &mut |n, m| {
        if shown_name(n)
            && after.is_none_or(|a| n > a)
            && (mode.is_none() || n < best.as_str())
            && !hidden(n)
        {
            best.set(n);
            mode = Some(m);
        }
    });
    mode
}

impl Sysfs {
    /// Is `path` an attribute file, static or dynamic (through symlinks; trailing slashes are
    /// ignored, as everywhere in the tree)?
    pub fn is_file(&self, path: &str) -> bool {
        matches!(self.lock().resolve(path), Ok(Target::File(..)))
    }

    /// Finds the attribute file at `path` (relative to `at`'s directory, or absolute) and takes
    /// a reference on its kobject. Allocates nothing (a dynamic file's name is borrowed from
    /// `path`).
    fn open<'a>(
        &self,
        at: Option<&KObject>,
        path: &'a str,
    ) -> Result<(KobjPtr, FileRef<'a>), Errno> {
        let tree = self.lock();
        let start = match at {
            Some(k) => k.lock().sd.ok_or(Errno(errno::ENOENT))?,
            None => ROOT,
        };
        let Target::File(dir, name) = tree.resolve_from(start, path)? else {
            return Err(Errno(errno::EISDIR));
        };
        let k = tree.kobj_of(dir).ok_or(Errno(errno::ENOENT))?;
        // SAFETY: a directory node names a live kobject (tree invariant, lock held).
        let obj = unsafe { k.get() };
        let file = find_file(obj, name).ok_or(Errno(errno::ENOENT))?;
        // A count at zero: the last put happened and the release is on its way (it removes
        // the directory right after): the file is already gone.
        match obj.kref.get_unless_zero() {
            Ok(true) => Ok((k, file)),
            _ => Err(Errno(errno::ENOENT)),
        }
    }

    /// Drops the reference [`open`](Self::open) took.
    fn close(&self, k: KobjPtr) {
        // SAFETY: `open` took a reference, which this drops: the object is alive.
        if let Err(e) = unsafe { self.kobject_put(k.0) } {
            (self.reporter)(&e);
        }
    }

    /// Reads the attribute file at `path` into `out` (a page: at most
    /// [`PAGE_SIZE`](crate::PAGE_SIZE) bytes, as Linux's sysfs reads). Allocates nothing, so
    /// reading a slab cache's counters does not move them (a dynamic file too: its name is
    /// borrowed from `path`; its type's `list` should not allocate either).
    pub fn read(&self, path: &str, out: &mut PageBuf) -> Result<(), Errno> {
        self.read_at(None, path, out)
    }

    /// [`read`](Self::read) of a path relative to `dir`'s directory (`None`: the root).
    pub fn read_at(
        &self,
        dir: Option<&KObject>,
        path: &str,
        out: &mut PageBuf,
    ) -> Result<(), Errno> {
        let (k, file) = self.open(dir, path)?;
        // SAFETY: `open` took a reference: alive until `close`. No tree lock is held.
        let obj = unsafe { k.get() };
        let result = match file {
            FileRef::Static(attr) => match attr.show {
                Some(show) => show(obj, attr, out),
                None => Err(Errno(errno::EACCES)),
            },
            FileRef::Dynamic(d, name, mode) if mode & 0o444 != 0 => (d.show)(obj, name, out),
            FileRef::Dynamic(..) => Err(Errno(errno::EACCES)),
        };
        self.close(k);
        result
    }

    /// Writes `data` to the attribute file at `path`; returns what its `store` consumed.
    pub fn write(&self, path: &str, data: &str) -> Result<usize, Errno> {
        self.write_at(None, path, data)
    }

    /// [`write`](Self::write) of a path relative to `dir`'s directory (`None`: the root).
    pub fn write_at(&self, dir: Option<&KObject>, path: &str, data: &str) -> Result<usize, Errno> {
        let (k, file) = self.open(dir, path)?;
        // SAFETY: `open` took a reference: alive until `close`. No tree lock is held.
        let obj = unsafe { k.get() };
        let result = match file {
            FileRef::Static(attr) => match attr.store {
                Some(store) => store(obj, attr, data),
                None => Err(Errno(errno::EACCES)),
            },
            FileRef::Dynamic(d, name, mode) => match d.store {
                Some(store) if mode & 0o222 != 0 => store(obj, name, data),
                _ => Err(Errno(errno::EACCES)),
            },
        };
        self.close(k);
        result
    }
}
