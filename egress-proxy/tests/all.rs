//! The egress proxy's integration tests: one binary, every module under `suite/`.
// Test support code panics on broken fixtures by design; the lints that forbid it are for
// production code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod suite;
