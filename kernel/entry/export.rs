//! The kernel's `extern "C"` surface for loadable modules: every function a module can call,
//! and the export table the loader links modules against ([`SYMBOLS`], Linux's `__ksymtab`).
//!
//! Each function is a thin `#[unsafe(no_mangle)] extern "C"` wrapper over the safe APIs of
//! the services and the core, with the C types of `include/sheaf/module.h`, which declares
//! exactly these functions (a test compares the two lists). Keeping the whole surface in one
//! file of the top layer means the ABI can be read, reviewed and versioned in one place, and
//! that neither the core nor the services take a C shape by accident.
//!
//! The functions are `unsafe extern "C"`: their callers are C (or Rust through `kmod`), and
//! each states what it needs of its pointers. Bad pointers that can be told apart cheaply are
//! refused with a message rather than trusted: `kfree` and `kmem_cache_free` of something that
//! is not an object (the slab allocator checks the page owner), `kmem_cache_destroy` of
//! something that is not a cache, `try_module_get`/`module_put` of something that is not a
//! module.

use core::ffi::{CStr, VaList, c_char, c_int, c_uint, c_void};
use core::fmt::Write;
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicU8, Ordering};

use kcore::memory::kmalloc::{KernelPlatform, slab};
use kcore::module::{KernelSymbol, SymbolAddress};
use slab::{Gfp, KmemCache, KmemCacheArgs, KmemCacheHandle, SlabFlags};

/// An entry of [`SYMBOLS`] for a function or static of this file (Linux's `EXPORT_SYMBOL`).
macro_rules! export_symbol {
    ($name:ident) => {
        KernelSymbol {
            name: stringify!($name),
            address: SymbolAddress($name as *const ()),
            gpl_only: false,
        }
    };
}

/// An entry of [`SYMBOLS`], for modules with a GPL-compatible license only (Linux's
/// `EXPORT_SYMBOL_GPL`).
#[allow(unused_macros)]
macro_rules! export_symbol_gpl {
    ($name:ident) => {
        KernelSymbol {
            name: stringify!($name),
            address: SymbolAddress($name as *const ()),
            gpl_only: true,
        }
    };
}

/// The kernel's export table, registered with the loader at boot.
pub static SYMBOLS: [KernelSymbol; 10] = [
    export_symbol!(printk),
    export_symbol!(kmalloc),
    export_symbol!(kzalloc),
    export_symbol!(kfree),
    export_symbol!(kmem_cache_create),
    export_symbol!(kmem_cache_alloc),
    export_symbol!(kmem_cache_free),
    export_symbol!(kmem_cache_destroy),
    export_symbol!(try_module_get),
    export_symbol!(module_put),
];

/// Registers [`SYMBOLS`] with the loader, and sets the console log level from the command
/// line as Linux does (`loglevel=N`, `debug` for 10, `quiet` for 4).
pub fn init() {
    kcore::module::set_kernel_symbols(&SYMBOLS);
    let level = match (
        kernel::cmdline::get("loglevel"),
        kernel::cmdline::get("debug"),
        kernel::cmdline::get("quiet"),
    ) {
        (Some(n), _, _) => n.parse().ok(),
        (None, Some(_), _) => Some(10),
        (None, None, Some(_)) => Some(4),
        _ => None,
    };
    match level {
        Some(l) => {
            kcore::console::set_loglevel(l);
        }
        None if kernel::cmdline::get("loglevel").is_some() => {
            log::warn!("loglevel: not a number: ignored");
        }
        None => {}
    }
}

// ---- printk ----

/// The longest message one `printk` prints (Linux's `LOG_LINE_MAX` is 1024 less a header);
/// the rest is cut, and the count returned is still the full length.
const PRINTK_MAX: usize = 1024;

/// Linux's `default_message_loglevel`: the level of a message without a `KERN_*` prefix.
const DEFAULT_MESSAGE_LOGLEVEL: u8 = 4;

/// The level of the last message, which a `KERN_CONT` message continues.
static LAST_LEVEL: AtomicU8 = AtomicU8::new(DEFAULT_MESSAGE_LOGLEVEL);

