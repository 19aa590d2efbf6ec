//! What debugging needs of the loaded modules: the table GDB reads to load their symbols
//! (`tools/gdb/sheaf.py`, `sheaf-symbols`: Linux's `lx-symbols` walks `modules` the same
//! way), and the owner of an address, for an oops (Linux's `__module_address` and the
//! `[name]` of `print_modules`/`%pS`).
//!
//! # GDB's table
//! [`SHEAF_MODULES`] is a `#[repr(C)]` static under a fixed symbol name. It points at an array
//! of [`GdbModule`] (one per module on the list, oldest first), each at its name's bytes and
//! at an array of [`GdbSection`] (a name's bytes and the section's run-time address). All are
//! plain integers: the kernel never reads them back, GDB reads them while every CPU is
//! stopped. The array is rebuilt each time the list changes, under the list's lock
//! ([`super::Listed`]'s drop); the names it points at are the `Module`'s own strings, which
//! stay in place until the module is freed, after it left the list (and so the table).
//!
//! Layout (version 1, little-endian 64-bit words):
//!
//! ```text
//! SHEAF_MODULES: magic "SheafMod" (0x646f4d6661656853), version, count, modules
//! modules[i]:    name, name_len, sections, section_count
//! sections[j]:   name, name_len, addr
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::Listed;
use crate::sync::SpinLock;

/// `SHEAF_MODULES.magic`: "SheafMod" in little-endian.
pub const GDB_TABLE_MAGIC: u64 = u64::from_le_bytes(*b"SheafMod");
/// `SHEAF_MODULES.version`: changes when the layout does.
pub const GDB_TABLE_VERSION: u64 = 1;

/// The head of GDB's module table (see the module's documentation).
#[repr(C)]
pub struct GdbTable {
    magic: u64,
    version: u64,
    /// How many [`GdbModule`]s `modules` points at (0 while it is being replaced).
    count: AtomicUsize,
    /// The address of the first [`GdbModule`].
    modules: AtomicUsize,
}

/// A loaded module, as GDB reads it.
#[repr(C)]
pub(crate) struct GdbModule {
    name: usize,
    name_len: usize,
    sections: usize,
    section_count: usize,
}

/// A loaded section, as GDB reads it.
#[repr(C)]
pub(crate) struct GdbSection {
    name: usize,
    name_len: usize,
    addr: u64,
}

/// The modules and their sections, for `sheaf-symbols` (GDB's script finds it by name).
// SAFETY: no other item of the kernel is called `SHEAF_MODULES`.
#[unsafe(no_mangle)]
pub static SHEAF_MODULES: GdbTable = GdbTable {
    magic: GDB_TABLE_MAGIC,
    version: GDB_TABLE_VERSION,
    count: AtomicUsize::new(0),
    modules: AtomicUsize::new(0),
};

/// The array [`SHEAF_MODULES`] points at, owned here.
static GDB_MODULES: SpinLock<Vec<GdbModule>> = SpinLock::new(Vec::new());

/// A module's sections as GDB reads them (empty when memory is exhausted: GDB then sees no
/// section of this module).
pub(crate) fn gdb_sections(sections: &[(String, u64)]) -> Vec<GdbSection> {
    let mut v = Vec::new();
    if v.try_reserve_exact(sections.len()).is_err() {
        return v;
    }
    v.extend(sections.iter().map(|(name, addr)| GdbSection {
        name: name.as_ptr() as usize,
        name_len: name.len(),
        addr: *addr,
    }));
    v
}

/// Rebuilds GDB's table from the list (called with the list locked, after it changed). When
/// memory is exhausted the table is left empty rather than stale.
pub(crate) fn publish(list: &Listed<'_>) {
    let mut fresh = Vec::new();
    let ok = fresh.try_reserve_exact(list.0.len()).is_ok();
    if ok {
        fresh.extend(list.modules().map(|(_, m)| GdbModule {
            name: m.name.as_ptr() as usize,
            name_len: m.name.len(),
            sections: m.gdb_sections.as_ptr() as usize,
            section_count: m.gdb_sections.len(),
        }));
    }
    let mut owned = GDB_MODULES.lock();
    SHEAF_MODULES.count.store(0, Ordering::Release);
    SHEAF_MODULES
        .modules
        .store(fresh.as_ptr() as usize, Ordering::Release);
    SHEAF_MODULES.count.store(fresh.len(), Ordering::Release);
    // The old array is freed only once nothing points at it.
    let old = core::mem::replace(&mut *owned, fresh);
    drop(owned);
    drop(old);
}

