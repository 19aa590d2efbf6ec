//! Loading a module (Linux's `load_module`): the steps in the [module docs](super).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use modload::params::ParamValue;
use modload::{ErrorKind, Image, Region, RegionMem};

use super::errno::{EBUSY, EEXIST, EINVAL, ENOENT, ENOEXEC, ENOMEM};
use super::symbols::{Symbols, exported_anywhere};
use super::{
    MODULE_MUTEX, ModPtr, Module, ParamInfo, REF_BASE, State, TAINT, TAINT_PROPRIETARY,
    listed_modules, sysfs,
};
use crate::kobject::KObject;
use crate::memory::vmap::{KernelMapping, Protection};
use crate::sync::{Completion, SpinLock};

/// The bytes of a module file the kernel may run: see "Trust" in the [module docs](super).
#[derive(Clone, Copy)]
pub struct ModuleFile<'a> {
    bytes: &'a [u8],
}

impl<'a> ModuleFile<'a> {
    /// The module in `bytes` if they lie in the boot ramdisk (the initramfs: the modules
    /// `cargo run` packs and `--initrd-add` adds) or in the kernel image's read-only part,
    /// which the kernel trusts as it trusts its own code; `None` for any other bytes.
    pub fn trusted(bytes: &'a [u8]) -> Option<Self> {
        let ramdisk = crate::boot::ramdisk();
        let (start, end) = (
            bytes.as_ptr() as usize,
            bytes.as_ptr() as usize + bytes.len(),
        );
        let rd = ramdisk.as_ptr() as usize;
        let in_ramdisk = !ramdisk.is_empty() && rd <= start && end <= rd + ramdisk.len();
        let in_image = crate::memory::kmalloc::in_kernel_rodata(bytes.as_ptr(), bytes.len());
        (in_ramdisk || in_image).then_some(Self { bytes })
    }

    /// The module in `bytes`, wherever they are.
    ///
    /// # Safety
    /// If the loader accepts the file, its code runs in the kernel: it must not break memory
    /// safety (the caller vouches for it as for kernel code).
    pub unsafe fn new_unchecked(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Why a module was not loaded: the errno `insmod` reports, and a message that says what and
/// where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The errno (positive: `ENOEXEC`, `ENOMEM`, `ENODEV` from `init_module`, ...).
    pub errno: i32,
    /// The loader's refusal, for a file it refused (`None` for other errors).
    pub kind: Option<ErrorKind>,
    /// What went wrong.
    pub message: String,
}

impl LoadError {
    fn new(errno: i32, message: impl Into<String>) -> Self {
        Self {
            errno,
            kind: None,
            message: message.into(),
        }
    }

    fn oom(what: &str) -> Self {
        Self::new(ENOMEM, format!("out of memory for {what}"))
    }
}

impl From<modload::Error> for LoadError {
    fn from(e: modload::Error) -> Self {
        let errno = match e.kind {
            // Linux: an unknown symbol is -ENOENT; a bad parameter value -EINVAL; everything
            // else wrong with the file -ENOEXEC.
            ErrorKind::UndefinedSymbol | ErrorKind::GplOnlySymbol => ENOENT,
            ErrorKind::BadParam => EINVAL,
            _ => ENOEXEC,
        };
        Self {
            errno,
            kind: Some(e.kind),
            message: e.to_string(),
        }
    }
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        super::errno::write_error(f, self.errno, &self.message)
    }
}

/// A module that loaded: what `insmod` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The module's name.
    pub name: String,
    /// Its `struct module *` (`THIS_MODULE`), for `try_module_get`/`module_put`.
    pub handle: usize,
    /// Its memory after init, in bytes.
    pub core_size: usize,
    /// Its init memory (freed after init), in bytes.
    pub init_size: usize,
    /// Warnings (a parameter it does not have, ignored as Linux does).
    pub warnings: Vec<String>,
}

