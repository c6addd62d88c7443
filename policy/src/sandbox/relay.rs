//! The loopback relay: the agent's only way out, from a local TCP port to the run's proxy socket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// Where paddock-init listens and where it forwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Loopback address the agent's `HTTP_PROXY` points at.
    pub listen: SocketAddr,
    /// The run's proxy socket inside the container (bind-mounted, read-only directory).
    pub proxy_socket: String,
    /// Concurrent relayed connections; more are refused until one ends.
    pub max_connections: u32,
}

/// Port of the relay inside the container.
pub const RELAY_PORT: u16 = 3128;
/// Path of the run's proxy socket inside the container.
pub const PROXY_SOCKET: &str = "/paddock/proxy.sock";

impl RelaySettings {
    /// The agent's relay.
    #[must_use]
    pub fn agent_default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), RELAY_PORT),
            proxy_socket: PROXY_SOCKET.into(),
            max_connections: 256,
        }
    }

    /// The proxy URL tools inside the sandbox use.
    #[must_use]
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Environment the agent needs to reach the proxy: every spelling common tools read.
    #[must_use]
    pub fn proxy_environment(&self) -> Vec<(String, String)> {
        let url = self.proxy_url();
        [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "npm_config_proxy",
            "npm_config_https_proxy",
            "PIP_PROXY",
        ]
        .into_iter()
        .map(|k| (k.to_owned(), url.clone()))
        .chain([
            ("NO_PROXY".to_owned(), String::new()),
            ("no_proxy".to_owned(), String::new()),
        ])
        .collect()
    }
}
