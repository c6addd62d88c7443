//! Integration tests; each runs against SQLite and PostgreSQL.

mod api;
mod auth;
mod cli;
mod feedback;
pub mod http;
mod store;
pub mod support;
