//! Paddock's runner: config, store, issue life cycle, claim, HTTP API, auth, audit.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod bench;
pub mod config;
pub mod lifecycle;
pub mod listener;
pub mod server;
pub mod store;
