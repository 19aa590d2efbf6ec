//! On-target tests of kobjects and `/sys`: releases from other CPUs, misuse reports, and a
//! deleted kobject that a reference keeps alive.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::kobject::{
    Attribute, DirEntry, Errno, KERNEL_KSET, KObject, KobjError, KobjType, PageBuf, errno, sysfs,
};

/// A heap structure embedding a kobject, as a cache or a module does.
#[repr(C)]
struct Thing {
    kobj: KObject,
    value: usize,
}

static RELEASES: AtomicUsize = AtomicUsize::new(0);
/// The CPU the last release ran on.
static RELEASED_ON: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Frees the `Thing` (Linux's pattern: the release frees the containing structure).
///
/// # Safety
/// `k` is the kobject of a `Thing` made by `thing()` (first field, `repr(C)`), released once.
unsafe fn release_thing(k: NonNull<KObject>) {
    RELEASED_ON.store(crate::cpu::current_id(), Ordering::Relaxed);
    RELEASES.fetch_add(1, Ordering::AcqRel);
    // SAFETY: made by `Box::into_raw` in `thing`; the release owns it (caller contract).
    drop(unsafe { Box::from_raw(k.cast::<Thing>().as_ptr()) });
}

fn show_value(k: &KObject, _: &Attribute, out: &mut PageBuf) -> Result<(), Errno> {
    // SAFETY: the attributes of `THING` are only read on kobjects of `THING`, which are the
    // first field of a live `Thing` while sysfs holds a reference for the read.
    let t = unsafe { NonNull::from(k).cast::<Thing>().as_ref() };
    writeln!(out, "{}", t.value).map_err(|_| Errno(errno::EIO))
}

static THING_ATTRS: [Attribute; 1] = [Attribute::ro("value", show_value)];
static THING: KobjType = KobjType {
    release: Some(release_thing),
    attrs: &THING_ATTRS,
    dynamic: None,
};

/// A new `Thing` with its kobject added as `/sys/kernel/NAME`.
fn thing(name: &str, value: usize) -> NonNull<KObject> {
    let t = Box::into_raw(Box::new(Thing {
        kobj: KObject::new(),
        value,
    }));
    // SAFETY: just allocated; the kobject's pointer is projected from the owning one, so the
    // release can step back to the whole `Thing` and free it.
    let kobj = unsafe { NonNull::new_unchecked(&raw mut (*t).kobj) };
    // SAFETY: a heap object that stays where it is until its release.
    unsafe { sysfs().kobject_init_and_add(kobj, &THING, Some(&KERNEL_KSET.kobj), name) }
        .expect("kobject_add");
    kobj
}

#[crate::ktest]
fn kobject_release_runs_once_after_the_last_put_from_any_cpu() {
    let cpus: Vec<usize> = crate::cpu::online().map(|c| c.id).collect();
    for round in 0..20 {
        let before = RELEASES.load(Ordering::Acquire);
        let k = thing("ktest-released", round);
        // One reference per CPU; the creator's is dropped here, before the threads start.
        for _ in &cpus {
            // SAFETY: the creator's reference keeps it alive.
            sysfs().kobject_get(unsafe { k.as_ref() }).expect("get");
        }
        // SAFETY: the creator's own reference.
        unsafe { sysfs().kobject_put(k) }.expect("put");
        /// The address, sent to another CPU.
        struct Ptr(NonNull<KObject>);
        // SAFETY: a kobject is used from any CPU (atomics and a lock).
        unsafe impl Send for Ptr {}
        let threads: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                let p = Ptr(k);
                crate::sched::spawn_on(cpu, "ktest-kput", move || {
                    let p = p;
                    // SAFETY: this thread owns one of the references taken above.
                    unsafe { sysfs().kobject_put(p.0) }
                })
                .expect("thread")
            })
            .collect();
        for t in threads {
            assert_eq!(t.join(), Ok(()));
        }
        assert_eq!(
            RELEASES.load(Ordering::Acquire),
            before + 1,
            "round {round}"
        );
        assert!(cpus.contains(&RELEASED_ON.load(Ordering::Relaxed)));
        assert!(!sysfs().is_dir("/kernel/ktest-released"));
    }
}

#[crate::ktest]
fn kobject_put_too_many_is_reported_and_does_not_release_again() {
    static COUNTED: AtomicUsize = AtomicUsize::new(0);
    /// Counts; the object is a static, so its memory stays for the misuse below.
    ///
    /// # Safety
    /// None needed: it only counts.
    unsafe fn count(_: NonNull<KObject>) {
        COUNTED.fetch_add(1, Ordering::AcqRel);
    }
    static KT: KobjType = KobjType {
        release: Some(count),
        attrs: &[],
        dynamic: None,
    };
    static OBJ: KObject = KObject::new();
    // SAFETY: a static never moves.
    unsafe {
        sysfs().kobject_init_and_add(
            NonNull::from(&OBJ),
            &KT,
            Some(&KERNEL_KSET.kobj),
            "ktest-twice",
        )
    }
    .expect("add");
    // SAFETY: a static: in memory whatever its count.
    let first = unsafe { sysfs().kobject_put(NonNull::from(&OBJ)) };
    assert_eq!(first, Ok(()));
    assert_eq!(COUNTED.load(Ordering::Acquire), 1);
    // SAFETY: as above.
    let again = unsafe { sysfs().kobject_put(NonNull::from(&OBJ)) };
    assert_eq!(
        again,
        Err(KobjError::AfterRelease(String::from("ktest-twice"), "put"))
    );
    assert_eq!(
        sysfs().kobject_get(&OBJ),
        Err(KobjError::AfterRelease(String::from("ktest-twice"), "get"))
    );
    assert_eq!(COUNTED.load(Ordering::Acquire), 1, "released once");
}

#[crate::ktest]
fn sysfs_shows_a_new_kobject_and_hides_a_deleted_one_while_a_reference_holds_it() {
    let before = RELEASES.load(Ordering::Acquire);
    let k = thing("ktest-shown", 4242);
    let listed = |name: &str| {
        sysfs()
            .read_dir("/kernel")
            .expect("/sys/kernel")
            .iter()
            .any(|e| *e == DirEntry::Dir(String::from(name)))
    };
    assert!(listed("ktest-shown"));
    assert_eq!(
        sysfs().read_dir("/kernel/ktest-shown"),
        Ok(alloc::vec![DirEntry::File(String::from("value"), 0o444)])
    );
    let mut out = PageBuf::new();
    sysfs()
        .read("/kernel/ktest-shown/value", &mut out)
        .expect("read");
    assert_eq!(out.as_str(), "4242\n");
    // A second holder, then the owner deletes it: gone from /sys, alive for the holder.
    // SAFETY: the creator's reference keeps it alive.
    let kobj = unsafe { k.as_ref() };
    sysfs().kobject_get(kobj).expect("get");
    sysfs().kobject_del(kobj);
    assert!(!listed("ktest-shown"));
    assert_eq!(
        sysfs().read("/kernel/ktest-shown/value", &mut out),
        Err(Errno(errno::ENOENT))
    );
    // SAFETY: the creator's reference.
    unsafe { sysfs().kobject_put(k) }.expect("put");
    assert_eq!(RELEASES.load(Ordering::Acquire), before, "still referenced");
    // SAFETY: the second holder's reference, the last one.
    unsafe { sysfs().kobject_put(k) }.expect("put");
    assert_eq!(RELEASES.load(Ordering::Acquire), before + 1);
}
