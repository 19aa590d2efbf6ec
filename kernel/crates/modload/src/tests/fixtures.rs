//! The example modules (fixtures built by `cargo modbuild fixtures`).
