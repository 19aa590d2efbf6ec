//! `/sys/module/NAME/` (Linux's `mod_sysfs_setup`): the module's kobject in the `module`
//! kset, with `refcnt`, `initstate`, `taint`, `coresize`, `initsize`, and three
//! subdirectories: `holders/` (a link per module that uses it), `sections/` (a file per
//! loaded section with its address) and `parameters/` (a file per parameter with a mode).
//!
//! The four kobjects are embedded in the [`Module`]; their releases free nothing: the last
//! one completes `released`, which the unload waits for before freeing the module.

use core::fmt::Write;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use modload::params::ParamType;

use super::load::keep_string;
use super::{ModPtr, Module, ParamInfo, WhichKobj};
use crate::kobject::{
    Attribute, DynAttrs, Errno, KObject, KobjType, MODULE_KSET, PageBuf, errno, sysfs,
};

/// The module behind `k`, one of its kobjects of kind `which`.
fn module_of(k: &KObject, which: WhichKobj) -> &Module {
    // SAFETY: the attributes and releases of these types are only ever called on the
    // kobjects of a `Module` (this file adds them), which stays in memory while sysfs holds
    // a reference for a show or store, and until every kobject's release has run.
    unsafe { Module::from_kobj(NonNull::from(k), which) }
}

/// One kobject of the module released: the last completes `released`.
fn released(k: NonNull<KObject>, which: WhichKobj) {
    // SAFETY: the module stays in memory until `released` completes (the unload waits), and
    // this is one of its kobjects (see `module_of`).
    let m = unsafe { Module::from_kobj(k, which) };
    if m.kobjs_alive.fetch_sub(1, Ordering::AcqRel) == 1 {
        m.released.complete();
    }
}

/// # Safety
/// Called by the kobject layer once, after the last put of a module's kobject.
unsafe fn release_module(k: NonNull<KObject>) {
    released(k, WhichKobj::Module);
}
/// # Safety
/// As for `release_module`.
unsafe fn release_holders(k: NonNull<KObject>) {
    released(k, WhichKobj::Holders);
}
/// # Safety
/// As for `release_module`.
unsafe fn release_sections(k: NonNull<KObject>) {
    released(k, WhichKobj::Sections);
}
/// # Safety
/// As for `release_module`.
unsafe fn release_params(k: NonNull<KObject>) {
    released(k, WhichKobj::Params);
}

fn out(r: core::fmt::Result) -> Result<(), Errno> {
    r.map_err(|_| Errno(errno::EIO))
}

fn show_refcnt(k: &KObject, _: &Attribute, o: &mut PageBuf) -> Result<(), Errno> {
    out(writeln!(o, "{}", module_of(k, WhichKobj::Module).users()))
}

fn show_initstate(k: &KObject, _: &Attribute, o: &mut PageBuf) -> Result<(), Errno> {
    out(writeln!(
        o,
        "{}",
        module_of(k, WhichKobj::Module).state().name()
    ))
}

fn show_taint(k: &KObject, _: &Attribute, o: &mut PageBuf) -> Result<(), Errno> {
    out(writeln!(o, "{}", module_of(k, WhichKobj::Module).taints))
}

fn show_coresize(k: &KObject, _: &Attribute, o: &mut PageBuf) -> Result<(), Errno> {
    out(writeln!(o, "{}", module_of(k, WhichKobj::Module).core_size))
}

fn show_initsize(k: &KObject, _: &Attribute, o: &mut PageBuf) -> Result<(), Errno> {
    out(writeln!(o, "{}", module_of(k, WhichKobj::Module).init_size))
}

static MODULE_ATTRS: [Attribute; 5] = [
    Attribute::ro("coresize", show_coresize),
    Attribute::ro("initsize", show_initsize),
    Attribute::ro("initstate", show_initstate),
    Attribute::ro("refcnt", show_refcnt),
    Attribute::ro("taint", show_taint),
];

static MODULE_KTYPE: KobjType = KobjType {
    release: Some(release_module),
    attrs: &MODULE_ATTRS,
    dynamic: None,
};

static HOLDERS_KTYPE: KobjType = KobjType {
    release: Some(release_holders),
    attrs: &[],
    dynamic: None,
};

fn list_sections(k: &KObject, f: &mut dyn FnMut(&str, u16)) {
    for (name, _) in &module_of(k, WhichKobj::Sections).sections {
        f(name, 0o400);
    }
}

