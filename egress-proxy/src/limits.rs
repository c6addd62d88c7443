//! Connection limits: a global cap and a per-client cap, released when a connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Who a connection counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A TCP peer address.
    Ip(IpAddr),
    /// One Unix socket listener (one run).
    Unix(usize),
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections` reached.
    Global,
    /// `limits.max_connections_per_client` reached.
    PerClient,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// Counts open client connections.
#[derive(Debug)]
pub struct ConnLimiter {
    max_total: usize,
    max_per_client: usize,
    counts: Mutex<Counts>,
}

/// Held for the life of one connection.
#[derive(Debug)]
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    key: ClientKey,
}

impl ConnLimiter {
    /// A limiter with the given caps.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(ConnLimiter {
            max_total,
            max_per_client,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Takes a slot for `key`, or says which limit refused it.
    pub fn try_acquire(self: &Arc<Self>, key: ClientKey) -> Result<ConnPermit, Refusal> {
        let mut c = self.counts.lock().map_err(|_| Refusal::Global)?;
        if c.total >= self.max_total {
            return Err(Refusal::Global);
        }
        let n = c.per_client.get(&key).copied().unwrap_or(0);
        if n >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        c.total += 1;
        c.per_client.insert(key.clone(), n + 1);
        Ok(ConnPermit {
            limiter: self.clone(),
            key,
        })
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        if let Ok(mut c) = self.limiter.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_client.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_client.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_release() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = l.try_acquire(ClientKey::Ip(a)).unwrap();
        let _p2 = l.try_acquire(ClientKey::Ip(a)).unwrap();
        assert_eq!(
            l.try_acquire(ClientKey::Ip(a)).unwrap_err(),
            Refusal::PerClient
        );
        let _p3 = l.try_acquire(ClientKey::Ip(b)).unwrap();
        assert_eq!(
            l.try_acquire(ClientKey::Ip(b)).unwrap_err(),
            Refusal::Global
        );
        drop(p1);
        let _p4 = l.try_acquire(ClientKey::Ip(a)).unwrap();
    }
}
