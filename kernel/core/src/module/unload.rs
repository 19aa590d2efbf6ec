//! Unloading a module (Linux's `delete_module` and `free_module`), and the wait for the last
//! reference on its kobjects (Linux's `mod_kobject_put`).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::errno::{EBUSY, ENOENT, EWOULDBLOCK};
use super::{
    MODULE_MUTEX, ModPtr, REF_BASE, State, TAINT, TAINT_FORCED_RMMOD, listed_modules, sysfs,
};
use crate::kobject::{KObject, sysfs as the_sysfs};

/// Why a module was not unloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnloadError {
    /// `ENOENT` (no such module), `EWOULDBLOCK` (other modules use it), `EBUSY` (in use, not
    /// live, or no `cleanup_module`).
    pub errno: i32,
    /// Why, for the user.
    pub message: String,
}

impl core::fmt::Display for UnloadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        super::errno::write_error(f, self.errno, &self.message)
    }
}

fn refuse(errno: i32, message: String) -> Result<(), UnloadError> {
    Err(UnloadError { errno, message })
}

/// Unloads module `name` (Linux's `delete_module`, `rmmod [-f]`). Refused while another
/// module uses it (even by force, as Linux), while it is coming or going, and, unless
/// `force`, while it has users or no `cleanup_module`. `force` past those two taints the
/// kernel (`R`). Returns once the module's memory is unmapped and freed, which waits for
/// every reference on its kobjects (a `/sys/module` reader, a test) to be put.
pub fn unload(name: &str, force: bool) -> Result<(), UnloadError> {
    let serial = MODULE_MUTEX.lock();
    let p = {
        let list = listed_modules();
        let Some((p, m)) = list.by_name(name) else {
            return refuse(ENOENT, format!("module {name} is not loaded"));
        };
        let holders = list.holders_of(p);
        if !holders.is_empty() {
            return refuse(
                EWOULDBLOCK,
                format!("module {name} is in use by: {}", holders.join(" ")),
            );
        }
        if m.state() != State::Live {
            return refuse(EBUSY, format!("module {name} is {}", m.state().name()));
        }
        if m.cleanup.is_none() && !force {
            return refuse(
                EBUSY,
                format!("module {name} has no cleanup_module: it cannot be unloaded"),
            );
        }
        // Linux's try_stop_module: the base reference goes in one step, so a racing
        // try_module_get sees 0 (or got in first, and the unload is refused).
        let stopped = m
            .refcnt
            .compare_exchange(REF_BASE, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !stopped {
            if !force {
                return refuse(
                    EBUSY,
                    format!("module {name} is in use ({} references)", m.users()),
                );
            }
            TAINT.fetch_or(TAINT_FORCED_RMMOD, Ordering::Relaxed);
            log::warn!(
                "{name}: forced unload with {} references held: kernel tainted (R)",
                m.users()
            );
        } else if m.cleanup.is_none() {
            TAINT.fetch_or(TAINT_FORCED_RMMOD, Ordering::Relaxed);
            log::warn!("{name}: forced unload without cleanup_module: kernel tainted (R)");
        }
        // GOING: its exports vanish from lookups, try_module_get fails.
        m.set_state(State::Going);
        p
    };
    drop(serial);
    // SAFETY: GOING and still listed: only this thread frees it.
    let m = unsafe { p.get() };
    if let Some(addr) = m.cleanup {
        // SAFETY: `cleanup_module` is a function of the module's text (checked by the
        // loader), still mapped executable, with the C signature `void cleanup_module(void)`;
        // the module is a trusted file (`ModuleFile`).
        unsafe {
            let cleanup: extern "C" fn() = core::mem::transmute(addr);
            cleanup();
        }
    }
    {
        let _serial = MODULE_MUTEX.lock();
        sysfs::remove(p);
        listed_modules().raw().retain(|&q| q != p);
    }
    // Off the list and out of sysfs: other loads and unloads go on while this one waits for
    // the last references (a module of the same name may even load again meanwhile).
    release_and_free(p);
    Ok(())
}

/// Drops the kernel's references on the module's kobjects, waits until every other
/// reference is put too (a sysfs reader, a test holding one), then drops the references the
/// module holds on the modules it uses and frees it: its regions are unmapped (with a TLB
/// shoot-down) before their frames go back. The module is off the list and out of sysfs (or
/// never was in either).
pub(super) fn release_and_free(p: ModPtr) {
    // SAFETY: off the list: this thread is the only one that frees it, and the kobjects keep
    // it in memory until their release.
    let m = unsafe { p.get() };
    let kobjs: [&KObject; 4] = [&m.holders_kobj, &m.sections_kobj, &m.params_kobj, &m.kobj];
    let initialized = kobjs.iter().filter(|k| k.is_initialized()).count();
    // Caches the module set up in its own memory and did not destroy (a bug of the module's:
    // Linux would wait for ever): their storage is the module's, so its memory is kept, with
    // a message, and the rest of the unload goes on.
    let kept: Vec<_> = if m.kobj.is_initialized() {
        crate::memory::kmalloc::slab()
            .caches_of(&m.kobj)
            .into_iter()
            .filter(|(_, state)| *state == slab::CacheState::Listed)
            .collect()
    } else {
        Vec::new()
    };
    if !kept.is_empty() {
        for (name, _) in &kept {
            log::error!(
                "module {}: cache {} was not destroyed: the module's memory is kept",
                m.name,
                name
            );
        }
        for &u in &m.uses {
            // SAFETY: the reference this module held keeps `u` listed and in memory.
            unsafe { u.get() }.refcnt.fetch_sub(1, Ordering::AcqRel);
        }
        return;
    }
    if initialized > 0 {
        for k in kobjs.into_iter().filter(|k| k.is_initialized()) {
            // SAFETY: the kernel's own (creator's) reference on a kobject of the module, which
            // stays in memory until `released` completes (its release frees nothing).
            if let Err(e) = unsafe { the_sysfs().kobject_put(NonNull::from(k)) } {
                log::error!("module {}: {e}", m.name);
            }
        }
        // Linux's mod_kobject_put: the memory may not go while anyone can still reach it.
        m.released.wait();
    }
    for &u in &m.uses {
        // SAFETY: the reference this module held keeps `u` listed and in memory until here.
        unsafe { u.get() }.refcnt.fetch_sub(1, Ordering::AcqRel);
    }
    let strings: Vec<Vec<u8>> = core::mem::take(&mut *m.strings.lock());
    drop(strings);
    // SAFETY: made by `Box::leak` in `new_module`; off the list, out of sysfs, every kobject
    // released: nothing else reaches it.
    drop(unsafe { Box::from_raw(p.0.as_ptr()) });
}