fn show_section(k: &KObject, name: &str, o: &mut PageBuf) -> Result<(), Errno> {
    let m = module_of(k, WhichKobj::Sections);
    let (_, addr) = m
        .sections
        .iter()
        .find(|s| s.0 == name)
        .ok_or(Errno(errno::ENOENT))?;
    out(writeln!(o, "{addr:#018x}"))
}

static SECTIONS_DYN: DynAttrs = DynAttrs {
    list: list_sections,
    show: show_section,
    store: None,
};

static SECTIONS_KTYPE: KobjType = KobjType {
    release: Some(release_sections),
    attrs: &[],
    dynamic: Some(&SECTIONS_DYN),
};

fn list_params(k: &KObject, f: &mut dyn FnMut(&str, u16)) {
    for p in module_of(k, WhichKobj::Params)
        .params
        .iter()
        .filter(|p| p.perm != 0)
    {
        f(&p.name, p.perm);
    }
}

/// The module behind a `parameters/` kobject, and its parameter `name` if shown in sysfs.
fn visible_param<'m>(k: &'m KObject, name: &str) -> Result<(&'m Module, &'m ParamInfo), Errno> {
    let m = module_of(k, WhichKobj::Params);
    let p = m
        .params
        .iter()
        .find(|p| p.name == name && p.perm != 0)
        .ok_or(Errno(errno::ENOENT))?;
    Ok((m, p))
}

fn show_param(k: &KObject, name: &str, o: &mut PageBuf) -> Result<(), Errno> {
    let (m, p) = visible_param(k, name)?;
    let a = p.addr;
    // SAFETY: (each read) the variable lies in the module's data region (checked by the
    // loader: inside a writable section, with room for its width), which is mapped
    // read-write until the module is freed, and the module is in memory while sysfs holds
    // the reference for this show. The module may write it meanwhile: a volatile read of an
    // aligned word sees an old or a new value, as Linux's param_get_* do.
    let r = unsafe {
        match p.kind {
            ParamType::Int => writeln!(o, "{}", core::ptr::read_volatile(a as *const i32)),
            ParamType::Uint => writeln!(o, "{}", core::ptr::read_volatile(a as *const u32)),
            ParamType::Long => writeln!(o, "{}", core::ptr::read_volatile(a as *const i64)),
            ParamType::Ulong => writeln!(o, "{}", core::ptr::read_volatile(a as *const u64)),
            ParamType::Bool => writeln!(
                o,
                "{}",
                if core::ptr::read_volatile(a as *const u8) != 0 {
                    'Y'
                } else {
                    'N'
                }
            ),
            ParamType::Charp => {
                let s = core::ptr::read_volatile(a as *const usize);
                if s == 0 {
                    writeln!(o, "(null)")
                } else {
                    show_c_string(m, s, o)
                }
            }
        }
    };
    out(r)
}

/// Writes the NUL-terminated string at `addr` (a `charp` parameter's value): the kernel's
/// own copy, or a string in the module's memory (its initial value), read up to a page.
fn show_c_string(m: &Module, addr: usize, o: &mut PageBuf) -> core::fmt::Result {
    let in_copies = m
        .strings
        .lock()
        .iter()
        .any(|s| (s.as_ptr() as usize..s.as_ptr() as usize + s.len()).contains(&addr));
    let mem = m.mem.lock();
    let region = mem.iter().flatten().find(|k| {
        let start = k.start().as_u64() as usize;
        (start..start + k.len()).contains(&addr)
    });
    let limit = match region {
        Some(k) => (k.start().as_u64() as usize + k.len() - addr).min(4096),
        None if in_copies => 4096,
        // A pointer the module set to something else: not followed.
        None => return writeln!(o, "{addr:#x}"),
    };
    let mut bytes = alloc::vec::Vec::new();
    for i in 0..limit {
        // SAFETY: `addr + i` is inside one of the module's mappings (held by `mem`'s lock)
        // or one of the kernel's copies (NUL-terminated, kept until the module is freed).
        let b = unsafe { core::ptr::read_volatile((addr + i) as *const u8) };
        if b == 0 {
            break;
        }
        bytes.push(b);
    }
    writeln!(o, "{}", alloc::string::String::from_utf8_lossy(&bytes))
}

