//! Loadable modules in the running kernel (Linux's `kernel/module/`): loading an ELF
//! relocatable object into the `MODULES` range, linking it against the kernel's exports and
//! earlier modules', running its `init_module`, counting its users, listing it in
//! `/sys/module`, and unloading it.
//!
//! The file's checks, layout and relocation are the host-tested `modload` crate's
//! (`docs/modules.md`); this module does what needs the machine:
//!
//! ```text
//!  load:   parse (modload) ─ name free? ─ struct Module on the heap (its address is
//!          THIS_MODULE) ─ resolve symbols, take a reference on each module used ─ one
//!          KernelMapping per region ─ copy, relocate, parameters ─ seal (W^X) ─ COMING:
//!          on the list, /sys/module/NAME ─ init_module() ─ LIVE: exports visible, .init
//!          regions unmapped, ro_after_init sealed read-only
//!          (init fails: GOING, everything undone in reverse, the errno returned)
//!  unload: LIVE, no holders, refcount at its base (or -f: taint R) ─ GOING: exports gone ─
//!          cleanup_module() ─ off the list, /sys/module/NAME deleted, references on used
//!          modules dropped ─ wait until every reference on the module's kobjects is put
//!          (a sysfs reader, a kernel test) ─ unmap the memory (shoot-down) and free
//! ```
//!
//! # Locks
//! One sleeping [`Mutex`] serialises loads and unloads (Linux's `module_mutex`), held from
//! the name check to the module's entry on the list and again to take it off, never while a
//! module's `init_module`/`cleanup_module` runs. The list itself is behind a [`SpinLock`], so
//! [`try_module_get`] and [`module_put`] (which may run in interrupt context) check a
//! `struct module *` against it without sleeping.
//!
//! # Trust
//! Loading a module runs its code with the kernel's privileges: whatever the loader checks,
//! code that wants to break memory can. So only a [`ModuleFile`] is loaded, and one is made
//! safely only from bytes the kernel already trusts as much as its own image: the boot
//! ramdisk (where `cargo run` and `--initrd-add` put modules) and the image's read-only part.
//! Anything else takes [`ModuleFile::new_unchecked`], an `unsafe fn`.

pub(crate) mod debug;
pub mod errno;
mod load;
mod symbols;
mod sysfs;
mod unload;

use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::kobject::KObject;
use crate::memory::vmap::KernelMapping;
use crate::sync::{Completion, Mutex, SpinLock};

pub(crate) use debug::symbolize;
pub use debug::{AddressOwner, address_owner};
pub use load::{LoadError, Loaded, ModuleFile, load};
pub use symbols::{KernelSymbol, SymbolAddress, kernel_symbols, set_kernel_symbols};
pub use unload::{UnloadError, unload};

/// A module's state (Linux's `enum module_state`; `UNFORMED` is not needed: a module is on
/// the list only once its memory is formed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Running normally.
    Live = 0,
    /// `init_module` has not returned yet.
    Coming = 1,
    /// Being unloaded, or its `init_module` failed.
    Going = 2,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => State::Live,
            1 => State::Coming,
            _ => State::Going,
        }
    }

    /// The word `/sys/module/*/initstate` shows.
    pub fn name(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Coming => "coming",
            State::Going => "going",
        }
    }
}

/// The count a module's `refcnt` has with no users (Linux's `MODULE_REF_BASE`): unload
/// brings it from 1 to 0 in one compare-and-swap, so a racing [`try_module_get`] either gets
/// in first (and unload is refused) or finds 0 and fails.
const REF_BASE: usize = 1;

/// A parameter of a loaded module, for `/sys/module/*/parameters`.
pub(crate) struct ParamInfo {
    pub(crate) name: String,
    pub(crate) kind: modload::params::ParamType,
    pub(crate) perm: u16,
    /// The variable's address, in the module's data region.
    pub(crate) addr: usize,
}

