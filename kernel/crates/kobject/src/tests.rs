//! Unit tests of kobjects and the sysfs tree.

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt::Write as _;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex as StdMutex;
use std::vec::Vec;

use super::*;

/// A structure embedding a kobject, as a cache or a module does.
#[repr(C)]
struct Obj {
    kobj: KObject,
    releases: AtomicUsize,
    value: AtomicUsize,
}

/// Counts the release and keeps the memory (so misuse after it can be checked).
unsafe fn count_release(k: NonNull<KObject>) {
    // SAFETY: every kobject of this type is the first field of a leaked `Obj` (repr(C)).
    let obj = unsafe { k.cast::<Obj>().as_ref() };
    obj.releases.fetch_add(1, SeqCst);
}

fn show_value(k: &KObject, _: &Attribute, out: &mut PageBuf) -> Result<(), Errno> {
    // SAFETY: as in `count_release`.
    let obj = unsafe { NonNull::from(k).cast::<Obj>().as_ref() };
    writeln!(out, "{}", obj.value.load(SeqCst)).unwrap();
    Ok(())
}

fn store_value(k: &KObject, _: &Attribute, s: &str) -> Result<usize, Errno> {
    // SAFETY: as in `count_release`.
    let obj = unsafe { NonNull::from(k).cast::<Obj>().as_ref() };
    let v = s.trim().parse().map_err(|_| Errno(errno::EINVAL))?;
    obj.value.store(v, SeqCst);
    Ok(s.len())
}

static ATTRS: [Attribute; 2] = [
    Attribute::rw("value", show_value, store_value),
    Attribute::ro("name", |k, _, out| {
        k.with_name(|n| writeln!(out, "{n}")).unwrap();
        Ok(())
    }),
];

static OBJ_TYPE: KobjType = KobjType {
    release: Some(count_release),
    attrs: &ATTRS,
    dynamic: None,
};

static NO_RELEASE: KobjType = KobjType {
    release: None,
    attrs: &[],
    dynamic: None,
};

fn obj() -> &'static Obj {
    Box::leak(Box::new(Obj {
        kobj: KObject::new(),
        releases: AtomicUsize::new(0),
        value: AtomicUsize::new(7),
    }))
}

fn added(sysfs: &Sysfs, parent: Option<&KObject>, name: &str) -> &'static Obj {
    let o = obj();
    // SAFETY: leaked: never moves or goes away.
    unsafe { sysfs.kobject_init_and_add(NonNull::from(&o.kobj), &OBJ_TYPE, parent, name) }.unwrap();
    o
}

fn put(sysfs: &Sysfs, o: &Obj) -> Result<(), KobjError> {
    // SAFETY: leaked objects stay in memory.
    unsafe { sysfs.kobject_put(NonNull::from(&o.kobj)) }
}

fn names(sysfs: &Sysfs, path: &str) -> Vec<String> {
    sysfs
        .read_dir(path)
        .unwrap()
        .iter()
        .map(|e| String::from(e.name()))
        .collect()
}

#[test]
fn release_runs_once_after_the_last_put() {
    let sysfs = Sysfs::new();
    let o = added(&sysfs, None, "a");
    sysfs.kobject_get(&o.kobj).unwrap();
    sysfs.kobject_get(&o.kobj).unwrap();
    put(&sysfs, o).unwrap();
    put(&sysfs, o).unwrap();
    assert_eq!(o.releases.load(SeqCst), 0);
    put(&sysfs, o).unwrap();
    assert_eq!(o.releases.load(SeqCst), 1);
    assert!(o.kobj.is_released());
    assert!(!sysfs.is_dir("/a"), "the last put deletes it from sysfs");
}

#[test]
fn a_put_too_many_is_reported_by_name_and_releases_nothing_again() {
    let sysfs = Sysfs::new();
    let o = added(&sysfs, None, "victim");
    put(&sysfs, o).unwrap();
    let e = put(&sysfs, o).unwrap_err();
    assert_eq!(e, KobjError::AfterRelease(String::from("victim"), "put"));
    assert!(std::format!("{e}").contains("victim"));
    let e = sysfs.kobject_get(&o.kobj).unwrap_err();
    assert_eq!(e, KobjError::AfterRelease(String::from("victim"), "get"));
    assert_eq!(o.releases.load(SeqCst), 1);
    assert_eq!(o.kobj.refcount(), 0, "the count was not touched");
}

