//! Integration tests; each runs against SQLite and PostgreSQL.

mod api;
mod auth;
mod cli;
mod egress_chain;
mod feedback;
mod git;
pub mod http;
mod repos;
mod runner_api;
mod sandbox;
mod sandbox_run;
mod store;
pub mod support;
mod vault;