/// A loaded module (Linux's `struct module`): what the kernel keeps about it. Its address is
/// the module's `THIS_MODULE`.
///
/// `repr(C)` with the kobjects first: a kobject's release steps back to the module from the
/// kobject's own address ([`Module::from_kobj`]).
#[repr(C)]
pub(crate) struct Module {
    /// `/sys/module/NAME`.
    pub(crate) kobj: KObject,
    /// `/sys/module/NAME/holders/`: a link per module that uses this one.
    pub(crate) holders_kobj: KObject,
    /// `/sys/module/NAME/sections/`: a file per loaded section.
    pub(crate) sections_kobj: KObject,
    /// `/sys/module/NAME/parameters/`: a file per parameter with a mode.
    pub(crate) params_kobj: KObject,
    /// How many of the four kobjects have not been released yet.
    pub(crate) kobjs_alive: AtomicUsize,
    /// Completed by the last kobject release (Linux's `mkobj.kobj_completion`).
    pub(crate) released: Completion,
    pub(crate) name: String,
    /// The module's `struct module *` as its code sees it (`THIS_MODULE`, `&__this_module`):
    /// the first address of its memory. Code built with `-mcmodel=kernel` (C and Rust alike)
    /// may reach `__this_module` with a sign-extended 32-bit absolute relocation, so it must
    /// lie in the top 2 GiB, as Linux's does (in the module's own memory); the heap does not.
    pub(crate) handle: usize,
    pub(crate) state: AtomicU8,
    /// [`REF_BASE`] plus the users: [`try_module_get`]s and modules that use this one.
    pub(crate) refcnt: AtomicUsize,
    /// Taint letters of the module (`P`: not GPL-compatible).
    pub(crate) taints: &'static str,
    pub(crate) core_size: usize,
    pub(crate) init_size: usize,
    /// The loaded sections and their addresses.
    pub(crate) sections: Vec<(String, u64)>,
    /// Each section's size and whether it is in an init region (freed once the module is
    /// live): what [`address_owner`] needs to place an address.
    pub(crate) section_spans: Vec<(u64, bool)>,
    /// [`Self::sections`] as `tools/gdb/sheaf.py` reads them ([`debug::GdbSection`]).
    pub(crate) gdb_sections: Vec<debug::GdbSection>,
    pub(crate) params: Vec<ParamInfo>,
    /// The module's functions, demangled, sorted by address: name, address, size (what a
    /// backtrace names its frames with).
    pub(crate) functions: Vec<(String, u64, u64)>,
    /// The module's data objects with a size (`STT_OBJECT` symbols): address, size, sorted.
    /// [`pin_module_data`] wants a pinned range inside one.
    pub(crate) objects: Vec<(u64, u64)>,
    /// The module's exports: name, address, GPL-only.
    pub(crate) exports: Vec<(String, u64, bool)>,
    /// The modules this one uses (it holds a reference on each).
    pub(crate) uses: Vec<ModPtr>,
    /// `init_module`'s address, if it has one.
    pub(crate) entry_init: Option<usize>,
    /// `cleanup_module`'s address: without one, the module cannot be unloaded (but by force).
    pub(crate) cleanup: Option<usize>,
    /// The regions' memory (`None` for an empty region or one freed after init).
    pub(crate) mem: SpinLock<[Option<KernelMapping>; modload::layout::REGIONS]>,
    /// The kernel's copies of `charp` parameter strings (NUL-terminated), freed with the module.
    pub(crate) strings: SpinLock<Vec<Vec<u8>>>,
}