#[test]
fn a_kobject_without_release_is_reported_and_leaked() {
    let sysfs = Sysfs::new();
    let o = obj();
    // SAFETY: leaked.
    unsafe { sysfs.kobject_init_and_add(NonNull::from(&o.kobj), &NO_RELEASE, None, "broken") }
        .unwrap();
    assert_eq!(
        put(&sysfs, o),
        Err(KobjError::NoRelease(String::from("broken")))
    );
}

#[test]
fn init_and_add_twice_are_refused() {
    let sysfs = Sysfs::new();
    let o = added(&sysfs, None, "x");
    assert!(matches!(
        o.kobj.init(&OBJ_TYPE),
        Err(KobjError::AlreadyInitialized(_))
    ));
    // SAFETY: leaked.
    let again = unsafe { sysfs.kobject_add(NonNull::from(&o.kobj), None, "y") };
    assert_eq!(again, Err(KobjError::AlreadyAdded(String::from("x"))));
    let other = obj();
    other.kobj.init(&OBJ_TYPE).unwrap();
    // SAFETY: leaked.
    let dup = unsafe { sysfs.kobject_add(NonNull::from(&other.kobj), None, "x") };
    assert_eq!(dup, Err(KobjError::Duplicate(String::from("/x"))));
    assert!(!other.kobj.in_sysfs());
    for bad in ["", "a/b", ".", ".."] {
        // SAFETY: leaked.
        let r = unsafe { sysfs.kobject_add(NonNull::from(&other.kobj), None, bad) };
        assert!(matches!(r, Err(KobjError::BadName(_))), "{bad:?}");
    }
}

#[test]
fn a_child_holds_its_parent() {
    let sysfs = Sysfs::new();
    let parent = added(&sysfs, None, "p");
    let child = added(&sysfs, Some(&parent.kobj), "c");
    assert_eq!(parent.kobj.refcount(), 2);
    assert_eq!(sysfs.path_of(&child.kobj).as_deref(), Some("/p/c"));
    // The owner lets go of the parent: the child still holds it.
    put(&sysfs, parent).unwrap();
    assert_eq!(parent.releases.load(SeqCst), 0);
    assert!(sysfs.is_dir("/p/c"));
    // The child goes: it drops the parent, which is released.
    put(&sysfs, child).unwrap();
    assert_eq!(child.releases.load(SeqCst), 1);
    assert_eq!(parent.releases.load(SeqCst), 1);
    assert!(!sysfs.is_dir("/p"));
}

#[test]
fn del_hides_the_directory_while_a_reference_holds_the_object() {
    let sysfs = Sysfs::new();
    let o = added(&sysfs, None, "shown");
    let mut s = PageBuf::new();
    sysfs.read("/shown/value", &mut s).unwrap();
    assert_eq!(s.as_str(), "7\n");
    sysfs.kobject_get(&o.kobj).unwrap();
    sysfs.kobject_del(&o.kobj);
    assert!(!names(&sysfs, "/").contains(&String::from("shown")));
    assert_eq!(
        sysfs.read("/shown/value", &mut s),
        Err(Errno(errno::ENOENT))
    );
    put(&sysfs, o).unwrap();
    assert_eq!(o.releases.load(SeqCst), 0, "a reference is still held");
    put(&sysfs, o).unwrap();
    assert_eq!(o.releases.load(SeqCst), 1);
}