/// Loads the module in `file`, named `file_name` if its `.modinfo` has no `name=`, with
/// `insmod`'s `name=value` arguments, and runs its `init_module` (Linux's `init_module`
/// system call). On any error nothing is left behind: no memory, no name, no sysfs
/// directory, no reference on another module.
pub fn load(file: ModuleFile<'_>, file_name: &str, args: &[&str]) -> Result<Loaded, LoadError> {
    let parsed = modload::Module::parse(file.bytes, file_name)?;
    let serial = MODULE_MUTEX.lock();
    {
        let list = listed_modules();
        if let Some((_, m)) = list.by_name(parsed.name()) {
            let errno = if m.state() == State::Live {
                EEXIST
            } else {
                EBUSY
            };
            return Err(LoadError::new(
                errno,
                format!("a module named {} is already {}", m.name, m.state().name()),
            ));
        }
    }
    let module = new_module(&parsed)?;
    // From here the module is ours until it is listed: `abandon` undoes.
    let p = ModPtr(module);
    // SAFETY: just made, ours alone.
    let m = unsafe { &mut *p.0.as_ptr() };
    let mut warnings = Vec::new();
    if let Err(e) = form(&parsed, m, args, &mut warnings) {
        // SAFETY: not listed, no kobject added: ours alone.
        unsafe { abandon(p) };
        return Err(e);
    }
    // COMING: on the list (its name taken), in sysfs; its exports not yet visible.
    {
        let mut list = listed_modules();
        if list.raw().try_reserve(1).is_err() {
            drop(list);
            // SAFETY: as above.
            unsafe { abandon(p) };
            return Err(LoadError::oom("the module list"));
        }
        list.raw().push(p);
    }
    if let Err(e) = sysfs::add(p) {
        listed_modules().raw().retain(|&q| q != p);
        drop(serial);
        super::unload::release_and_free(p);
        return Err(LoadError::new(e.0, "its /sys/module directory"));
    }
    if m.taints.contains('P') {
        TAINT.fetch_or(TAINT_PROPRIETARY, Ordering::Relaxed);
        log::warn!("{}: module license taints the kernel (P)", m.name);
    }
    drop(serial);

    // `init_module`, with no lock held (it may take any lock, sleep, or load nothing else).
    let ret = match m.entry_init {
        // SAFETY: the module is a trusted file (`ModuleFile`), relocated against the kernel's
        // exports; `init_module` is a function in its text (checked by the loader), sealed
        // executable, with the C signature `int init_module(void)`.
        Some(addr) => unsafe {
            let init: extern "C" fn() -> i32 = core::mem::transmute(addr);
            init()
        },
        None => 0,
    };
    if ret != 0 {
        let errno = if ret < 0 { -ret } else { EINVAL };
        if ret > 0 {
            log::warn!(
                "{}: init_module returned {ret}, not 0 or a negative errno",
                m.name
            );
        }
        m.set_state(State::Going);
        {
            let _serial = MODULE_MUTEX.lock();
            sysfs::remove(p);
            listed_modules().raw().retain(|&q| q != p);
        }
        super::unload::release_and_free(p);
        return Err(LoadError::new(
            errno,
            format!("init_module of {file_name} failed"),
        ));
    }
    // LIVE: the init regions go, ro_after_init becomes read-only.
    {
        let mut mem = m.mem.lock();
        for r in Region::ALL.into_iter().filter(|r| r.is_init()) {
            mem[r.index()] = None;
        }
        if let Some(ro) = &mut mem[Region::RoAfterInit.index()] {
            ro.seal(Protection::ReadOnly);
        }
    }
    m.set_state(State::Live);
    Ok(Loaded {
        name: m.name.clone(),
        handle: m.handle,
        core_size: m.core_size,
        init_size: m.init_size,
        warnings,
    })
}

