//! Paddock's runner: config, store, issue life cycle, claim, HTTP API, auth, audit, git, sandbox.
// `deny`, not `forbid`: git2's process-wide option setters are `unsafe fn`, and
// `git::hermetic` is the one module allowed to call them (each with a SAFETY note).
#![deny(unsafe_code)]

pub mod api;
pub mod auth;
pub mod bench;
pub mod bench_runner;
pub mod config;
pub mod demo;
pub mod git;
pub mod images;
pub mod lifecycle;
pub mod listener;
pub mod sandbox;
pub mod sandbox_cli;
pub mod server;
pub mod store;
pub mod vault;
pub mod worker;