fn store_param(k: &KObject, name: &str, data: &str) -> Result<usize, Errno> {
    let (m, p) = visible_param(k, name)?;
    if p.perm & 0o222 == 0 {
        return Err(Errno(errno::EACCES));
    }
    let value = p.kind.parse(Some(data)).map_err(|_| Errno(errno::EINVAL))?;
    let a = p.addr;
    if let modload::params::ParamValue::Charp(s) = value {
        let s = s.strip_suffix('\n').unwrap_or(s);
        let copy = keep_string(m, s).map_err(|_| Errno(errno::ENOMEM))?;
        // SAFETY: as in `show_param`: an aligned pointer-sized variable in the module's data.
        unsafe { core::ptr::write_volatile(a as *mut usize, copy) };
        return Ok(data.len());
    }
    let bytes = value.scalar_bytes().unwrap_or_default();
    // SAFETY: the variable (checked by the loader to lie in writable data, with room for its
    // width, which `bytes` has) is mapped read-write while the module is in memory, which the
    // reference sysfs holds for this store guarantees. A volatile write of an aligned word
    // of the variable's width, as Linux's param_set_*.
    unsafe {
        match bytes.len() {
            1 => core::ptr::write_volatile(a as *mut u8, bytes[0]),
            4 => core::ptr::write_volatile(
                a as *mut [u8; 4],
                bytes[..4].try_into().unwrap_or([0; 4]),
            ),
            _ => core::ptr::write_volatile(
                a as *mut [u8; 8],
                bytes[..8].try_into().unwrap_or([0; 8]),
            ),
        }
    }
    Ok(data.len())
}

static PARAMS_DYN: DynAttrs = DynAttrs {
    list: list_params,
    show: show_param,
    store: Some(store_param),
};

static PARAMS_KTYPE: KobjType = KobjType {
    release: Some(release_params),
    attrs: &[],
    dynamic: Some(&PARAMS_DYN),
};

/// Gives the module its `/sys/module/NAME` directory and links it into the `holders/` of the
/// modules it uses. On failure the kobjects are initialized (the unload's puts release them)
/// and nothing is left in sysfs.
pub(super) fn add(p: ModPtr) -> Result<(), Errno> {
    // SAFETY: the loading thread's module, listed as coming: in memory until it frees it.
    let m = unsafe { p.get() };
    let has_params = m.params.iter().any(|q| q.perm != 0);
    let kinds = [
        (&m.kobj, &MODULE_KTYPE, None),
        (&m.holders_kobj, &HOLDERS_KTYPE, Some("holders")),
        (&m.sections_kobj, &SECTIONS_KTYPE, Some("sections")),
        (&m.params_kobj, &PARAMS_KTYPE, Some("parameters")),
    ];
    let kinds = &kinds[..if has_params { 4 } else { 3 }];
    // Counted as each is initialized: the unload's puts release exactly those.
    m.kobjs_alive.store(0, Ordering::Release);
    for (k, t, _) in kinds {
        k.init(t).map_err(|_| Errno(errno::EINVAL))?;
        m.kobjs_alive.fetch_add(1, Ordering::AcqRel);
    }
    m.kobj.set_kset(&MODULE_KSET);
    let result = (|| {
        for (k, _, sub) in kinds {
            let parent = sub.map(|_| &m.kobj);
            // SAFETY: the kobject is a field of the heap `Module`, which stays in memory until
            // every kobject's release has run (the unload waits on `released`).
            unsafe { sysfs().kobject_add(NonNull::from(*k), parent, sub.unwrap_or(&m.name)) }
                .map_err(|e| {
                    log::error!("module {}: {e}", m.name);
                    Errno(errno::EEXIST)
                })?;
        }
        for &u in &m.uses {
            // SAFETY: this module's reference on `u` keeps it in memory.
            let um = unsafe { u.get() };
            sysfs()
                .create_link(Some(&um.holders_kobj), &m.kobj, &m.name)
                .map_err(|e| {
                    log::error!("module {}: {e}", m.name);
                    Errno(errno::EEXIST)
                })?;
        }
        Ok(())
    })();
    if result.is_err() {
        remove(p);
    }
    result
}

/// Takes the module out of sysfs: its links in other modules' `holders/`, then its
/// directory (references to its kobjects may remain: the unload waits for them).
pub(super) fn remove(p: ModPtr) {
    // SAFETY: the unloading (or failing) thread's module: in memory until it frees it.
    let m = unsafe { p.get() };
    for &u in &m.uses {
        // SAFETY: this module's reference on `u` keeps it in memory.
        let um = unsafe { u.get() };
        sysfs().remove_link_to(Some(&um.holders_kobj), &m.name, &m.kobj);
    }
    for k in [&m.params_kobj, &m.sections_kobj, &m.holders_kobj, &m.kobj] {
        sysfs().kobject_del(k);
    }
}
