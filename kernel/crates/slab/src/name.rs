//! A cache's name (Linux's `kstrdup_const` / `kfree_const`): borrowed when its bytes live for
//! ever in the kernel image's read-only data ([`crate::Platform::is_kernel_rodata`]; the
//! choice is made by the registry's `kstrdup_const`), copied otherwise, so that a module's cache name dies with the cache (and whatever still names it:
//! an error, a listing), not with the module's memory.
//!
//! The copy is shared, not copied again: cloning a [`CacheName`] takes a reference on one
//! buffer, so an error or a listing can carry a cache's name without allocating (and so without
//! failing when memory is short) and without borrowing the cache.

use alloc::alloc::{Layout, alloc, dealloc};
use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering, fence};

/// A cache's name: a `&'static str` of the kernel image, or a shared copy freed with its last
/// holder. Dereferences to `str`.
pub struct CacheName(Repr);

enum Repr {
    /// Bytes that live for ever (the image's read-only data, or a Rust `'static` the caller
    /// vouches for with [`CacheName::from_static`]).
    Static(&'static str),
    /// A copy: a [`Shared`] header followed by `len` bytes of UTF-8.
    Shared(NonNull<Shared>),
}

/// The header of a copied name; the bytes follow it in the same allocation.
#[repr(C)]
struct Shared {
    refs: AtomicUsize,
    len: usize,
}

// SAFETY: the copied bytes are never written after creation, and the count is atomic: a name
// may be read, cloned and dropped from any thread.
unsafe impl Send for CacheName {}
// SAFETY: as above.
unsafe impl Sync for CacheName {}

/// The layout of a copy of `len` bytes and the offset of the bytes in it, or `None` if too
/// large.
fn shared_layout(len: usize) -> Option<(Layout, usize)> {
    let (layout, offset) = Layout::new::<Shared>()
        .extend(Layout::array::<u8>(len).ok()?)
        .ok()?;
    Some((layout.pad_to_align(), offset))
}

impl CacheName {
    /// `name`, borrowed, not copied (the `kstrdup_const` of a name in the image's read-only
    /// data: see `SlabAllocator`'s use of [`crate::Platform::is_kernel_rodata`]).
    ///
    /// # Safety
    /// The bytes of `name` stay valid and unchanged for as long as the kernel runs (as long
    /// as the process, on the host).
    pub unsafe fn borrow_forever(name: &str) -> Self {
        // SAFETY: caller contract: the bytes live for ever, unchanged.
        let forever: &'static str = unsafe { &*core::ptr::from_ref(name) };
        Self(Repr::Static(forever))
    }

    /// A name whose bytes live for ever (a literal of the caller's own image): never copied.
    /// Only for names that cannot go away (the kmalloc caches', the allocator's own, tests'
    /// expected values); a cache's creation copies any name the platform does not vouch for,
    /// a module's `'static` included.
    pub const fn from_static(name: &'static str) -> Self {
        Self(Repr::Static(name))
    }

    /// A shared copy of `name`; `None` if it cannot be allocated (out of memory is an error,
    /// never a panic).
    pub fn copy(name: &str) -> Option<Self> {
        let (layout, offset) = shared_layout(name.len())?;
        // SAFETY: the layout has a non-zero size (the header).
        let raw = unsafe { alloc(layout) };
        let header = NonNull::new(raw.cast::<Shared>())?;
        // SAFETY: the allocation holds a header then `name.len()` bytes at `offset`, all ours.
        unsafe {
            header.write(Shared {
                refs: AtomicUsize::new(1),
                len: name.len(),
            });
            core::ptr::copy_nonoverlapping(name.as_ptr(), raw.add(offset), name.len());
        }
        Some(Self(Repr::Shared(header)))
    }

    /// Whether the name is a copy (false: borrowed from bytes that live for ever).
    pub fn is_copy(&self) -> bool {
        matches!(self.0, Repr::Shared(_))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match self.0 {
            Repr::Static(s) => s,
            Repr::Shared(header) => {
                // SAFETY: a live copy (we hold a reference): the header is initialised and
                // the bytes after it are the UTF-8 copied from a `str` at creation, never
                // written since; they live while `self` does.
                unsafe {
                    let len = header.as_ref().len;
                    let offset = shared_layout(len).map_or(0, |(_, o)| o);
                    let bytes =
                        core::slice::from_raw_parts(header.cast::<u8>().as_ptr().add(offset), len);
                    core::str::from_utf8_unchecked(bytes)
                }
            }
        }
    }
}

impl Clone for CacheName {
    /// Another holder of the same name: a copy is shared (a reference taken), never copied
    /// again, so cloning allocates nothing and cannot fail.
    fn clone(&self) -> Self {
        if let Repr::Shared(header) = self.0 {
            // SAFETY: a live copy (we hold a reference).
            unsafe { header.as_ref() }
                .refs
                .fetch_add(1, Ordering::Relaxed);
        }
        Self(match self.0 {
            Repr::Static(s) => Repr::Static(s),
            Repr::Shared(h) => Repr::Shared(h),
        })
    }
}

impl Drop for CacheName {
    fn drop(&mut self) {
        let Repr::Shared(header) = self.0 else {
            return;
        };
        // SAFETY: a live copy: we hold one of its references.
        let (refs, len) = unsafe { (&header.as_ref().refs, header.as_ref().len) };
        if refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other holder's reads happen before the free (as `Arc`).
        fence(Ordering::Acquire);
        if let Some((layout, _)) = shared_layout(len) {
            // SAFETY: the last reference: allocated in `copy` with this layout, used by nobody.
            unsafe { dealloc(header.as_ptr().cast(), layout) };
        }
    }
}

impl Deref for CacheName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for CacheName {
    /// [`CacheName::from_static`].
    fn from(name: &'static str) -> Self {
        Self::from_static(name)
    }
}

impl PartialEq for CacheName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for CacheName {}

impl PartialEq<str> for CacheName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CacheName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_shared_by_its_clones_and_outlives_the_original() {
        let mut buf = alloc::string::String::from("module-cache");
        let name = CacheName::copy(&buf).unwrap();
        buf.clear();
        buf.push_str("overwritten!");
        let other = name.clone();
        drop(name);
        assert_eq!(other, "module-cache");
        assert!(other.is_copy());
        assert!(!CacheName::from_static("x").is_copy());
        assert_eq!(CacheName::copy("").unwrap(), "");
    }
}