#[test]
fn del_of_a_parent_removes_the_subtree_and_children_still_drop_it() {
    let sysfs = Sysfs::new();
    let parent = added(&sysfs, None, "p");
    let child = added(&sysfs, Some(&parent.kobj), "c");
    sysfs.kobject_del(&parent.kobj);
    assert!(!sysfs.is_dir("/p/c"));
    assert!(!child.kobj.in_sysfs());
    assert_eq!(
        parent.kobj.refcount(),
        2,
        "the child still holds the parent"
    );
    put(&sysfs, parent).unwrap();
    assert_eq!(parent.releases.load(SeqCst), 0);
    put(&sysfs, child).unwrap();
    assert_eq!(parent.releases.load(SeqCst), 1);
}

#[test]
fn attributes_read_and_write() {
    let sysfs = Sysfs::new();
    let o = added(&sysfs, None, "obj");
    assert_eq!(sysfs.write("/obj/value", "42\n"), Ok(3));
    let mut s = PageBuf::new();
    sysfs.read("/obj/value", &mut s).unwrap();
    assert_eq!(s.as_str(), "42\n");
    assert_eq!(sysfs.write("/obj/value", "x"), Err(Errno(errno::EINVAL)));
    assert_eq!(sysfs.write("/obj/name", "y"), Err(Errno(errno::EACCES)));
    assert_eq!(sysfs.read("/obj/none", &mut s), Err(Errno(errno::ENOENT)));
    assert_eq!(sysfs.read("/obj", &mut s), Err(Errno(errno::EISDIR)));
    assert_eq!(
        sysfs.read("/obj/value/x", &mut s),
        Err(Errno(errno::ENOTDIR))
    );
    assert_eq!(
        sysfs.read_dir("/obj").unwrap(),
        [
            DirEntry::File(String::from("name"), 0o444),
            DirEntry::File(String::from("value"), 0o644)
        ]
    );
    assert_eq!(
        o.kobj.refcount(),
        1,
        "reads and writes give back their reference"
    );
}

#[test]
fn a_long_show_is_cut_at_a_page() {
    static LONG: [Attribute; 1] = [Attribute::ro("long", |_, _, out| {
        for _ in 0..PAGE_SIZE + 100 {
            out.write_char('x').unwrap();
        }
        Ok(())
    })];
    static LONG_TYPE: KobjType = KobjType {
        release: Some(count_release),
        attrs: &LONG,
        dynamic: None,
    };
    let sysfs = Sysfs::new();
    let o = obj();
    // SAFETY: leaked.
    unsafe { sysfs.kobject_init_and_add(NonNull::from(&o.kobj), &LONG_TYPE, None, "l") }.unwrap();
    let mut s = PageBuf::new();
    sysfs.read("/l/long", &mut s).unwrap();
    assert_eq!(s.as_str().len(), PAGE_SIZE);
    assert!(s.truncated());
}

#[test]
fn links_point_at_directories_and_dangle_when_they_go() {
    let sysfs = Sysfs::new();
    let o = added(&sysfs, None, ":0000064");
    sysfs.create_link(None, &o.kobj, "kmalloc-64").unwrap();
    assert_eq!(sysfs.read_link("/kmalloc-64").as_deref(), Ok("/:0000064"));
    let mut s = PageBuf::new();
    sysfs.read("/kmalloc-64/value", &mut s).unwrap();
    assert_eq!(s.as_str(), "7\n");
    assert_eq!(
        sysfs.create_link(None, &o.kobj, "kmalloc-64"),
        Err(KobjError::Duplicate(String::from("/kmalloc-64")))
    );
    sysfs.kobject_del(&o.kobj);
    assert_eq!(
        sysfs.read_dir("/").unwrap(),
        [DirEntry::Link(String::from("kmalloc-64"), None)]
    );
    assert_eq!(
        sysfs.read("/kmalloc-64/value", &mut s),
        Err(Errno(errno::ENOENT))
    );
    sysfs.remove_link(None, "kmalloc-64").unwrap();
    assert!(sysfs.read_dir("/").unwrap().is_empty());
    assert!(matches!(
        sysfs.remove_link(None, "kmalloc-64"),
        Err(KobjError::NotFound(_))
    ));
}

