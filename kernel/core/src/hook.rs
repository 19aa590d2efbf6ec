//! Hooks: how a service above the core asks to be called by it.
//!
//! The core never imports a service. Where core code must run a service's work (the timer
//! tick's, a context switch's, a CPU coming online), the service registers a plain function
//! once at start-up and the core calls it through a [`Hook`]. Calling an unset hook does
//! nothing, so the core works before the services are up.

use spin::Once;

/// A function the core calls at one well-defined point, set once by a service.
pub struct Hook<F: Copy> {
    f: Once<F>,
}

impl<F: Copy> Hook<F> {
    /// A hook with nothing registered yet.
    pub const fn new() -> Self {
        Self { f: Once::new() }
    }

    /// Registers `f`. A hook is set once: a second registration is refused and returns `false`.
    pub fn set(&self, f: F) -> bool {
        let mut set_now = false;
        self.f.call_once(|| {
            set_now = true;
            f
        });
        set_now
    }

    /// The registered function, if any.
    #[inline]
    pub fn get(&self) -> Option<F> {
        self.f.get().copied()
    }
}

impl<F: Copy> Default for Hook<F> {
    fn default() -> Self {
        Self::new()
    }
}