/// Where an address lies in a loaded module: the module's name, the section's and the
/// offset in it (`hello`, `.text.init_module`, `0x1c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressOwner<'a> {
    /// The module's name.
    pub module: &'a str,
    /// The section's name.
    pub section: &'a str,
    /// The offset of the address in the section.
    pub offset: u64,
}

impl core::fmt::Display for AddressOwner<'_> {
    /// Linux's style: `.text.init_module+0x1c [hello]`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}+{:#x} [{}]", self.section, self.offset, self.module)
    }
}

/// Calls `f` with the module section `addr` lies in, and returns what `f` returns; `None` if
/// it lies in no loaded section (init sections count only until the module is live, when
/// they are freed) or if the list is locked: it never waits and never allocates, so an oops
/// can call it whatever the CPU was doing (holding the list's lock, out of memory). `f` runs
/// with the list locked: it must not load or unload modules.
pub fn address_owner<R>(addr: u64, f: impl FnOnce(AddressOwner<'_>) -> R) -> Option<R> {
    let list = super::try_listed_modules()?;
    for (_, m) in list.modules() {
        let live = m.state() == super::State::Live;
        for ((name, start), &(size, init)) in m.sections.iter().zip(&m.section_spans) {
            if init && live {
                continue;
            }
            if addr >= *start && addr - start < size {
                return Some(f(AddressOwner {
                    module: &m.name,
                    section: name,
                    offset: addr - start,
                }));
            }
        }
    }
    None
}

/// Names `addr` for a backtrace ([`crate::backtrace::symbolize`]): the module function that
/// holds it, or failing that the module section (its size as the length). Never waits and
/// never allocates, as [`address_owner`].
pub(crate) fn symbolize(addr: u64, f: &mut dyn FnMut(crate::backtrace::Symbolized<'_>)) {
    let Some(list) = super::try_listed_modules() else {
        return;
    };
    for (_, m) in list.modules() {
        let live = m.state() == super::State::Live;
        for ((name, start), &(size, init)) in m.sections.iter().zip(&m.section_spans) {
            if (init && live) || addr < *start || addr - start >= size {
                continue;
            }
            let func = m
                .functions
                .iter()
                .rev()
                .find(|(_, a, s)| *a <= addr && addr - a < (*s).max(1));
            let named = match func {
                Some((fname, a, s)) => crate::backtrace::Symbolized {
                    name: fname,
                    offset: addr - a,
                    size: *s,
                    module: Some(&m.name),
                },
                None => crate::backtrace::Symbolized {
                    name,
                    offset: addr - start,
                    size,
                    module: Some(&m.name),
                },
            };
            f(named);
            return;
        }
    }
}

/// GDB's table read back the way `tools/gdb/sheaf.py` reads it (from the raw addresses):
/// each module's name and its sections' names and addresses, oldest module first. For the
/// on-target tests.
#[cfg(feature = "ktest")]
pub(crate) fn read_gdb_table() -> Vec<(String, Vec<(String, u64)>)> {
    // The list's lock keeps the table and every module on it in place (`publish` runs under
    // it, and a module is freed only after it left the list).
    let _list = super::listed_modules();
    let _owned = GDB_MODULES.lock();
    assert_eq!(SHEAF_MODULES.magic, GDB_TABLE_MAGIC);
    assert_eq!(SHEAF_MODULES.version, GDB_TABLE_VERSION);
    let count = SHEAF_MODULES.count.load(Ordering::Acquire);
    let first = SHEAF_MODULES.modules.load(Ordering::Acquire) as *const GdbModule;
    let text = |addr: usize, len: usize| {
        // SAFETY: `addr` and `len` are those of a `String` of a module on the list, which
        // stays in place while the list's lock is held.
        let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
        String::from(core::str::from_utf8(bytes).unwrap_or("?"))
    };
    (0..count)
        .map(|i| {
            // SAFETY: `first` points at `count` `GdbModule`s, the vector `GDB_MODULES` owns
            // (locked here); its sections point at the module's `gdb_sections`.
            let m = unsafe { &*first.add(i) };
            let sections = (0..m.section_count)
                .map(|j| {
                    // SAFETY: as above: `section_count` entries of the module's vector.
                    let s = unsafe { &*(m.sections as *const GdbSection).add(j) };
                    (text(s.name, s.name_len), s.addr)
                })
                .collect();
            (text(m.name, m.name_len), sections)
        })
        .collect()
}
