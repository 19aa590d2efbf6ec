//! kobjects and sysfs (Linux's `lib/kobject.c` and `fs/sysfs/`): reference-counted kernel
//! objects with a name, a parent and a release, and the tree of directories, attribute files
//! and symlinks that shows them under `/sys`. A `no_std` crate: the kernel keeps one
//! [`Sysfs`] for `/sys`; the host tests make their own and drive every race.
//!
//! # The pieces
//!
//! - [`Kref`]: a count with `refcount_t`'s rules: misuse (a put too many, a get on zero, an
//!   overflow) saturates the count, so the object leaks instead of being freed under a user.
//! - [`KObject`]: embedded in a bigger structure (a slab cache, a module). Its
//!   [`KobjType`] says what the last `put` runs ([`ReleaseFn`], which frees the structure
//!   it is part of) and which [`Attribute`] files its directory has, with [`DynAttrs`] for
//!   files whose names are known only at run time (a module's sections and parameters).
//! - [`KSet`]: a kobject grouping others (`/sys/kernel/slab`); its members' default parent.
//! - [`Sysfs`]: the tree, and the calls that move a kobject through its life:
//!
//! ```text
//!  KObject::new ──init──► initialized ──kobject_add──► in sysfs ──kobject_del──► hidden
//!      (count 1)                                          │                        │
//!                                                         └──── last kobject_put ◄─┘
//!                                                               (deletes if needed, then
//!                                                                the type's release)
//! ```
//!
//! Removing from sysfs (`del`) and releasing (the last `put`) are separate, as in Linux: a
//! directory disappears at once while the object lives on for whoever still holds a
//! reference. Reading a file takes a reference for the duration of its `show`, so a release
//! never runs under a reader (see [`Sysfs`]'s invariants).
//!
//! # Misuse
//!
//! Every misuse is returned as a [`KobjError`] naming the object (the kernel logs it) and
//! leaves memory intact: a second `init` or `add` is refused, a `get` or `put` after the
//! release is refused without touching the count (as long as the object's memory is still
//! there: a static, or a structure whose release keeps it), and a count misused while the
//! object is alive saturates.
//!
//! # Tests
//!
//! Unit tests (`src/tests.rs`), a property test against a model of counts, parents and
//! visibility (`tests/model.rs`), and loom models of concurrent get/put/release and of a
//! sysfs read racing the last put (`src/loom_tests.rs`):
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p sheaf-kobject --release loom`.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod kobject;
mod kref;
mod pagebuf;
mod sync;
mod sysfs;

pub use kobject::{
    Attribute, DynAttrs, DynListFn, DynShowFn, DynStoreFn, Errno, KObject, KSet, KobjError,
    KobjType, NAME_MAX, ReleaseFn, ShowFn, StoreFn, errno,
};
pub use kref::{Kref, REFCOUNT_MAX, REFCOUNT_SATURATED, RefError};
pub use pagebuf::{PAGE_SIZE, PageBuf};
pub use sysfs::{DirEntry, EntryRef, LinkTarget, Sysfs};

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