/// A message's level as a number (0 `KERN_EMERG` to 7 `KERN_DEBUG`).
fn level_number(level: printf::Level) -> u8 {
    use printf::Level as L;
    match level {
        L::Emerg => 0,
        L::Alert => 1,
        L::Crit => 2,
        L::Err => 3,
        L::Warning => 4,
        L::Notice => 5,
        L::Info => 6,
        L::Debug => 7,
        L::Default => DEFAULT_MESSAGE_LOGLEVEL,
        L::Cont => LAST_LEVEL.load(Ordering::Relaxed),
    }
}

/// A message being formatted, on the stack.
struct Line {
    buf: [u8; PRINTK_MAX],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(PRINTK_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// The arguments of a `printk`, read from its C `va_list` in the order the format asks.
struct VaArgs<'a, 'f>(&'a mut VaList<'f>);

impl printf::Args for VaArgs<'_, '_> {
    fn next_u32(&mut self) -> u32 {
        // SAFETY: the format (checked by gcc's `format(printf)` attribute in the header)
        // says the next argument is an int; reading it as one is what C's va_arg does.
        unsafe { self.0.next_arg::<u32>() }
    }

    fn next_u64(&mut self) -> u64 {
        // SAFETY: as above, a 64-bit argument.
        unsafe { self.0.next_arg::<u64>() }
    }

    fn next_ptr(&mut self) -> usize {
        // SAFETY: as above, a pointer.
        unsafe { self.0.next_arg::<usize>() }
    }

    fn with_str(&mut self, addr: usize, out: &mut dyn FnMut(&[u8])) {
        // SAFETY: `%s` takes a NUL-terminated string (caller contract of `printk`); it is read
        // up to its NUL or `PRINTK_MAX` bytes, whichever comes first.
        let bytes = unsafe {
            let p = addr as *const u8;
            let mut n = 0;
            while n < PRINTK_MAX && *p.add(n) != 0 {
                n += 1;
            }
            core::slice::from_raw_parts(p, n)
        };
        out(bytes);
    }
}

/// Prints a message to the console (Linux's `printk`): an optional `KERN_*` level prefix,
/// then a format with `%s %c %d %i %u %ld %lu %lld %llu %x %lx %llx %p %zu %%`, widths and
/// the `-` and `0` flags (the `printf` crate). The message reaches the console if its level is
/// below the console log level (`kcore::console::loglevel`: all but `KERN_DEBUG` by
/// default). Returns the message's length.
///
/// # Safety
/// `fmt` is a NUL-terminated string (or null: nothing is printed), and the arguments are what
/// its conversions say, as for C's `printf`; each `%s` a NUL-terminated string or null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn printk(fmt: *const c_char, mut args: ...) -> c_int {
    if fmt.is_null() {
        return 0;
    }
    // SAFETY: NUL-terminated (caller contract).
    let fmt = unsafe { CStr::from_ptr(fmt) }.to_bytes();
    let (level, body) = printf::split_level(fmt);
    let level = level_number(level);
    LAST_LEVEL.store(level, Ordering::Relaxed);
    let mut line = Line {
        buf: [0; PRINTK_MAX],
        len: 0,
    };
    let n = printf::format(body, &mut VaArgs(&mut args), &mut line);
    if level < kcore::console::loglevel() {
        kcore::console::write_bytes(&line.buf[..line.len]);
    }
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

// ---- Memory ----

/// Allocates `size` bytes (Linux's `kmalloc`): null when out of memory or for a size no
/// cache or page allocation serves.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc(size: usize, flags: c_uint) -> *mut c_void {
    slab()
        .kmalloc(size, Gfp::from_bits_truncate(flags))
        .map_or(null_mut(), |p| p.as_ptr().cast())
}

/// Allocates `size` zeroed bytes (Linux's `kzalloc`).
#[unsafe(no_mangle)]
pub extern "C" fn kzalloc(size: usize, flags: c_uint) -> *mut c_void {
    slab()
        .kzalloc(size, Gfp::from_bits_truncate(flags))
        .map_or(null_mut(), |p| p.as_ptr().cast())
}

/// Frees what `kmalloc` gave (Linux's `kfree`); null does nothing. A pointer that is not an
/// allocation, or one already freed, is refused with a report (the slab allocator checks
/// the page owner and the object boundary) and nothing is freed.
///
/// # Safety
/// `objp` is null or was returned by `kmalloc`/`kzalloc` and is not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kfree(objp: *const c_void) {
    if objp.is_null() {
        return;
    }
    // SAFETY: caller contract; bad pointers are reported by the allocator's checks.
    if let Err(report) = unsafe { slab().kfree(objp.cast_mut().cast()) } {
        log::error!("kfree({objp:p}) refused: {report}");
    }
}

