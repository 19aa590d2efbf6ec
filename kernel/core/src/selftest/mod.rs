//! The core's self-tests and benchmarks: on-target tests and shell workloads that need raw
//! memory (deliberate corruption, raw frees, another allocator to compare with), which is why
//! they live in the core and not with the services' tests (`kernel/src/selftest`).

pub mod kmalloc;
