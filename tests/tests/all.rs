//! The hostile-agent suite: one test binary, modules under `suite/`.
// Test code: a failed unwrap is a failed test (clippy.toml allows it inside #[test] fns only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod suite;