impl Module {
    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Users: the count `/sys/module/*/refcnt` and `lsmod` show (Linux's `module_refcount`).
    pub(crate) fn users(&self) -> usize {
        self.refcnt.load(Ordering::Acquire).saturating_sub(REF_BASE)
    }

    /// The module around one of its four kobjects.
    ///
    /// # Safety
    /// `k` must be one of the four kobjects of a `Module` that is still in memory.
    pub(crate) unsafe fn from_kobj<'a>(k: NonNull<KObject>, which: WhichKobj) -> &'a Module {
        let offset = match which {
            WhichKobj::Module => core::mem::offset_of!(Module, kobj),
            WhichKobj::Holders => core::mem::offset_of!(Module, holders_kobj),
            WhichKobj::Sections => core::mem::offset_of!(Module, sections_kobj),
            WhichKobj::Params => core::mem::offset_of!(Module, params_kobj),
        };
        // SAFETY: `k` is that field of a live `Module` (caller contract), so stepping back by
        // its offset gives the module's address.
        unsafe { &*k.as_ptr().byte_sub(offset).cast::<Module>() }
    }
}

/// Which of a module's kobjects a pointer is.
#[derive(Clone, Copy)]
pub(crate) enum WhichKobj {
    Module,
    Holders,
    Sections,
    Params,
}

/// A module on the list: the heap address of its [`Module`] (`Box::into_raw`), owned by the
/// list until unload takes it off and frees it after the kobjects' release.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ModPtr(pub(crate) NonNull<Module>);

// SAFETY: a `Module` is shared between CPUs through atomics and locks; the pointer is only
// dereferenced while the module is on the list (under its lock) or by the thread unloading it.
unsafe impl Send for ModPtr {}
// SAFETY: as above.
unsafe impl Sync for ModPtr {}

impl ModPtr {
    /// The module.
    ///
    /// # Safety
    /// The module must still be in memory: on the list while its lock is held, referenced by
    /// a dependency (a module on the list holds a reference on each it uses), or owned by the
    /// caller (load before it is listed, unload after it is taken off).
    pub(crate) unsafe fn get<'a>(self) -> &'a Module {
        // SAFETY: caller contract.
        unsafe { self.0.as_ref() }
    }
}

/// Loads and unloads, one at a time (Linux's `module_mutex`).
static MODULE_MUTEX: Mutex<()> = Mutex::new(());
/// The modules in memory, coming, live or going, oldest first (Linux's `modules` list).
static LIST: SpinLock<Vec<ModPtr>> = SpinLock::new(Vec::new());
/// The list, locked: while it lives, every module on it is in memory (unload takes a module
/// off under this lock before it frees it). Whether [`Listed::raw`] was called: the guard
/// then republishes GDB's table ([`SHEAF_MODULES`]) before it unlocks.
pub(crate) struct Listed<'g>(crate::sync::SpinLockGuard<'g, Vec<ModPtr>>, bool);

/// Locks the list of modules.
pub(crate) fn listed_modules() -> Listed<'static> {
    Listed(LIST.lock(), false)
}

/// The list, if no one holds its lock: for an oops, which must not wait (the CPU that
/// faulted may hold it).
fn try_listed_modules() -> Option<Listed<'static>> {
    LIST.try_lock().map(|g| Listed(g, false))
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        if self.1 {
            debug::publish(self);
        }
    }
}

impl Listed<'_> {
    /// The modules, oldest first, with their pointers.
    pub(crate) fn modules(&self) -> impl DoubleEndedIterator<Item = (ModPtr, &Module)> {
        self.0.iter().map(|&p| {
            // SAFETY: on the list, whose lock this guard holds (see `Listed`).
            let m = unsafe { p.get() };
            (p, m)
        })
    }

    /// The module called `name`.
    pub(crate) fn by_name(&self, name: &str) -> Option<(ModPtr, &Module)> {
        self.modules().find(|(_, m)| m.name == name)
    }

    /// The module whose handle (`THIS_MODULE`) is `handle`.
    fn by_handle(&self, handle: usize) -> Option<&Module> {
        self.modules()
            .find(|(_, m)| m.handle == handle)
            .map(|(_, m)| m)
    }

    /// The names of the modules that use `p`.
    pub(crate) fn holders_of(&self, p: ModPtr) -> Vec<String> {
        self.modules()
            .filter(|(_, q)| q.uses.contains(&p))
            .map(|(_, q)| q.name.clone())
            .collect()
    }

    /// The raw list, to change it (GDB's table follows when the guard drops).
    pub(crate) fn raw(&mut self) -> &mut Vec<ModPtr> {
        self.1 = true;
        &mut self.0
    }
}

/// Kernel taint letters set by modules (`P` proprietary module loaded, `R` forced unload),
/// as bits: see [`tainted`].
static TAINT: AtomicUsize = AtomicUsize::new(0);
const TAINT_PROPRIETARY: usize = 1 << 0;
const TAINT_FORCED_RMMOD: usize = 1 << 1;

