//! A property test: random sequences of `add`, `del`, `get`, `put` and reads on a few
//! kobjects with parents, checked after every step against a model of counts, parent
//! references, releases and what sysfs shows.
#![cfg(not(loom))]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use kobject::{Attribute, Errno, KObject, KobjError, KobjType, PageBuf, Sysfs, errno};
use proptest::prelude::*;

const N: usize = 4;

#[repr(C)]
struct Obj {
    kobj: KObject,
    releases: AtomicUsize,
}

unsafe fn release(k: NonNull<KObject>) {
    // SAFETY: every kobject of this type is the first field of a leaked `Obj` (repr(C)).
    unsafe { k.cast::<Obj>().as_ref() }
        .releases
        .fetch_add(1, SeqCst);
}

static ATTRS: [Attribute; 1] = [Attribute::ro("value", |_, _, out| {
    std::fmt::Write::write_str(out, "v\n").map_err(|_| Errno(errno::EIO))
})];
static TYPE: KobjType = KobjType {
    release: Some(release),
    attrs: &ATTRS,
    dynamic: None,
};

#[derive(Clone, Debug)]
enum Op {
    Add(usize, Option<usize>),
    Del(usize),
    Get(usize),
    Put(usize),
    Read(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..N, proptest::option::of(0..N)).prop_map(|(i, p)| Op::Add(i, p)),
        (0..N).prop_map(Op::Del),
        (0..N).prop_map(Op::Get),
        (0..N).prop_map(Op::Put),
        (0..N).prop_map(Op::Read),
    ]
}

#[derive(Clone, Debug, Default)]
struct M {
    count: u64,
    added: bool,
    visible: bool,
    parent: Option<usize>,
    released: bool,
}

struct Model {
    objs: [M; N],
}

impl Model {
    /// Hides `i`'s directory and everything shown below it.
    fn hide(&mut self, i: usize) {
        self.objs[i].visible = false;
        for c in 0..N {
            if self.objs[c].visible && self.objs[c].parent == Some(i) {
                self.hide(c);
            }
        }
    }

    fn del(&mut self, i: usize) {
        if !self.objs[i].added {
            return;
        }
        self.hide(i);
        self.objs[i].added = false;
        if let Some(p) = self.objs[i].parent.take() {
            // Refused (and reported) if a buggy owner let the parent be released already.
            let _ = self.put(p);
        }
    }

    /// `Err` if the put is refused (after release).
    fn put(&mut self, i: usize) -> Result<(), ()> {
        if self.objs[i].released {
            return Err(());
        }
        self.objs[i].count -= 1;
        if self.objs[i].count == 0 {
            self.del(i);
            self.objs[i].released = true;
        }
        Ok(())
    }

    fn path(&self, i: usize) -> String {
        match self.objs[i].parent {
            Some(p) => format!("{}/o{i}", self.path(p)),
            None => format!("/o{i}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn kobjects_follow_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let sysfs = Sysfs::new();
        let objs: Vec<&'static Obj> = (0..N)
            .map(|_| {
                let o: &'static Obj = Box::leak(Box::new(Obj {
                    kobj: KObject::new(),
                    releases: AtomicUsize::new(0),
                }));
                o.kobj.init(&TYPE).unwrap();
                o
            })
            .collect();
        let mut m = Model { objs: Default::default() };
        for o in &mut m.objs {
            o.count = 1;
        }
        for op in ops {
            match op {
                Op::Add(i, p) => {
                    let parent = p.map(|p| &objs[p].kobj);
                    // SAFETY: leaked objects never move or go away.
                    let r = unsafe { sysfs.kobject_add(NonNull::from(&objs[i].kobj), parent, &format!("o{i}")) };
                    let mi = &m.objs[i];
                    if mi.released {
                        prop_assert!(matches!(r, Err(KobjError::AfterRelease(..))), "{r:?}");
                    } else if mi.added {
                        prop_assert!(matches!(r, Err(KobjError::AlreadyAdded(_))), "{r:?}");
                    } else if p.is_some_and(|p| !m.objs[p].visible) {
                        prop_assert!(matches!(r, Err(KobjError::ParentNotAdded(_))), "{r:?}");
                    } else {
                        prop_assert!(r.is_ok(), "{r:?}");
                        m.objs[i].added = true;
                        m.objs[i].visible = true;
                        m.objs[i].parent = p;
                        if let Some(p) = p {
                            m.objs[p].count += 1;
                        }
                    }
                }
                Op::Del(i) => {
                    sysfs.kobject_del(&objs[i].kobj);
                    m.del(i);
                }
                Op::Get(i) => {
                    let r = sysfs.kobject_get(&objs[i].kobj);
                    if m.objs[i].released {
                        prop_assert!(matches!(r, Err(KobjError::AfterRelease(_, "get"))), "{r:?}");
                    } else {
                        prop_assert!(r.is_ok(), "{r:?}");
                        m.objs[i].count += 1;
                    }
                }
                Op::Put(i) => {
                    // SAFETY: leaked: the memory stays, so a misuse is reported.
                    let r = unsafe { sysfs.kobject_put(NonNull::from(&objs[i].kobj)) };
                    match m.put(i) {
                        Ok(()) => prop_assert!(r.is_ok(), "{r:?}"),
                        Err(()) => prop_assert!(
                            matches!(r, Err(KobjError::AfterRelease(_, "put"))),
                            "{r:?}"
                        ),
                    }
                }
                Op::Read(i) => {
                    let mut out = PageBuf::new();
                    let path = format!("{}/value", m.path(i));
                    let r = sysfs.read(&path, &mut out);
                    if m.objs[i].visible {
                        prop_assert_eq!(r, Ok(()));
                        prop_assert_eq!(out.as_str(), "v\n");
                    } else {
                        prop_assert_eq!(r, Err(Errno(errno::ENOENT)), "{}", path);
                    }
                }
            }
            for (i, o) in objs.iter().enumerate() {
                let mi = &m.objs[i];
                prop_assert_eq!(o.releases.load(SeqCst), usize::from(mi.released), "obj {}", i);
                prop_assert_eq!(o.kobj.refcount(), mi.count, "obj {}", i);
                prop_assert_eq!(o.kobj.in_sysfs(), mi.visible, "obj {}", i);
                let path = sysfs.path_of(&o.kobj);
                prop_assert_eq!(path, mi.visible.then(|| m.path(i)), "obj {}", i);
            }
        }
    }
}