/// Creates a slab cache (Linux's `kmem_cache_create`): null (and a message) on error.
///
/// # Safety
/// `name` is a NUL-terminated string; `ctor`, if any, a function that may be called on every
/// new object until the cache is destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_create(
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: c_uint,
    ctor: Option<slab::Ctor>,
) -> *mut c_void {
    if name.is_null() {
        log::error!("kmem_cache_create: no name");
        return null_mut();
    }
    // SAFETY: NUL-terminated (caller contract).
    let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
        log::error!("kmem_cache_create: the name is not UTF-8");
        return null_mut();
    };
    let args = KmemCacheArgs {
        align: align as usize,
        ctor,
        ..Default::default()
    };
    match slab().kmem_cache_create(
        name,
        size as usize,
        args,
        SlabFlags::from_bits_truncate(flags),
    ) {
        Ok(handle) => core::ptr::from_ref(handle.leak()).cast_mut().cast(),
        Err(e) => {
            log::error!("kmem_cache_create({name}): {e:?}");
            null_mut()
        }
    }
}

/// Allocates an object of cache `s` (Linux's `kmem_cache_alloc`): null when out of memory.
///
/// # Safety
/// `s` was returned by `kmem_cache_create` and not destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_alloc(s: *mut c_void, flags: c_uint) -> *mut c_void {
    if s.is_null() {
        return null_mut();
    }
    // SAFETY: a live cache (caller contract).
    let cache = unsafe { &*s.cast::<KmemCache<KernelPlatform>>() };
    cache
        .alloc(Gfp::from_bits_truncate(flags))
        .map_or(null_mut(), |p| p.as_ptr().cast())
}

/// Frees an object of cache `s` (Linux's `kmem_cache_free`). An object of another cache, or
/// not an object, is refused with a report and nothing is freed.
///
/// # Safety
/// `s` was returned by `kmem_cache_create` and not destroyed; `objp` is not used after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_free(s: *mut c_void, objp: *mut c_void) {
    let Some(obj) = NonNull::new(objp.cast::<u8>()) else {
        return;
    };
    if s.is_null() {
        log::error!("kmem_cache_free({objp:p}): no cache");
        return;
    }
    // SAFETY: a live cache (caller contract).
    let cache = unsafe { &*s.cast::<KmemCache<KernelPlatform>>() };
    // SAFETY: caller contract; the cache checks that `obj` is one of its objects.
    if let Err(report) = unsafe { cache.free(obj) } {
        log::error!(
            "kmem_cache_free({}, {objp:p}) refused: {report}",
            cache.name()
        );
    }
}

/// Destroys cache `s` (Linux's `kmem_cache_destroy`); null does nothing. A pointer that is not
/// a cache is refused with a message; a cache with objects left is reported and kept.
///
/// # Safety
/// No other user of the cache remains, and no object of it is freed during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_destroy(s: *mut c_void) {
    if s.is_null() {
        return;
    }
    let Some(cache) = slab().cache_at(s) else {
        log::error!("kmem_cache_destroy({s:p}): not a cache");
        return;
    };
    // SAFETY: a cache of this allocator (checked), whose handle the module gave up with
    // `leak` in `kmem_cache_create` and now hands back (caller contract: no other user).
    let handle = unsafe { KmemCacheHandle::from_ref(cache) };
    // SAFETY: caller contract (no other use of the cache during or after the call).
    if let Err(e) = unsafe { slab().kmem_cache_destroy(handle) } {
        log::error!("kmem_cache_destroy: {e:?}");
    }
}

// ---- Modules ----

/// Takes a reference on `module` (Linux's `try_module_get`): false if it is going away.
#[unsafe(no_mangle)]
pub extern "C" fn try_module_get(module: *const c_void) -> bool {
    kcore::module::try_module_get(module as usize)
}

/// Drops a reference `try_module_get` took (Linux's `module_put`).
#[unsafe(no_mangle)]
pub extern "C" fn module_put(module: *const c_void) {
    kcore::module::module_put(module as usize)
}
