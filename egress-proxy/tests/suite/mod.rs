//! Integration test modules.

mod support;

mod cli;
mod connect;
mod forward;
mod lifecycle;
mod limits;
mod rules;
mod slow_head;
mod smuggling;
mod tls;
