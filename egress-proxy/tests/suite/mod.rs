//! Integration test modules.

mod runs_support;
mod support;

mod broker;
mod cli;
mod connect;
mod forward;
mod lifecycle;
mod limits;
mod rules;
mod runs;
mod slow_head;
mod smuggling;
mod tls;