/// The kernel's taint letters from modules, in Linux's order (`P` a module that is not
/// GPL-compatible was loaded; `R` a module was unloaded by force); empty when untainted.
pub fn tainted() -> String {
    let t = TAINT.load(Ordering::Relaxed);
    let mut s = String::new();
    if t & TAINT_PROPRIETARY != 0 {
        s.push('P');
    }
    if t & TAINT_FORCED_RMMOD != 0 {
        s.push('R');
    }
    s
}

/// What `lsmod` shows of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The module's name.
    pub name: String,
    /// Its memory after init, in bytes (Linux's `coresize`: whole pages).
    pub size: usize,
    /// Its init memory, in bytes (freed after init).
    pub init_size: usize,
    /// Users: references taken with `try_module_get` and modules that use it.
    pub refcount: usize,
    /// The modules that use it.
    pub used_by: Vec<String>,
    /// Its state.
    pub state: State,
    /// Its taint letters.
    pub taints: &'static str,
}

/// Every module in memory, newest first (the order of Linux's `lsmod`).
pub fn list() -> Vec<ModuleInfo> {
    let list = listed_modules();
    list.modules()
        .rev()
        .map(|(p, m)| ModuleInfo {
            name: m.name.clone(),
            size: m.core_size,
            init_size: m.init_size,
            refcount: m.users(),
            used_by: list.holders_of(p),
            state: m.state(),
            taints: m.taints,
        })
        .collect()
}

/// `/proc/modules`, as Linux writes it (what its `lsmod` reads): one line per module, newest
/// first: `name size users used-by state address`, then `(taints)` if any; `used-by` is the
/// users' names each followed by a comma, or `-`; state `Live`, `Loading` or `Unloading`.
pub fn proc_modules(w: &mut dyn core::fmt::Write) -> core::fmt::Result {
    let list = listed_modules();
    for (p, m) in list.modules().rev() {
        write!(w, "{} {} {} ", m.name, m.core_size, m.users())?;
        let holders = list.holders_of(p);
        if holders.is_empty() {
            w.write_str("-")?;
        }
        for h in holders {
            write!(w, "{h},")?;
        }
        let state = match m.state() {
            State::Live => "Live",
            State::Coming => "Loading",
            State::Going => "Unloading",
        };
        write!(w, " {state} {:#x}", m.handle)?;
        if !m.taints.is_empty() {
            write!(w, " ({})", m.taints)?;
        }
        w.write_str("\n")?;
    }
    Ok(())
}

/// Pages of the `MODULES` range that loaded modules hold, guard pages not counted.
pub fn pages_in_use() -> usize {
    listed_modules()
        .modules()
        .map(|(_, m)| {
            m.mem
                .lock()
                .iter()
                .flatten()
                .map(KernelMapping::pages)
                .sum::<usize>()
        })
        .sum()
}

/// The address of symbol `name` of loaded module `module` (an export, `init_module`, ...),
/// for tests and tools: `None` if either is unknown.
pub fn symbol_address(module: &str, name: &str) -> Option<u64> {
    let list = listed_modules();
    let (_, m) = list.by_name(module)?;
    m.exports.iter().find(|e| e.0 == name).map(|e| e.1)
}

/// A reference on a loaded module's kobject (Linux's `kobject_get(&THIS_MODULE->mkobj.kobj)`),
/// dropped with the value. While any reference on it lives, the module's memory stays mapped:
/// the unload waits for the last one before it frees anything.
pub struct ModulePin {
    kobj: NonNull<KObject>,
}

impl ModulePin {
    /// The module's kobject.
    pub fn kobject(&self) -> &KObject {
        // SAFETY: the reference this pin holds keeps the kobject, and the `Module` around it,
        // in memory (the unload waits for every reference before freeing the module).
        unsafe { self.kobj.as_ref() }
    }
}

impl Drop for ModulePin {
    fn drop(&mut self) {
        // SAFETY: the reference `pin_module_data` took, dropped once.
        if let Err(e) = unsafe { crate::kobject::sysfs().kobject_put(self.kobj) } {
            log::error!("module pin: {e}");
        }
    }
}

/// Why [`pin_module_data`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinError {
    /// The handle is not a loaded module's `THIS_MODULE`.
    NotAModule,
    /// The module is being unloaded (or its init failed).
    Going,
    /// The range is not inside the module's writable data, or not aligned.
    NotModuleData,
    /// The range is not inside one sized data object of the module (its ELF symbol): the
    /// storage is smaller than the kernel's structure (a module built against another
    /// kernel's headers) or not a variable of its own.
    NotAnObject,
}