/// A `Module` on the heap for `parsed`, with nothing in it yet.
fn new_module(parsed: &modload::Module<'_>) -> Result<NonNull<Module>, LoadError> {
    let mut name = String::new();
    name.try_reserve_exact(parsed.name().len())
        .map_err(|_| LoadError::oom("the module's name"))?;
    name.push_str(parsed.name());
    let layout = parsed.layout();
    let module = Box::try_new(Module {
        kobj: KObject::new(),
        holders_kobj: KObject::new(),
        sections_kobj: KObject::new(),
        params_kobj: KObject::new(),
        kobjs_alive: AtomicUsize::new(0),
        released: Completion::new(),
        name,
        handle: 0,
        state: AtomicU8::new(State::Coming as u8),
        refcnt: AtomicUsize::new(REF_BASE),
        taints: "",
        core_size: layout.core_size() as usize,
        init_size: layout.init_size() as usize,
        sections: Vec::new(),
        section_spans: Vec::new(),
        gdb_sections: Vec::new(),
        params: Vec::new(),
        functions: Vec::new(),
        objects: Vec::new(),
        exports: Vec::new(),
        uses: Vec::new(),
        entry_init: None,
        cleanup: None,
        mem: SpinLock::new([const { None }; modload::layout::REGIONS]),
        strings: SpinLock::new(Vec::new()),
    })
    .map_err(|_| LoadError::oom("struct module"))?;
    Ok(NonNull::from(Box::leak(module)))
}

/// Resolves, maps, relocates and seals the module, and fills in what the kernel keeps
/// (references on the modules it uses included), under the module mutex.
fn form(
    parsed: &modload::Module<'_>,
    m: &mut Module,
    args: &[&str],
    warnings: &mut Vec<String>,
) -> Result<(), LoadError> {
    let layout = parsed.layout();
    // The memory, one mapping per non-empty region, writable until sealed.
    let mut mem: [Option<KernelMapping>; modload::layout::REGIONS] = [const { None }; _];
    for r in Region::ALL {
        let size = layout.size(r) as usize;
        if size > 0 {
            let mapping = KernelMapping::new(size / crate::memory::PAGE_SIZE).map_err(|e| {
                LoadError::new(ENOMEM, format!("{} region of {size} bytes: {e}", r.name()))
            })?;
            mem[r.index()] = Some(mapping);
        }
    }
    let addr_of = |mem: &[Option<KernelMapping>], r: Region| {
        mem[r.index()].as_ref().map_or(0, |k| k.start().as_u64())
    };
    let addrs: Vec<u64> = Region::ALL.iter().map(|&r| addr_of(&mem, r)).collect();
    // THIS_MODULE: the lowest address of the module's memory (see `Module::handle`).
    m.handle = addrs.iter().copied().filter(|&a| a != 0).min().unwrap_or(0) as usize;
    let resolved = {
        let list = listed_modules();
        let resolved = parsed.resolve(&Symbols { list: &list }, m.handle as u64)?;
        for e in parsed.exports() {
            if exported_anywhere(&list, e.name) {
                return Err(LoadError::new(
                    ENOEXEC,
                    format!("`{}` is already exported by another module", e.name),
                ));
            }
        }
        // A reference on each module used (Linux's `ref_module`): it cannot go while this
        // one holds its symbols.
        for (i, &u) in resolved.uses.iter().enumerate() {
            // SAFETY: on the list, lock held.
            let um = unsafe { u.get() };
            let got = um.state() == State::Live
                && um
                    .refcnt
                    .try_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                        (c != 0).then_some(c + 1)
                    })
                    .is_ok();
            if !got {
                for &v in &resolved.uses[..i] {
                    // SAFETY: referenced just above.
                    unsafe { v.get() }.refcnt.fetch_sub(1, Ordering::AcqRel);
                }
                return Err(LoadError::new(
                    ENOENT,
                    format!("{} (a module it uses) is going away", um.name),
                ));
            }
        }
        resolved
    };
    m.uses = resolved.uses.clone();
    m.taints = if resolved.taints_proprietary { "P" } else { "" };
    {
        let mut regions = mem.iter_mut().zip(&addrs).map(|(k, &addr)| match k {
            Some(k) => RegionMem {
                addr,
                bytes: k.as_mut_slice().unwrap_or_default(),
            },
            None => RegionMem::empty(),
        });
        let regions: [RegionMem<'_>; modload::layout::REGIONS] =
            core::array::from_fn(|_| regions.next().unwrap_or_else(RegionMem::empty));
        let mut image = Image::new(layout, regions)?;
        parsed.write_image(&resolved, &mut image)?;
        set_params(parsed, m, &mut image, args, warnings)?;
        m.entry_init = parsed.init_address(&image).map(|a| a as usize);
        m.cleanup = parsed.cleanup_address(&image).map(|a| a as usize);
        for e in parsed.exports() {
            let addr = parsed
                .export_address(&image, e)
                .ok_or_else(|| LoadError::new(ENOEXEC, format!("export `{}`", e.name)))?;
            m.exports.push((e.name.to_string(), addr, e.gpl_only));
        }
        for (name, region, addr, size) in parsed.loaded_sections(&image) {
            m.sections.push((name.to_string(), addr));
            m.section_spans.push((size, region.is_init()));
        }
        for (name, addr, size) in parsed.functions(&image) {
            let mut demangled = String::new();
            let _ = core::fmt::Write::write_fmt(
                &mut demangled,
                format_args!("{:#}", rustc_demangle::demangle(name)),
            );
            m.functions.push((demangled, addr, size));
        }
        m.functions.sort_unstable_by_key(|&(_, addr, _)| addr);
        m.objects.extend(parsed.objects(&image));
        m.objects.sort_unstable();
        // The strings' bytes stay where they are from here on: GDB's table may point at them.
        m.gdb_sections = super::debug::gdb_sections(&m.sections);
        for prm in parsed.params() {
            m.params.push(ParamInfo {
                name: prm.name.to_string(),
                kind: prm.kind,
                perm: prm.perm,
                addr: parsed.param_address(&image, prm) as usize,
            });
        }
    }
    // W^X from here on: text executable and read-only, the rest not executable (one
    // shoot-down for all regions).
    let mut seals: Vec<(&mut KernelMapping, Protection)> = Vec::new();
    seals
        .try_reserve_exact(modload::layout::REGIONS)
        .map_err(|_| LoadError::oom("sealing"))?;
    for (r, k) in Region::ALL.into_iter().zip(mem.iter_mut()) {
        if let Some(k) = k {
            let perms = r.perms_during_init();
            let p = match (perms.write, perms.exec) {
                (true, _) => Protection::ReadWrite,
                (false, true) => Protection::ReadExec,
                (false, false) => Protection::ReadOnly,
            };
            seals.push((k, p));
        }
    }
    KernelMapping::seal_all(&mut seals);
    drop(seals);
    *m.mem.lock() = mem;
    Ok(())
}

