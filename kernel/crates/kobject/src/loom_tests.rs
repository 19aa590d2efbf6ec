//! Loom models: every interleaving of concurrent puts, of a sysfs read racing the owner's
//! `del` and last `put`, and of a child's and its parent's last puts.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p sheaf-kobject --release loom`

use alloc::boxed::Box;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use loom::sync::Arc;
use loom::thread;

use crate::{Attribute, DynAttrs, Errno, KObject, KobjType, PageBuf, Sysfs, errno};

#[repr(C)]
struct Obj {
    kobj: KObject,
    releases: AtomicUsize,
    /// `show` calls in progress: a release while one runs is a use after free.
    in_show: AtomicUsize,
}

/// Counts the release, and checks that no `show` runs on the object meanwhile.
unsafe fn release(k: NonNull<KObject>) {
    // SAFETY: every kobject of this type is the first field of an `Obj` (repr(C)), freed only
    // after the model's threads are done.
    let o = unsafe { k.cast::<Obj>().as_ref() };
    assert_eq!(o.in_show.load(SeqCst), 0, "released under a reader");
    o.releases.fetch_add(1, SeqCst);
}

fn show(k: &KObject, _: &Attribute, out: &mut PageBuf) -> Result<(), Errno> {
    // SAFETY: as in `release`.
    let o = unsafe { NonNull::from(k).cast::<Obj>().as_ref() };
    o.in_show.fetch_add(1, SeqCst);
    assert_eq!(o.releases.load(SeqCst), 0, "show on a released object");
    core::fmt::Write::write_str(out, "1\n").map_err(|_| Errno(errno::EIO))?;
    loom::thread::yield_now();
    o.in_show.fetch_sub(1, SeqCst);
    Ok(())
}

static ATTRS: [Attribute; 1] = [Attribute::ro("x", show)];
/// `x` static, `d` a dynamic file (read through the same `show`).
static TYPE: KobjType = KobjType {
    release: Some(release),
    attrs: &ATTRS,
    dynamic: Some(&DynAttrs {
        list: |_, f| f("d", 0o444),
        show: |k, _, out| show(k, &ATTRS[0], out),
        store: None,
    }),
};

/// An `Obj` on the heap, added as `/name` (or under `parent`).
fn new_obj(sysfs: &Sysfs, parent: Option<&KObject>, name: &str) -> &'static Obj {
    let o: &'static Obj = Box::leak(Box::new(Obj {
        kobj: KObject::new(),
        releases: AtomicUsize::new(0),
        in_show: AtomicUsize::new(0),
    }));
    // SAFETY: leaked: never moves; freed by `free` only after every thread is done.
    unsafe { sysfs.kobject_init_and_add(NonNull::from(&o.kobj), &TYPE, parent, name) }.unwrap();
    o
}

fn free(o: &'static Obj) {
    // SAFETY: made by `Box::leak` in `new_obj`; the model's threads are joined.
    drop(unsafe { Box::from_raw(core::ptr::from_ref(o).cast_mut()) });
}

fn put(sysfs: &Sysfs, o: &Obj) {
    // SAFETY: the caller owns a reference.
    unsafe { sysfs.kobject_put(NonNull::from(&o.kobj)) }.unwrap();
}

#[test]
fn loom_concurrent_puts_release_once() {
    loom::model(|| {
        let sysfs = Arc::new(Sysfs::new());
        let o = new_obj(&sysfs, None, "o");
        sysfs.kobject_get(&o.kobj).unwrap();
        let s2 = sysfs.clone();
        let t = thread::spawn(move || put(&s2, o));
        put(&sysfs, o);
        t.join().unwrap();
        assert_eq!(o.releases.load(SeqCst), 1);
        assert!(!sysfs.is_dir("/o"));
        free(o);
    });
}

#[test]
fn loom_read_races_del_and_last_put() {
    read_races_last_put(true, "/o/x");
}

/// A dynamic file's `show` also runs on a live object (its `list` runs under the tree lock).
#[test]
fn loom_dynamic_read_races_del_and_last_put() {
    read_races_last_put(true, "/o/d");
}

/// The last put deletes the directory itself (after the count reached zero): a reader that
/// finds the directory in between must not revive the object.
#[test]
fn loom_read_races_last_put_without_del() {
    read_races_last_put(false, "/o/x");
}

fn read_races_last_put(del_first: bool, path: &'static str) {
    loom::model(move || {
        let sysfs = Arc::new(Sysfs::new());
        let o = new_obj(&sysfs, None, "o");
        let s2 = sysfs.clone();
        let reader = thread::spawn(move || {
            let mut out = PageBuf::new();
            match s2.read(path, &mut out) {
                Ok(()) => assert_eq!(out.as_str(), "1\n"),
                Err(e) => assert_eq!(e, Errno(errno::ENOENT)),
            }
        });
        if del_first {
            sysfs.kobject_del(&o.kobj);
        }
        put(&sysfs, o);
        reader.join().unwrap();
        assert_eq!(
            o.releases.load(SeqCst),
            1,
            "released once, by whoever put last"
        );
        free(o);
    });
}

#[test]
fn loom_child_and_parent_last_puts() {
    loom::model(|| {
        let sysfs = Arc::new(Sysfs::new());
        let parent = new_obj(&sysfs, None, "p");
        let child = new_obj(&sysfs, Some(&parent.kobj), "c");
        let s2 = sysfs.clone();
        let t = thread::spawn(move || put(&s2, child));
        put(&sysfs, parent);
        t.join().unwrap();
        assert_eq!(child.releases.load(SeqCst), 1);
        assert_eq!(parent.releases.load(SeqCst), 1);
        assert!(sysfs.read_dir("/").unwrap().is_empty());
        free(child);
        free(parent);
    });
}
