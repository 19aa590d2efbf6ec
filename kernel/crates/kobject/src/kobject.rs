//! [`KObject`], [`KobjType`], [`Attribute`], [`KSet`] and their errors.
//!
//! A kobject is embedded in a bigger structure (a slab cache, a module, a device), the way
//! Linux embeds `struct kobject`: the kobject counts the references to the whole structure,
//! gives it a name and a place in sysfs, and when the last reference goes its type's
//! [`release`](KobjType::release) frees (or otherwise retires) the structure it is part of.
//! The state changes live in [`Sysfs`](crate::Sysfs), which owns the tree the kobjects are
//! shown in: [`Sysfs::kobject_add`](crate::Sysfs::kobject_add),
//! [`kobject_del`](crate::Sysfs::kobject_del), [`kobject_get`](crate::Sysfs::kobject_get),
//! [`kobject_put`](crate::Sysfs::kobject_put).

use alloc::string::String;
use core::fmt;
use core::ptr::NonNull;

use crate::kref::{Kref, RefError};
use crate::pagebuf::PageBuf;
use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering};

/// A negative error number, as sysfs callbacks return them (`-EINVAL` is `Errno(EINVAL)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Linux's errno values used by sysfs.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// Input/output error.
    pub const EIO: i32 = 5;
    /// Cannot allocate memory.
    pub const ENOMEM: i32 = 12;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// Not a directory.
    pub const ENOTDIR: i32 = 20;
    /// Is a directory.
    pub const EISDIR: i32 = 21;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use errno::*;
        f.write_str(match self.0 {
            EPERM => "Operation not permitted",
            ENOENT => "No such file or directory",
            EIO => "Input/output error",
            ENOMEM => "Cannot allocate memory",
            EACCES => "Permission denied",
            EBUSY => "Device or resource busy",
            EEXIST => "File exists",
            ENOTDIR => "Not a directory",
            EISDIR => "Is a directory",
            EINVAL => "Invalid argument",
            _ => return write!(f, "error {}", self.0),
        })
    }
}

/// What a kobject's last `put` calls: frees (or retires) the structure the kobject is
/// embedded in, found from the kobject's address (Linux's `container_of`).
///
/// # Safety
/// Called exactly once, after the count reached zero and the kobject left sysfs: the function
/// owns the structure; nobody else touches it afterwards (a later get or put is a bug that
/// the kobject reports only while its memory is still there).
pub type ReleaseFn = unsafe fn(NonNull<KObject>);

/// Reads an attribute of a kobject: writes its text (normally one line, `"64\n"`) into the
/// page buffer (`write!(out, ...)`; at most [`PAGE_SIZE`](crate::PAGE_SIZE) bytes are kept, as
/// Linux's `sysfs_emit` keeps). Gets the attribute too (Linux's `show(kobj, attr, buf)`), so
/// one function can serve every file of a type.
pub type ShowFn = fn(&KObject, &Attribute, &mut PageBuf) -> Result<(), Errno>;

/// Writes an attribute: parses the text written and acts; returns the bytes consumed (normally
/// all of them) or an error (`EINVAL` for input it does not accept).
pub type StoreFn = fn(&KObject, &Attribute, &str) -> Result<usize, Errno>;

/// A file in a kobject's sysfs directory (Linux's `struct kobj_attribute`).
#[derive(Clone, Copy)]
pub struct Attribute {
    /// The file name.
    pub name: &'static str,
    /// The permission bits shown by `ls -l` (`0o444` read-only, `0o644` read-write, `0o200`
    /// write-only).
    pub mode: u16,
    /// Reads it; `None`: not readable (`EACCES`).
    pub show: Option<ShowFn>,
    /// Writes it; `None`: not writable (`EACCES`).
    pub store: Option<StoreFn>,
}

impl Attribute {
    /// A read-only attribute (`0o444`).
    pub const fn ro(name: &'static str, show: ShowFn) -> Self {
        Self {
            name,
            mode: 0o444,
            show: Some(show),
            store: None,
        }
    }

    /// A read-write attribute (`0o644`).
    pub const fn rw(name: &'static str, show: ShowFn, store: StoreFn) -> Self {
        Self {
            name,
            mode: 0o644,
            show: Some(show),
            store: Some(store),
        }
    }