/// Applies `insmod`'s `name=value` arguments. An argument naming no parameter is ignored
/// with a warning, as Linux does; a value that does not parse is an error.
fn set_params(
    parsed: &modload::Module<'_>,
    m: &Module,
    image: &mut Image<'_>,
    args: &[&str],
    warnings: &mut Vec<String>,
) -> Result<(), LoadError> {
    for arg in args {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (*arg, None),
        };
        // Linux accepts `-` for `_` in parameter names.
        let name = name.replace('-', "_");
        if !parsed.params().iter().any(|p| p.name == name) {
            warnings.push(format!(
                "{}: unknown parameter '{name}' ignored",
                parsed.name()
            ));
            continue;
        }
        if let ParamValue::Charp(s) = parsed.set_param(image, &name, value)? {
            let addr = keep_string(m, s)?;
            let prm = parsed.params().iter().find(|p| p.name == name);
            if let Some(prm) = prm {
                image.write(
                    parsed.param_address(image, prm),
                    &(addr as u64).to_le_bytes(),
                )?;
            }
        }
    }
    Ok(())
}

/// Copies `s` (NUL-terminated) for a `charp` parameter; the copy lives as long as the module.
pub(super) fn keep_string(m: &Module, s: &str) -> Result<usize, LoadError> {
    let mut copy = Vec::new();
    copy.try_reserve_exact(s.len() + 1)
        .map_err(|_| LoadError::oom("a parameter string"))?;
    copy.extend_from_slice(s.as_bytes());
    copy.push(0);
    let addr = copy.as_ptr() as usize;
    let mut strings = m.strings.lock();
    strings
        .try_reserve(1)
        .map_err(|_| LoadError::oom("a parameter string"))?;
    strings.push(copy);
    Ok(addr)
}

/// Frees a module that was never listed nor added to sysfs, dropping the references it took.
///
/// # Safety
/// `p` must be a module made by `new_module` that no one else knows.
unsafe fn abandon(p: ModPtr) {
    super::unload::release_and_free(p);
}
