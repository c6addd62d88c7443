//! TLS interception for the egress proxy: a per-run CA, leaves minted per host, the acceptor
//! that terminates a client's TLS inside a CONNECT, and the verified upstream TLS client.
//!
//! Flow for an intercepted CONNECT: the policy judges `CONNECT host:443` (not a tunnel host →
//! intercept), the proxy answers 200, [`Interceptor::accept`] terminates TLS with the run's CA
//! (SNI must name the CONNECT host), HTTP/1.1 is served on the returned stream, each request
//! is judged with scheme HTTPS, and allowed requests go out over
//! [`UpstreamTls::connect_upstream`] on a connection to a validated address.

mod ca;
mod error;
mod intercept;
mod leaf_cache;
#[cfg(test)]
mod test_support;
mod upstream;

pub use ca::{DEFAULT_CA_LIFETIME, MAX_CA_LIFETIME, MIN_CA_LIFETIME, RunCa};
pub use error::TlsError;
pub use intercept::{DEFAULT_HANDSHAKE_TIMEOUT, Interceptor};
pub use leaf_cache::DEFAULT_LEAF_CACHE_CAPACITY;
pub use upstream::UpstreamTls;
