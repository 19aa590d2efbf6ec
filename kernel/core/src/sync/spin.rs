//! Spin locks: [`SpinLock`] (preemption off while held) and [`IrqSpinLock`] (interrupts off too).
//!
//! Both wrap [`spin::Mutex`]. Holding a spin lock disables preemption, so the holder cannot be
//! switched out while another thread on the same CPU spins for the lock forever. The irq-safe
//! variant also disables local interrupts, so an interrupt handler that takes the same lock
//! cannot deadlock against the thread it interrupted.

use core::ops::{Deref, DerefMut};
use x86_64::instructions::interrupts;

use crate::cpu::{preempt_disable, preempt_enable};

/// Disables local interrupts until dropped, then restores the previous state (nests).
pub struct IrqSave {
    were_enabled: bool,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl IrqSave {
    /// Saves the interrupt flag and disables interrupts.
    #[inline]
    pub fn new() -> Self {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        Self {
            were_enabled,
            _not_send: core::marker::PhantomData,
        }
    }
}

impl IrqSave {
    /// Runs `f` with local interrupts as they were before this guard disabled them (on, if
    /// they were on), then disables them again: for a section that must sleep in the middle of
    /// a region that otherwise runs with interrupts off (a wait between two critical
    /// sections).
    pub fn restore_while<R>(&self, f: impl FnOnce() -> R) -> R {
        if !self.were_enabled {
            return f();
        }
        interrupts::enable();
        let r = f();
        interrupts::disable();
        r
    }
}

/// Whether local interrupts are enabled on the calling CPU.
#[inline]
pub fn interrupts_enabled() -> bool {
    interrupts::are_enabled()
}

impl Default for IrqSave {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IrqSave {
    #[inline]
    fn drop(&mut self) {
        if self.were_enabled {
            interrupts::enable();
        }
    }
}

/// A spin lock for data shared between threads (not interrupt handlers).
pub struct SpinLock<T: ?Sized> {
    inner: spin::Mutex<T>,
}

/// Access to a [`SpinLock`]'s data; unlocks and re-enables preemption when dropped.
pub struct SpinLockGuard<'a, T: ?Sized> {
    guard: core::mem::ManuallyDrop<spin::MutexGuard<'a, T>>,
}

impl<T> SpinLock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
        }
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// Spins until the lock is free, then takes it with preemption disabled.
    #[inline]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        preempt_disable();
        SpinLockGuard {
            guard: core::mem::ManuallyDrop::new(self.inner.lock()),
        }
    }

    /// Takes the lock if it is free (with preemption disabled, as [`Self::lock`]); `None`
    /// at once if some CPU holds it.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        preempt_disable();
        match self.inner.try_lock() {
            Some(guard) => Some(SpinLockGuard {
                guard: core::mem::ManuallyDrop::new(guard),
            }),
            None => {
                preempt_enable();
                None
            }
        }
    }
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for SpinLockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here; the lock is released before preemption returns.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.guard) };
        preempt_enable();
    }
}

/// A spin lock that may also be taken in interrupt handlers: interrupts stay off while held.
pub struct IrqSpinLock<T: ?Sized> {
    inner: spin::Mutex<T>,
}

/// Access to an [`IrqSpinLock`]'s data; unlocks, then restores interrupts and preemption.
pub struct IrqSpinLockGuard<'a, T: ?Sized> {
    guard: core::mem::ManuallyDrop<spin::MutexGuard<'a, T>>,
    irq: core::mem::ManuallyDrop<IrqSave>,
}

impl<T> IrqSpinLock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
        }
    }
}

impl<T: ?Sized> IrqSpinLock<T> {
    /// Disables interrupts and preemption, then spins until the lock is free.
    #[inline]
    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let irq = IrqSave::new();
        preempt_disable();
        IrqSpinLockGuard {
            guard: core::mem::ManuallyDrop::new(self.inner.lock()),
            irq: core::mem::ManuallyDrop::new(irq),
        }
    }

    /// Whether some CPU holds the lock (for diagnostics only: the answer may be stale).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Releases the lock without a guard.
    ///
    /// # Safety
    /// Only for the panic path: the holder must never touch the data again.
    pub unsafe fn force_unlock(&self) {
        // SAFETY: forwarded to the caller.
        unsafe { self.inner.force_unlock() }
    }
}

impl<T: ?Sized> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for IrqSpinLockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: each field is dropped exactly once, here, in order: unlock, then restore
        // interrupts, then allow preemption (which may switch threads, so it comes last).
        unsafe {
            core::mem::ManuallyDrop::drop(&mut self.guard);
            core::mem::ManuallyDrop::drop(&mut self.irq);
        }
        preempt_enable();
    }
}

#[crate::ktest]
fn irq_save_restore_while_brings_back_the_state_from_before_the_guard() {
    let was = interrupts_enabled();
    interrupts::enable();
    {
        let outer = IrqSave::new();
        assert!(!interrupts_enabled());
        assert!(
            outer.restore_while(interrupts_enabled),
            "on inside: on before"
        );
        assert!(!interrupts_enabled(), "off again after");
        let inner = IrqSave::new();
        assert!(
            !inner.restore_while(interrupts_enabled),
            "off inside: off before"
        );
        drop(inner);
        assert!(!interrupts_enabled());
    }
    assert!(interrupts_enabled());
    if !was {
        interrupts::disable();
    }
}