#[test]
fn kset_members_default_to_its_directory() {
    static KERNEL: KSet = KSet::new();
    static SLAB: KSet = KSet::new();
    let sysfs = Sysfs::new();
    // SAFETY: statics.
    unsafe { sysfs.kset_register(&KERNEL, None, "kernel") }.unwrap();
    // SAFETY: statics.
    unsafe { sysfs.kset_register(&SLAB, Some(&KERNEL.kobj), "slab") }.unwrap();
    let o = obj();
    o.kobj.init(&OBJ_TYPE).unwrap();
    o.kobj.set_kset(&SLAB);
    // SAFETY: leaked.
    unsafe { sysfs.kobject_add(NonNull::from(&o.kobj), None, "cache") }.unwrap();
    assert_eq!(
        sysfs.path_of(&o.kobj).as_deref(),
        Some("/kernel/slab/cache")
    );
    let found = sysfs.kset_find_obj(&SLAB, "cache").unwrap();
    assert_eq!(found, NonNull::from(&o.kobj));
    assert_eq!(o.kobj.refcount(), 2, "find took a reference");
    // SAFETY: the reference find took.
    unsafe { sysfs.kobject_put(found) }.unwrap();
    assert!(sysfs.kset_find_obj(&SLAB, "none").is_none());
}

#[test]
fn internal_misuse_goes_to_the_reporter() {
    static REPORTS: StdMutex<Vec<String>> = StdMutex::new(Vec::new());
    let sysfs = Sysfs::with_reporter(|e| REPORTS.lock().unwrap().push(std::format!("{e}")));
    let parent = added(&sysfs, None, "parent");
    let child = added(&sysfs, Some(&parent.kobj), "child");
    // A buggy owner drops the parent's count behind the child's back.
    put(&sysfs, parent).unwrap();
    assert_eq!(parent.releases.load(SeqCst), 0);
    put(&sysfs, parent).unwrap();
    assert_eq!(parent.releases.load(SeqCst), 1);
    // The child's del puts the parent once more: reported, not a second release.
    put(&sysfs, child).unwrap();
    assert_eq!(parent.releases.load(SeqCst), 1);
    let reports = REPORTS.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("'parent'"), "{reports:?}");
}

