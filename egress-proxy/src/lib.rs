//! paddock-egress: the forward proxy that is a sandbox's only way out.
//!
//! Start one in-process with [`Proxy::start`] on a [`config::Validated`] configuration (from
//! [`Config::load`] or [`Config::from_toml`] + [`Config::validate`]); the returned
//! [`ProxyHandle`] tells the bound addresses and shuts the proxy down gracefully.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod body;
pub mod config;
pub mod dial;
pub mod drive;
pub mod framing;
pub mod limits;
pub mod metrics;
pub mod prehead;
pub mod proxy;
pub mod reply;
pub mod server;
pub mod tls;
pub mod tunnel;

pub use config::{Config, ConfigError, Validated};
pub use server::{Proxy, ProxyHandle, StartError};