    /// A write-only attribute (`0o200`), like SLUB's `shrink` before Linux made it readable.
    pub const fn wo(name: &'static str, store: StoreFn) -> Self {
        Self {
            name,
            mode: 0o200,
            show: None,
            store: Some(store),
        }
    }
}

/// The type of a kobject (Linux's `struct kobj_type`): what its release does and which
/// attribute files its directory has.
pub struct KobjType {
    /// Runs after the last `put`. `None` is a bug Linux warns about: the object can never be
    /// freed; the `put` reports it.
    pub release: Option<ReleaseFn>,
    /// The files of the directory (Linux's `default_groups`).
    pub attrs: &'static [Attribute],
    /// Files whose names are known only at run time (a module's `sections/` and
    /// `parameters/`), shown after asking the object; `None` for most types. A static
    /// attribute, a subdirectory or a symlink of the same name hides a dynamic file.
    pub dynamic: Option<&'static DynAttrs>,
}

/// Files of a kobject's directory whose names are known only at run time (Linux builds such
/// attribute groups at run time, e.g. a module's `sections/` and `parameters/`).
///
/// The names come from [`list`](Self::list), asked each time the directory is listed or a
/// path through it is resolved; reading and writing go to [`show`](Self::show) and
/// [`store`](Self::store) with the name. A name is shown only if it is a valid file name
/// (not empty, no `/`, not `.` or `..`, at most [`NAME_MAX`] bytes); if `list` gives a name
/// twice, its first mode counts. A dynamic file is hidden by a static [`Attribute`], a
/// subdirectory or a symlink of the same name.
///
/// # Locking
/// `list` runs under the sysfs tree's lock (and no kobject's lock): it must not call back into
/// the tree ([`Sysfs`](crate::Sysfs)) or it deadlocks; it may take the object's own locks
/// (its name, a lock around its data) and should not allocate (listing a directory with
/// [`Sysfs::for_each_entry`](crate::Sysfs::for_each_entry) allocates nothing and calls it once
/// per file shown). `show` and `store` run with no tree lock held, on a live object (the read
/// or write holds a reference on it, as for static attributes), like [`ShowFn`] and
/// [`StoreFn`]. The set of names may change between the `list` that found a file and its
/// `show`/`store`: they return `ENOENT` for a name they no longer know. Reading a dynamic file
/// allocates nothing in sysfs (the name is borrowed from the path).
pub struct DynAttrs {
    /// Calls `f(name, mode)` for each file of `kobj`'s directory, in any order (`mode` as
    /// [`Attribute::mode`]: `0o444` read-only, `0o644` read-write; leave out a file that is
    /// not to be shown, as Linux does for a module parameter of mode 0).
    pub list: DynListFn,
    /// Reads file `name` of `kobj` (only called for names `list` gives with a readable mode,
    /// any `0o444` bit): like [`ShowFn`].
    pub show: DynShowFn,
    /// Writes file `name` (only called for names `list` gives with a writable mode, any
    /// `0o222` bit): like [`StoreFn`]; `None`: no file is writable (`EACCES`).
    pub store: Option<DynStoreFn>,
}

/// [`DynAttrs::list`]: calls `f(name, mode)` for each dynamic file of the object's directory.
pub type DynListFn = fn(&KObject, &mut dyn FnMut(&str, u16));

/// [`DynAttrs::show`]: reads the dynamic file `name` (like [`ShowFn`]).
pub type DynShowFn = fn(&KObject, &str, &mut PageBuf) -> Result<(), Errno>;

/// [`DynAttrs::store`]: writes the dynamic file `name` (like [`StoreFn`]).
pub type DynStoreFn = fn(&KObject, &str, &str) -> Result<usize, Errno>;

/// The longest name of a dynamic file (Linux's `NAME_MAX`): longer ones are not shown.
pub const NAME_MAX: usize = 255;