#[test]
fn release_runs_once_when_puts_race_on_threads() {
    for _ in 0..200 {
        let sysfs = std::sync::Arc::new(Sysfs::new());
        let o = added(&sysfs, None, "raced");
        for _ in 0..3 {
            sysfs.kobject_get(&o.kobj).unwrap();
        }
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let sysfs = sysfs.clone();
                std::thread::spawn(move || put(&sysfs, o).unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(o.releases.load(SeqCst), 1);
    }
}

/// What `for_each_entry` shows, as `read_dir` would (link targets as absolute paths).
fn entries(sysfs: &Sysfs, path: &str) -> Vec<DirEntry> {
    let mut out = Vec::new();
    sysfs
        .for_each_entry(path, |e| {
            out.push(match e {
                EntryRef::Dir(n) => DirEntry::Dir(String::from(n)),
                EntryRef::File(n, mode) => DirEntry::File(String::from(n), mode),
                EntryRef::Link(n, t) => {
                    DirEntry::Link(String::from(n), t.map(|t| std::format!("{t}")))
                }
            })
        })
        .unwrap();
    out
}

#[test]
fn for_each_entry_lists_what_read_dir_does_in_the_same_order() {
    let sysfs = Sysfs::new();
    let top = added(&sysfs, None, "top");
    // Children named around the attributes (`name`, `value`), so the merge is exercised.
    for name in ["a", "o", "z", "nb"] {
        added(&sysfs, Some(&top.kobj), name);
    }
    let far = added(&sysfs, None, "far");
    let near = sysfs.read_dir("/top").unwrap().len();
    sysfs
        .create_link(Some(&top.kobj), &far.kobj, "to-far")
        .unwrap();
    let a = added(&sysfs, Some(&top.kobj), "w");
    sysfs.create_link(Some(&top.kobj), &a.kobj, "to-w").unwrap();
    assert_eq!(sysfs.read_dir("/top").unwrap().len(), near + 3);
    assert_eq!(entries(&sysfs, "/top"), sysfs.read_dir("/top").unwrap());
    assert_eq!(entries(&sysfs, "/"), sysfs.read_dir("/").unwrap());
    let mut same_dir = Vec::new();
    sysfs
        .for_each_entry("/top", |e| {
            if let EntryRef::Link(n, Some(t)) = e {
                same_dir.push((String::from(n), t.name_in_same_dir().map(String::from)));
            }
        })
        .unwrap();
    assert_eq!(
        same_dir,
        [
            (String::from("to-far"), None),
            (String::from("to-w"), Some(String::from("w")))
        ]
    );
    assert_eq!(
        sysfs.for_each_entry("/top/value", |_| {}),
        Err(Errno(errno::ENOTDIR))
    );
}

/// A structure whose files are named at run time, as a module's `parameters/` are.
#[repr(C)]
struct DynObj {
    kobj: KObject,
    releases: AtomicUsize,
    /// `show` calls in progress: a release while one runs is a use after free.
    in_show: AtomicUsize,
    /// The count the last dynamic `show` saw.
    seen_refs: AtomicUsize,
    /// The files: name, mode, contents.
    files: StdMutex<Vec<(String, u16, String)>>,
}

fn dyn_obj(k: &KObject) -> &DynObj {
    // SAFETY: every kobject of the dynamic types is the first field of a leaked `DynObj`
    // (repr(C)).
    unsafe { NonNull::from(k).cast::<DynObj>().as_ref() }
}

/// Counts the release, and checks that no `show` runs on the object meanwhile.
unsafe fn dyn_release(k: NonNull<KObject>) {
    // SAFETY: as in `dyn_obj`; leaked, so the memory stays.
    let o = unsafe { k.cast::<DynObj>().as_ref() };
    assert_eq!(o.in_show.load(SeqCst), 0, "released under a reader");
    o.releases.fetch_add(1, SeqCst);
}

fn dyn_list(k: &KObject, f: &mut dyn FnMut(&str, u16)) {
    for (name, mode, _) in dyn_obj(k).files.lock().unwrap().iter() {
        f(name, *mode);
    }
}

fn dyn_show(k: &KObject, name: &str, out: &mut PageBuf) -> Result<(), Errno> {
    let o = dyn_obj(k);
    o.in_show.fetch_add(1, SeqCst);
    assert_eq!(o.releases.load(SeqCst), 0, "show on a released object");
    o.seen_refs.store(k.refcount() as usize, SeqCst);
    let result = match o.files.lock().unwrap().iter().find(|f| f.0 == name) {
        Some((_, _, text)) => {
            writeln!(out, "{text}").unwrap();
            Ok(())
        }
        None => Err(Errno(errno::ENOENT)),
    };
    std::thread::yield_now();
    o.in_show.fetch_sub(1, SeqCst);
    result
}

fn dyn_store(k: &KObject, name: &str, s: &str) -> Result<usize, Errno> {
    let mut files = dyn_obj(k).files.lock().unwrap();
    let file = files.iter_mut().find(|f| f.0 == name);
    file.ok_or(Errno(errno::ENOENT))?.2 = String::from(s.trim());
    Ok(s.len())
}

static DYN: DynAttrs = DynAttrs {
    list: dyn_list,
    show: dyn_show,
    store: Some(dyn_store),
};

static DYN_STATIC: [Attribute; 1] = [Attribute::ro("shadowed", |_, _, out| {
    writeln!(out, "static").unwrap();
    Ok(())
})];

static DYN_TYPE: KobjType = KobjType {
    release: Some(dyn_release),
    attrs: &DYN_STATIC,
    dynamic: Some(&DYN),
};

/// Read-only dynamic files, as a module's `sections/`.
static DYN_RO_TYPE: KobjType = KobjType {
    release: Some(dyn_release),
    attrs: &[],
    dynamic: Some(&DynAttrs {
        list: dyn_list,
        show: dyn_show,
        store: None,
    }),
};

fn added_dyn(
    sysfs: &Sysfs,
    ktype: &'static KobjType,
    name: &str,
    files: &[(&str, u16, &str)],
) -> &'static DynObj {
    let o: &'static DynObj = Box::leak(Box::new(DynObj {
        kobj: KObject::new(),
        releases: AtomicUsize::new(0),
        in_show: AtomicUsize::new(0),
        seen_refs: AtomicUsize::new(0),
        files: StdMutex::new(
            files
                .iter()
                .map(|&(n, m, t)| (String::from(n), m, String::from(t)))
                .collect(),
        ),
    }));
    // SAFETY: leaked: never moves or goes away.
    unsafe { sysfs.kobject_init_and_add(NonNull::from(&o.kobj), ktype, None, name) }.unwrap();
    o
}

