//! The kernel's `extern "C"` surface for loadable modules (reserved; empty until the module
//! loader lands).
//!
//! Modules, in Rust or C, are linked at load time against Linux-shaped names (`kmalloc`,
//! `kfree`, `kmem_cache_create`, `queue_work`, `kobject_put`, ...). Every such function will be
//! defined here, and only here, as a thin `#[unsafe(no_mangle)] extern "C"` wrapper over the
//! safe APIs of the services and the core, with the C types of `include/`. Keeping the whole
//! surface in one file of the top layer means the ABI can be read, reviewed and versioned in
//! one place, and that neither the core nor the services take a C shape by accident.
