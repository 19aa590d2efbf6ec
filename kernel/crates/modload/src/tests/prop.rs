//! Mutation property test.
