//! End-to-end runner tests: real Docker, the real egress proxy, a real OpenSSH git server.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "e2e/support.rs"]
mod support;

#[path = "e2e/flows.rs"]
mod flows;

#[path = "e2e/processes.rs"]
mod processes;

#[path = "e2e/demo.rs"]
mod demo;