fn put_kobj(sysfs: &Sysfs, k: &KObject) -> Result<(), KobjError> {
    // SAFETY: leaked objects stay in memory.
    unsafe { sysfs.kobject_put(NonNull::from(k)) }
}

fn read_str(sysfs: &Sysfs, path: &str) -> Result<String, Errno> {
    let mut s = PageBuf::new();
    sysfs.read(path, &mut s)?;
    Ok(String::from(s.as_str()))
}

/// The files of `DYN_TYPE` objects in the tests: one of each mode, one hidden by a static
/// attribute, one by a child directory, names that cannot be file names, and a repeat.
const PARAMS: [(&str, u16, &str); 10] = [
    ("rw", 0o644, "1"),
    ("ro", 0o444, "2"),
    ("wo", 0o200, "3"),
    ("shadowed", 0o644, "dynamic"),
    ("c", 0o444, "hidden by the child"),
    ("a", 0o444, "first"),
    ("", 0o444, "empty"),
    ("x/y", 0o444, "slash"),
    ("..", 0o444, "dots"),
    ("a", 0o644, "repeated"),
];

#[test]
fn dynamic_files_are_listed_read_and_written() {
    let sysfs = Sysfs::new();
    let o = added_dyn(&sysfs, &DYN_TYPE, "m", &PARAMS);
    let child = added(&sysfs, Some(&o.kobj), "c");
    let file = |n: &str, m| DirEntry::File(String::from(n), m);
    assert_eq!(
        sysfs.read_dir("/m").unwrap(),
        [
            file("a", 0o444),
            DirEntry::Dir(String::from("c")),
            file("ro", 0o444),
            file("rw", 0o644),
            file("shadowed", 0o444),
            file("wo", 0o200),
        ]
    );
    assert_eq!(entries(&sysfs, "/m"), sysfs.read_dir("/m").unwrap());
    assert_eq!(read_str(&sysfs, "/m/a").as_deref(), Ok("first\n"));
    assert_eq!(read_str(&sysfs, "/m/ro").as_deref(), Ok("2\n"));
    assert_eq!(read_str(&sysfs, "/m/rw").as_deref(), Ok("1\n"));
    assert_eq!(sysfs.write("/m/rw", "55\n"), Ok(3));
    assert_eq!(read_str(&sysfs, "/m/rw/").as_deref(), Ok("55\n"));
    assert_eq!(sysfs.write("/m/ro", "9"), Err(Errno(errno::EACCES)));
    assert_eq!(read_str(&sysfs, "/m/wo"), Err(Errno(errno::EACCES)));
    assert_eq!(sysfs.write("/m/wo", "4"), Ok(1));
    assert_eq!(o.files.lock().unwrap()[2].2, "4");
    assert_eq!(read_str(&sysfs, "/m/none"), Err(Errno(errno::ENOENT)));
    assert_eq!(sysfs.write("/m/none", "1"), Err(Errno(errno::ENOENT)));
    for bad in ["/m/..", "/m/x/y"] {
        assert_eq!(read_str(&sysfs, bad), Err(Errno(errno::ENOENT)), "{bad}");
    }
    // The static attribute and the child win over the dynamic files of their names.
    assert_eq!(read_str(&sysfs, "/m/shadowed").as_deref(), Ok("static\n"));
    assert_eq!(sysfs.write("/m/shadowed", "x"), Err(Errno(errno::EACCES)));
    assert!(sysfs.is_dir("/m/c") && !sysfs.is_file("/m/c"));
    assert_eq!(read_str(&sysfs, "/m/c/value").as_deref(), Ok("7\n"));
    assert!(sysfs.is_file("/m/rw"));
    assert_eq!(read_str(&sysfs, "/m/rw/x"), Err(Errno(errno::ENOTDIR)));
    assert_eq!(sysfs.read_dir("/m/ro"), Err(Errno(errno::ENOTDIR)));
    let mut relative = PageBuf::new();
    sysfs.read_at(Some(&o.kobj), "ro", &mut relative).unwrap();
    assert_eq!(relative.as_str(), "2\n");
    assert_eq!(sysfs.write_at(Some(&o.kobj), "rw", "6"), Ok(1));
    let mut dump = String::new();
    sysfs.dump("/m", &mut dump).unwrap();
    assert!(
        dump.contains("/m/rw 644\n") && dump.contains("/m/wo 200\n"),
        "{dump}"
    );
    assert_eq!(
        o.kobj.refcount(),
        2,
        "reads and writes give back their reference (the child holds one)"
    );
    put(&sysfs, child).unwrap();
    put_kobj(&sysfs, &o.kobj).unwrap();
    assert_eq!(o.releases.load(SeqCst), 1);
}

