//! Integration suite: support code, escape attempts, agent lifecycle, relay.
mod escapes;
mod lifecycle;
mod relay;
mod support;
