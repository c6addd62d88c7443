//! paddock-egress: the forward proxy that is a sandbox's only way out.
//!
//! Start one in-process with [`Proxy::start`] on a [`config::Validated`] configuration (from
//! [`Config::load`] or [`Config::from_toml`] + [`Config::validate`]); the returned
//! [`ProxyHandle`] tells the bound addresses and shuts the proxy down gracefully.
//!
//! The TCP listener and `listen_unix` serve the default policy. With `[control]`, the runner
//! registers runs over a control socket ([`control`]); each run gets its own socket, policy,
//! credential handles, budget and CA ([`run::Run`]). CONNECTs to hosts that are not
//! pass-through tunnel hosts are intercepted with the run's CA ([`tls`]) so that every request
//! inside is judged and brokered like a plain one.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod body;
pub mod config;
pub mod control;
pub mod credentials;
pub mod dial;
pub mod drive;
pub mod framing;
pub mod limits;
pub mod method_override;
pub mod metrics;
pub mod prehead;
pub mod proxy;
pub mod reply;
pub mod run;
pub mod server;
pub mod tls;
pub mod tunnel;

pub use config::{Config, ConfigError, Validated};
pub use server::{Proxy, ProxyHandle, StartError};
