//! Malformed modules.
