//! Token-bucket rate limits per endpoint category and client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Endpoint categories with separate budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Login and failed credential checks (strict: brute-force protection).
    Auth,
    /// Authenticated API calls.
    Api,
    /// The public feedback ingress.
    Feedback,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets keyed by category and client (IPv6 clients by /64, which one party usually holds).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(Category, IpAddr), Bucket>>,
}

const MAX_BUCKETS: usize = 100_000;

/// The key for a client address: IPv4 as is, IPv6 cut to its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & (u128::MAX << 64);
                IpAddr::V6(bits.into())
            }
        },
        v4 => v4,
    }
}

impl RateLimiter {
    /// Takes one token for `ip` in `cat`, whose budget is `per_minute` (burst of the same size).
    /// `per_minute == 0` means unlimited. Returns false when the client is over budget.
    pub fn allow(&self, cat: Category, ip: IpAddr, per_minute: u32) -> bool {
        if per_minute == 0 {
            return true;
        }
        let cap = f64::from(per_minute);
        let now = Instant::now();
        let Ok(mut map) = self.buckets.lock() else {
            return false;
        };
        if map.len() >= MAX_BUCKETS {
            // Forget clients whose bucket has refilled; they lose nothing by it.
            map.retain(|_, b| {
                b.tokens + now.duration_since(b.last).as_secs_f64() * cap / 60.0 < cap
            });
        }
        let b = map.entry((cat, client_key(ip))).or_insert(Bucket {
            tokens: cap,
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * cap / 60.0).min(cap);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_per_client_and_category() {
        let l = RateLimiter::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..5 {
            assert!(l.allow(Category::Feedback, a, 5));
        }
        assert!(!l.allow(Category::Feedback, a, 5));
        assert!(
            l.allow(Category::Feedback, b, 5),
            "another client is unaffected"
        );
        assert!(
            l.allow(Category::Auth, a, 5),
            "another category is unaffected"
        );
        assert!(l.allow(Category::Feedback, a, 0), "0 = unlimited");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let l = RateLimiter::default();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.allow(Category::Auth, a, 1));
        assert!(!l.allow(Category::Auth, b, 1));
        assert!(l.allow(Category::Auth, c, 1));
    }
}
