//! The services' self-tests: on-target tests of the core's threads and locks that need the
//! services (sleeping, several CPUs), written in safe code like every service. Tests of one
//! module's own behaviour stay beside it; tests that need raw memory live in the core's
//! `selftest`.

mod sched;
mod sync;
mod workqueue;
