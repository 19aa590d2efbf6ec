//! Host tests: synthetic objects for each relocation type and refusal, the example modules
//! built by `tools/modbuild` (checked-in fixtures, `cargo modbuild fixtures`), and a property
//! test that mutates them.

mod builder;
mod fake;
mod fixtures;
mod metadata;
mod prop;
mod raw;
mod refusals;
mod relocs;
