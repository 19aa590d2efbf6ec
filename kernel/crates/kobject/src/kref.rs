//! [`Kref`]: a reference count with Linux's `refcount_t` rules (`include/linux/refcount.h`).
//!
//! A plain counter turns misuse into memory corruption: one `put` too many frees an object
//! that is still used, an increment on a freed object resurrects it, and an overflow wraps to
//! zero and frees it early. `refcount_t` turns each of these into a *leak* instead: the count
//! jumps to [`REFCOUNT_SATURATED`], far from both zero and the overflow point, and stays there,
//! so the object is never released again; the misuse is reported. A leaked object is a bug
//! the kernel survives; a use after free is not.
//!
//! ```text
//!   0 ──get──► saturated (AddOnZero: a get on a released object)
//!   1 ──put──► 0 (the caller runs the release)
//!   0 ──put──► saturated (Underflow: a put too many)
//!   i32::MAX ──get──► saturated (Overflow)
//!   saturated ──get/put──► saturated (stays: the object is leaked on purpose)
//! ```

use crate::sync::{AtomicU64, Ordering};

/// The value a misused count is pinned at (Linux's `REFCOUNT_SATURATED`, `INT_MIN / 2` read as
/// unsigned): half-way between the overflow point and zero in both directions.
pub const REFCOUNT_SATURATED: u64 = 0xc000_0000;

/// The largest count a `get` may produce (Linux's `REFCOUNT_MAX`, `INT_MAX`).
pub const REFCOUNT_MAX: u64 = i32::MAX as u64;

/// A misuse of a reference count, caught and turned into a leak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefError {
    /// A `get` found the count at zero: the object was (being) released; use after free.
    AddOnZero,
    /// A `put` found the count at zero: one `put` too many.
    Underflow,
    /// A `get` would pass [`REFCOUNT_MAX`]: the count overflowed.
    Overflow,
}

impl core::fmt::Display for RefError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::AddOnZero => "addition on 0; use-after-free",
            Self::Underflow => "underflow; use-after-free",
            Self::Overflow => "saturated; leaking memory",
        })
    }
}

/// Is the count in the saturated region (at or past `REFCOUNT_MAX + 1`)?
fn saturated(v: u64) -> bool {
    v > REFCOUNT_MAX
}

/// A reference count (Linux's `struct kref`): starts at 1, owned by whoever created the
/// object; the `put` that drops it to zero tells its caller to release the object.
pub struct Kref {
    count: AtomicU64,
}

impl Kref {
    /// A count of 1 (Linux's `kref_init`). `const`, so a `Kref` can live in a `static`.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            count: AtomicU64::new(1),
        }
    }

    /// A count of 1 (Linux's `kref_init`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            count: AtomicU64::new(1),
        }
    }

    /// The current count (for reports and tests only: it may change at once).
    pub fn read(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Is the count pinned at [`REFCOUNT_SATURATED`] by an earlier misuse?
    pub fn is_saturated(&self) -> bool {
        saturated(self.read())
    }

    /// Sets the count back to 1 (Linux's `kref_init` on a reused object). Only for an object
    /// nobody else can reach.
    pub fn reset(&self) {
        self.count.store(1, Ordering::Relaxed);
    }

    /// Takes a reference (Linux's `kref_get`, `refcount_inc`). A count at zero or at the
    /// maximum is saturated and reported.
    pub fn get(&self) -> Result<(), RefError> {
        let mut cur = self.count.load(Ordering::Relaxed);
        loop {
            let (new, err) = match cur {
                0 => (REFCOUNT_SATURATED, Some(RefError::AddOnZero)),
                v if saturated(v) => return Ok(()),
                REFCOUNT_MAX => (REFCOUNT_SATURATED, Some(RefError::Overflow)),
                v => (v + 1, None),
            };
            match self
                .count
                .compare_exchange(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return err.map_or(Ok(()), Err),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes a reference unless the count is zero (Linux's `kref_get_unless_zero`): how a
    /// lookup structure that still lists an object being released (a sysfs directory)
    /// refuses it. `Ok(false)`: the count was zero, nothing changed.
    pub fn get_unless_zero(&self) -> Result<bool, RefError> {
        let mut cur = self.count.load(Ordering::Relaxed);
        loop {
            let (new, err) = match cur {
                0 => return Ok(false),
                v if saturated(v) => return Ok(true),
                REFCOUNT_MAX => (REFCOUNT_SATURATED, Some(RefError::Overflow)),
                v => (v + 1, None),
            };
            match self
                .count
                .compare_exchange(cur, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return err.map_or(Ok(true), Err),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Drops a reference (Linux's `kref_put`, `refcount_dec_and_test`): `Ok(true)` when this
    /// was the last one and the caller must release the object. A saturated count never
    /// reaches zero (the object is leaked); a count already at zero is saturated and reported.
    pub fn put(&self) -> Result<bool, RefError> {
        let mut cur = self.count.load(Ordering::Relaxed);
        loop {
            let (new, err) = match cur {
                0 => (REFCOUNT_SATURATED, Some(RefError::Underflow)),
                v if saturated(v) => return Ok(false),
                v => (v - 1, None),
            };
            // Release: everything this holder did with the object happens before the release
            // that the last holder runs (which acquires below).
            match self
                .count
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return err.map_or(Ok(new == 0), Err),
                Err(actual) => cur = actual,
            }
        }
    }
}

impl Default for Kref {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Kref {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Kref({})", self.read())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_down_to_the_release() {
        let k = Kref::new();
        k.get().unwrap();
        k.get().unwrap();
        assert_eq!(k.read(), 3);
        assert_eq!(k.put(), Ok(false));
        assert_eq!(k.put(), Ok(false));
        assert_eq!(k.put(), Ok(true));
        assert_eq!(k.read(), 0);
    }

    #[test]
    fn a_put_too_many_saturates_instead_of_wrapping() {
        let k = Kref::new();
        assert_eq!(k.put(), Ok(true));
        assert_eq!(k.put(), Err(RefError::Underflow));
        assert!(k.is_saturated());
        // Saturated: no later put releases it again.
        for _ in 0..10 {
            assert_eq!(k.put(), Ok(false));
        }
        assert!(k.is_saturated());
    }

    #[test]
    fn a_get_on_zero_saturates_and_reports() {
        let k = Kref::new();
        assert_eq!(k.put(), Ok(true));
        assert_eq!(k.get(), Err(RefError::AddOnZero));
        assert_eq!(k.put(), Ok(false), "never released twice");
    }

    #[test]
    fn get_unless_zero_refuses_a_released_count() {
        let k = Kref::new();
        assert_eq!(k.get_unless_zero(), Ok(true));
        assert_eq!(k.put(), Ok(false));
        assert_eq!(k.put(), Ok(true));
        assert_eq!(k.get_unless_zero(), Ok(false));
        assert_eq!(k.read(), 0, "unchanged");
    }

    #[test]
    fn overflow_saturates() {
        let k = Kref::new();
        k.count.store(REFCOUNT_MAX, Ordering::Relaxed);
        assert_eq!(k.get(), Err(RefError::Overflow));
        assert!(k.is_saturated());
        assert_eq!(k.put(), Ok(false));
    }
}
