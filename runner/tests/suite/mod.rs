//! Integration tests; each runs against SQLite and PostgreSQL.

mod api;
mod auth;
mod cli;
mod feedback;
mod git;
pub mod http;
mod sandbox;
mod sandbox_run;
mod store;
pub mod support;