#[test]
fn dynamic_files_follow_what_list_gives_now() {
    let sysfs = Sysfs::new();
    let o = added_dyn(
        &sysfs,
        &DYN_RO_TYPE,
        "sections",
        &[(".text", 0o444, "0x1000")],
    );
    o.files.lock().unwrap().extend(
        [(".bss", 0o444, "0x3000"), (".data", 0o644, "0x2000")]
            .map(|(n, m, t)| (String::from(n), m, String::from(t))),
    );
    assert_eq!(names(&sysfs, "/sections"), [".bss", ".data", ".text"]);
    assert_eq!(
        read_str(&sysfs, "/sections/.data").as_deref(),
        Ok("0x2000\n")
    );
    // A writable mode, but the type has no store.
    assert_eq!(
        sysfs.write("/sections/.data", "0"),
        Err(Errno(errno::EACCES))
    );
    o.files.lock().unwrap().remove(0);
    assert_eq!(
        read_str(&sysfs, "/sections/.text"),
        Err(Errno(errno::ENOENT))
    );
    assert!(!sysfs.is_file("/sections/.text"));
    assert_eq!(
        entries(&sysfs, "/sections"),
        sysfs.read_dir("/sections").unwrap()
    );
    put_kobj(&sysfs, &o.kobj).unwrap();
    assert_eq!(o.releases.load(SeqCst), 1);
}

#[test]
fn a_dynamic_show_holds_a_reference() {
    let sysfs = Sysfs::new();
    let o = added_dyn(&sysfs, &DYN_TYPE, "m", &PARAMS);
    read_str(&sysfs, "/m/ro").unwrap();
    assert_eq!(o.seen_refs.load(SeqCst), 2, "the owner's and the reader's");
    assert_eq!(o.kobj.refcount(), 1);
    put_kobj(&sysfs, &o.kobj).unwrap();
}

#[test]
fn a_dynamic_read_racing_del_and_the_last_put_runs_on_a_live_object() {
    for _ in 0..200 {
        let sysfs = std::sync::Arc::new(Sysfs::new());
        let o = added_dyn(&sysfs, &DYN_TYPE, "m", &PARAMS);
        let reader = {
            let sysfs = sysfs.clone();
            std::thread::spawn(move || match read_str(&sysfs, "/m/rw") {
                Ok(s) => assert_eq!(s, "1\n"),
                Err(e) => assert_eq!(e, Errno(errno::ENOENT)),
            })
        };
        sysfs.kobject_del(&o.kobj);
        put_kobj(&sysfs, &o.kobj).unwrap();
        reader.join().unwrap();
        assert_eq!(
            o.releases.load(SeqCst),
            1,
            "released once, by whoever put last"
        );
    }
}