impl KobjType {
    /// The attribute called `name`.
    pub fn attr(&self, name: &str) -> Option<&'static Attribute> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// A misuse of a kobject, reported by the object's name (the kernel logs it; the object is
/// left as it was, or leaked, never corrupted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KobjError {
    /// `init` of an object already initialized.
    AlreadyInitialized(String),
    /// Used before `init`.
    NotInitialized(String),
    /// `add` of an object already added.
    AlreadyAdded(String),
    /// The parent is not in sysfs (never added, or deleted).
    ParentNotAdded(String),
    /// The link target is not in sysfs.
    TargetNotAdded(String),
    /// A name that is empty, contains `/`, or is `.` or `..`.
    BadName(String),
    /// The directory already has an entry of that name (`sysfs: cannot create duplicate
    /// filename`).
    Duplicate(String),
    /// No such entry (removing a link that is not there).
    NotFound(String),
    /// A `get` or `put` after the release ran.
    AfterRelease(String, &'static str),
    /// The count was misused (and is now saturated: the object is leaked).
    Ref(String, RefError),
    /// The last `put` found no release function: the object is leaked.
    NoRelease(String),
}

impl fmt::Display for KobjError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyInitialized(n) => {
                write!(f, "kobject '{n}': tried to init an initialized object")
            }
            Self::NotInitialized(n) => write!(f, "kobject '{n}': is not initialized"),
            Self::AlreadyAdded(n) => write!(f, "kobject '{n}': already added"),
            Self::ParentNotAdded(n) => write!(f, "kobject '{n}': parent is not in sysfs"),
            Self::TargetNotAdded(n) => write!(f, "sysfs link '{n}': target is not in sysfs"),
            Self::BadName(n) => write!(f, "kobject: bad name '{n}'"),
            Self::Duplicate(p) => write!(f, "sysfs: cannot create duplicate filename '{p}'"),
            Self::NotFound(p) => write!(f, "sysfs: '{p}' not found"),
            Self::AfterRelease(n, op) => write!(f, "kobject '{n}': {op} after release"),
            Self::Ref(n, e) => write!(f, "kobject '{n}': refcount_t: {e}"),
            Self::NoRelease(n) => write!(
                f,
                "kobject '{n}': does not have a release() function, it is broken and must be fixed"
            ),
        }
    }
}

/// State bits: `init` ran.
pub(crate) const INITIALIZED: u64 = 1 << 0;
/// State bits: `add` ran and `del` did not yet (the object holds a reference on its parent).
pub(crate) const ADDED: u64 = 1 << 1;
/// State bits: the release ran (or is running).
pub(crate) const RELEASED: u64 = 1 << 2;

/// The fields under the kobject's lock.
pub(crate) struct Inner {
    pub name: Option<String>,
    pub ktype: Option<&'static KobjType>,
    /// The parent, whose reference this object holds while [`ADDED`].
    pub parent: Option<KobjPtr>,
    /// The kset the object belongs to (its default parent).
    pub kset: Option<KobjPtr>,
    /// Its directory node in sysfs (Linux's `sd`): `None` when not shown (never added,
    /// deleted, or removed with its parent's directory).
    pub sd: Option<u64>,
    /// The pointer given to `add`, which the release gets back.
    pub this: Option<KobjPtr>,
}

/// The fields of a kobject that was never initialized.
const EMPTY_INNER: Inner = Inner {
    name: None,
    ktype: None,
    parent: None,
    kset: None,
    sd: None,
    this: None,
};

/// A kernel object: a reference count, a name, a type, a parent and a sysfs directory (Linux's
/// `struct kobject`), embedded in the structure it counts.
///
/// `const`-constructible, so a structure with static storage can embed one.
pub struct KObject {
    pub(crate) kref: Kref,
    pub(crate) state: AtomicU64,
    pub(crate) inner: Mutex<Inner>,
}

// `KObject` is `Send + Sync` through its fields: the pointers in `Inner` are `KobjPtr`s.