impl core::fmt::Display for PinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PinError::NotAModule => "not a loaded module",
            PinError::Going => "the module is going away",
            PinError::NotModuleData => "not inside the module's writable data, or misaligned",
            PinError::NotAnObject => {
                "not inside one of the module's variables as large as the kernel's structure \
                 (a module built against another kernel's headers?)"
            }
        })
    }
}

/// Takes a reference on module `handle`'s kobject, for storage of the module's own (a static
/// cache in its `.data`): refused unless `[addr, addr + size)` lies in the module's data region,
/// inside one of its sized variables (an `STT_OBJECT` symbol: storage declared smaller than
/// `size`, as by a module built against a stale header, is refused), and `addr` is aligned to
/// `align`. The caller hands the kobject on as the owner the storage
/// pins (`KmemCacheArgs::owner`), so the module's memory outlives the storage's use.
pub fn pin_module_data(
    handle: usize,
    addr: usize,
    size: usize,
    align: usize,
) -> Result<ModulePin, PinError> {
    let list = listed_modules();
    let m = list.by_handle(handle).ok_or(PinError::NotAModule)?;
    if m.state() == State::Going {
        return Err(PinError::Going);
    }
    let inside = {
        let mem = m.mem.lock();
        mem[modload::Region::Data.index()]
            .as_ref()
            .is_some_and(|k| {
                let start = k.start().as_u64() as usize;
                addr >= start
                    && addr
                        .checked_add(size)
                        .is_some_and(|end| end <= start + k.len())
            })
    };
    if !inside || align == 0 || !addr.is_multiple_of(align) {
        return Err(PinError::NotModuleData);
    }
    // The whole range in one variable of the module: storage declared smaller than the
    // kernel's structure (a stale header) would otherwise overlap its neighbours.
    let (addr64, size64) = (addr as u64, size as u64);
    let in_object = m
        .objects
        .iter()
        .any(|&(start, len)| start <= addr64 && addr64 + size64 <= start + len);
    if !in_object {
        return Err(PinError::NotAnObject);
    }
    crate::kobject::sysfs()
        .kobject_get(&m.kobj)
        .map_err(|_| PinError::Going)?;
    Ok(ModulePin {
        kobj: NonNull::from(&m.kobj),
    })
}

/// Takes a reference on the module at `module` (a `struct module *`, Linux's
/// `try_module_get`): `true` for a null module (the kernel itself) and for a module that is
/// not going away; `false` when it is going, or is not a loaded module (which is also a
/// warning, with the caller's backtrace: Linux's `WARN`).
pub fn try_module_get(module: usize) -> bool {
    if module == 0 {
        return true;
    }
    let list = listed_modules();
    let Some(m) = list.by_handle(module) else {
        drop(list);
        crate::backtrace::warn(format_args!(
            "try_module_get: {module:#x} is not a loaded module"
        ));
        return false;
    };
    if m.state() == State::Going {
        return false;
    }
    // Never from 0 (an unload took the base away): Linux's atomic_inc_not_zero.
    m.refcnt
        .try_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            (c != 0).then(|| c.checked_add(1)).flatten()
        })
        .is_ok()
}

/// Drops a reference [`try_module_get`] took (Linux's `module_put`). A put without a
/// reference (which would let the module be unloaded under another user) or on something
/// that is not a loaded module is refused with a warning and the caller's backtrace (Linux's
/// `WARN_ON`); the count is left as it was.
pub fn module_put(module: usize) {
    if module == 0 {
        return;
    }
    let list = listed_modules();
    let Some(m) = list.by_handle(module) else {
        drop(list);
        crate::backtrace::warn(format_args!(
            "module_put: {module:#x} is not a loaded module"
        ));
        return;
    };
    let live = m.state() != State::Going;
    let floor = if live { REF_BASE } else { 0 };
    let r = m
        .refcnt
        .try_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            (c > floor).then(|| c - 1)
        });
    if r.is_err() {
        crate::backtrace::warn(format_args!(
            "module_put: {} has no reference to drop",
            m.name
        ));
    }
}