impl KObject {
    /// A kobject not yet initialized, with a count of 1 (the creator's reference).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            kref: Kref::new(),
            state: AtomicU64::new(0),
            inner: Mutex::new(EMPTY_INNER),
        }
    }

    /// A kobject not yet initialized, with a count of 1 (the creator's reference).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            kref: Kref::new(),
            state: AtomicU64::new(0),
            inner: Mutex::new(EMPTY_INNER),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    pub(crate) fn state(&self) -> u64 {
        self.state.load(Ordering::Acquire)
    }

    /// Sets the type (Linux's `kobject_init`). The count stays as it is (1 for a new object).
    pub fn init(&self, ktype: &'static KobjType) -> Result<(), KobjError> {
        let mut inner = self.lock();
        if self.state() & INITIALIZED != 0 {
            return Err(KobjError::AlreadyInitialized(name_of(&inner)));
        }
        inner.ktype = Some(ktype);
        self.state.fetch_or(INITIALIZED, Ordering::AcqRel);
        Ok(())
    }

    /// Makes `kset` the object's kset (set before `add`): the kset's directory is then the
    /// default parent, and [`Sysfs::kset_find_obj`](crate::Sysfs::kset_find_obj) finds it.
    pub fn set_kset(&self, kset: &'static KSet) {
        self.lock().kset = Some(KobjPtr::from(&kset.kobj));
    }

    /// The name given at `add` (`"(unnamed)"` before).
    pub fn name(&self) -> String {
        name_of(&self.lock())
    }

    /// Calls `f` with the name, without copying it.
    pub fn with_name<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        f(self.lock().name.as_deref().unwrap_or("(unnamed)"))
    }

    /// The type given at `init`.
    pub fn ktype(&self) -> Option<&'static KobjType> {
        self.lock().ktype
    }

    /// The current reference count (for reports and tests).
    pub fn refcount(&self) -> u64 {
        self.kref.read()
    }

    /// Is the object shown in sysfs (added, and its directory not removed)?
    pub fn in_sysfs(&self) -> bool {
        self.lock().sd.is_some()
    }

    /// Takes a reference (Linux's `kobject_get`; [`Sysfs::kobject_get`](crate::Sysfs::kobject_get)
    /// is the same call). A get on a released object, or one that would overflow the count, is
    /// refused and reported.
    pub fn get(&self) -> Result<(), KobjError> {
        let state = self.state();
        if state & RELEASED != 0 {
            return Err(KobjError::AfterRelease(self.name(), "get"));
        }
        if state & INITIALIZED == 0 {
            return Err(KobjError::NotInitialized(self.name()));
        }
        self.kref.get().map_err(|e| KobjError::Ref(self.name(), e))
    }

    /// The pointer given to `add` (the one the release gets back), if it was added.
    pub fn this_ptr(&self) -> Option<NonNull<KObject>> {
        self.lock().this.map(|p| p.0)
    }

    /// Has `init` run?
    pub fn is_initialized(&self) -> bool {
        self.state() & INITIALIZED != 0
    }

    /// Has the release run?
    pub fn is_released(&self) -> bool {
        self.state() & RELEASED != 0
    }
}

impl Default for KObject {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for KObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KObject({}, {:?})", self.name(), self.kref)
    }
}

pub(crate) fn name_of(inner: &Inner) -> String {
    String::from(inner.name.as_deref().unwrap_or("(unnamed)"))
}

/// A set of kobjects of one kind, itself a kobject with a directory (Linux's `struct kset`:
/// `/sys/kernel/slab` is the slab caches' kset, `/sys/module` the modules').
pub struct KSet {
    /// The kset's own kobject (its directory).
    pub kobj: KObject,
}

impl KSet {
    /// A kset not yet added.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            kobj: KObject::new(),
        }
    }

    /// A kset not yet added.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            kobj: KObject::new(),
        }
    }
}

impl Default for KSet {
    fn default() -> Self {
        Self::new()
    }
}

/// A kobject's address, kept by the tree, by children (their parent) and by members of a
/// kset. Dereferenced only while the object is known to be alive: see [`Sysfs`](crate::Sysfs)'s
/// invariants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KobjPtr(pub NonNull<KObject>);

// SAFETY: a `KobjPtr` is an address; the object it names is `Sync` (atomics and a lock), and
// every dereference happens under the invariants of `Sysfs` (object alive), on any CPU.
unsafe impl Send for KobjPtr {}
// SAFETY: as above.
unsafe impl Sync for KobjPtr {}

impl From<&KObject> for KobjPtr {
    fn from(k: &KObject) -> Self {
        Self(NonNull::from(k))
    }
}

impl KobjPtr {
    /// The object.
    ///
    /// # Safety
    /// The object must be alive for `'a`: listed in the tree (under the tree lock), or a
    /// reference on it is held.
    pub(crate) unsafe fn get<'a>(self) -> &'a KObject {
        // SAFETY: alive for 'a (caller contract); kobjects do not move once added.
        unsafe { self.0.as_ref() }
    }
}
