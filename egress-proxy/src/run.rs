//! One run as the proxy serves it: its policy, credential handles, budget, CA and totals.
//!
//! A run is chosen by the socket a connection arrived on, never by anything the client says.
//! The TCP listener (and `listen_unix`) serve the default run built from the configuration.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use paddock_policy::control::{HostTotals, RunTotals};
use paddock_policy::{BudgetRule, BudgetState, EgressPolicy, HandleSet, Host, UsageReport};
use tokio_util::sync::CancellationToken;

use crate::tls::Interceptor;

/// Per-host lines kept in a run's totals; further hosts are summed into the run line only.
pub const MAX_HOST_LINES: usize = 64;

/// Denial audit lines a run may write at once before they are rate-limited.
pub const DENIAL_LINES_BURST: u32 = 64;
/// Denial audit lines a run may write per second once its burst is spent.
pub const DENIAL_LINES_PER_SEC: u32 = 8;

/// A token bucket for one run's denial audit lines: a run that floods denials cannot push
/// every other run's lines out of a rotated log. Suppressed lines are counted, and the next
/// line written says how many went before it.
#[derive(Debug)]
struct DenialLines {
    tokens: f64,
    at: tokio::time::Instant,
    pending: u64,
}

impl DenialLines {
    fn new() -> DenialLines {
        DenialLines {
            tokens: f64::from(DENIAL_LINES_BURST),
            at: tokio::time::Instant::now(),
            pending: 0,
        }
    }

    /// `Some(suppressed before this one)` when the line may be written, `None` when it is muted.
    fn take(&mut self) -> Option<u64> {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * f64::from(DENIAL_LINES_PER_SEC);
        self.tokens = (self.tokens + refill).min(f64::from(DENIAL_LINES_BURST));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.pending))
        } else {
            self.pending = self.pending.saturating_add(1);
            None
        }
    }
}

/// What a run has done, beside its budget.
#[derive(Debug, Default)]
struct Stats {
    denied: u64,
    audit_suppressed: u64,
    bytes_up: u64,
    bytes_down: u64,
    security_events: u64,
    budget_exhausted: Option<&'static str>,
    hosts: Vec<HostTotals>,
}

impl Stats {
    fn host(&mut self, host: &str) -> Option<&mut HostTotals> {
        if let Some(i) = self.hosts.iter().position(|h| h.host == host) {
            return self.hosts.get_mut(i);
        }
        if self.hosts.len() >= MAX_HOST_LINES {
            return None;
        }
        self.hosts.push(HostTotals {
            host: host.to_owned(),
            ..HostTotals::default()
        });
        self.hosts.last_mut()
    }
}

/// One run's serving state.
pub struct Run {
    /// The run id; `None` for the default run of the TCP listener.
    pub id: Option<Arc<str>>,
    /// The run's egress policy.
    pub policy: EgressPolicy,
    /// The run's credential handles (empty for the default run).
    pub handles: HandleSet,
    /// Terminates TLS inside CONNECT with the run's CA; `None` disables interception.
    pub interceptor: Option<Interceptor>,
    /// Cancelled when the run is revoked (or the proxy stops): every connection, intercepted
    /// stream and tunnel of the run ends at once.
    pub cancel: CancellationToken,
    budget: Mutex<BudgetState>,
    stats: Mutex<Stats>,
    denial_lines: Mutex<DenialLines>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("id", &self.id)
            .field("handles", &self.handles.len())
            .finish_non_exhaustive()
    }
}

// Counters are consistent after every statement, so a poisoned lock is safe to keep using.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Run {
    /// A run with its pieces; `cancel` should be a child of the proxy's kill token.
    pub fn new(
        id: Option<Arc<str>>,
        policy: EgressPolicy,
        handles: HandleSet,
        budget: BudgetState,
        interceptor: Option<Interceptor>,
        cancel: CancellationToken,
    ) -> Run {
        Run {
            id,
            policy,
            handles,
            interceptor,
            cancel,
            budget: Mutex::new(budget),
            stats: Mutex::new(Stats::default()),
            denial_lines: Mutex::new(DenialLines::new()),
        }
    }

    /// Admits one request (or tunnel) to `host` against the budget, counting it.
    pub fn admit(&self, host: &Host) -> Result<(), BudgetRule> {
        let result = lock(&self.budget).admit(host);
        let mut stats = lock(&self.stats);
        match result {
            Ok(()) => {
                if let Some(h) = stats.host(&host.to_string()) {
                    h.requests = h.requests.saturating_add(1);
                }
            }
            Err(rule) => {
                stats.budget_exhausted.get_or_insert(rule.name());
            }
        }
        result
    }

    /// True when `host`'s responses are metered for tokens.
    pub fn is_token_host(&self, host: &Host) -> bool {
        lock(&self.budget).is_token_host(host)
    }

    /// Counts a refused request.
    pub fn note_denied(&self, host: &str) {
        let mut stats = lock(&self.stats);
        stats.denied = stats.denied.saturating_add(1);
        if !host.is_empty()
            && let Some(h) = stats.host(host)
        {
            h.denied = h.denied.saturating_add(1);
        }
    }

    /// Whether a denial's audit line may be written: `Some(n)` with the number of this run's
    /// denial lines muted since its last written one, `None` when this one is muted (counted in
    /// the totals as `audit_suppressed`). Security events never go through this gate.
    pub fn denial_line(&self) -> Option<u64> {
        let taken = lock(&self.denial_lines).take();
        if taken.is_none() {
            let mut stats = lock(&self.stats);
            stats.audit_suppressed = stats.audit_suppressed.saturating_add(1);
        }
        taken
    }

    /// Counts a security event (credential handle misuse, a real secret in a request).
    pub fn note_security_event(&self) {
        let mut stats = lock(&self.stats);
        stats.security_events = stats.security_events.saturating_add(1);
    }

    /// Records a finished exchange or tunnel: bytes both ways and, for a metered response, its
    /// token usage.
    pub fn record(&self, bytes_up: u64, bytes_down: u64, usage: Option<&UsageReport>) {
        lock(&self.budget).record(bytes_up.saturating_add(bytes_down), usage);
        let mut stats = lock(&self.stats);
        stats.bytes_up = stats.bytes_up.saturating_add(bytes_up);
        stats.bytes_down = stats.bytes_down.saturating_add(bytes_down);
    }

    /// The run's totals now.
    pub fn totals(&self) -> RunTotals {
        let budget = lock(&self.budget).totals();
        let stats = lock(&self.stats);
        RunTotals {
            requests: budget.requests,
            denied: stats.denied,
            audit_suppressed: stats.audit_suppressed,
            bytes_up: stats.bytes_up,
            bytes_down: stats.bytes_down,
            input_tokens: budget
                .usage
                .input_tokens
                .saturating_add(budget.usage.cache_creation_input_tokens)
                .saturating_add(budget.usage.cache_read_input_tokens),
            output_tokens: budget.usage.output_tokens,
            tokens: budget.tokens,
            security_events: stats.security_events,
            budget_exhausted: stats.budget_exhausted.map(str::to_owned),
            hosts: stats.hosts.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::{BudgetConfig, PolicyConfig};

    fn run(budget: BudgetConfig) -> Run {
        Run::new(
            Some(Arc::from("r1")),
            PolicyConfig::default().compile().unwrap(),
            HandleSet::default(),
            BudgetState::new(budget.compile().unwrap()),
            None,
            CancellationToken::new(),
        )
    }

    #[test]
    fn per_host_lines_are_capped_but_every_request_counts() {
        let r = run(BudgetConfig::default());
        for i in 0..(MAX_HOST_LINES + 10) {
            r.admit(&Host::parse(&format!("h{i}.test")).unwrap())
                .unwrap();
            r.note_denied(&format!("h{i}.test"));
        }
        let t = r.totals();
        assert_eq!(t.hosts.len(), MAX_HOST_LINES);
        assert_eq!(t.requests, u64::try_from(MAX_HOST_LINES + 10).unwrap());
        assert_eq!(t.denied, u64::try_from(MAX_HOST_LINES + 10).unwrap());
        assert_eq!(t.hosts[0].requests, 1);
        assert_eq!(t.hosts[0].denied, 1);
    }

    #[test]
    fn an_exhausted_budget_is_named_in_the_totals() {
        let r = run(BudgetConfig {
            max_requests: Some(1),
            ..BudgetConfig::default()
        });
        let h = Host::parse("a.test").unwrap();
        assert!(r.admit(&h).is_ok());
        assert_eq!(r.totals().budget_exhausted, None);
        assert_eq!(r.admit(&h), Err(BudgetRule::Requests));
        assert_eq!(
            r.totals().budget_exhausted.as_deref(),
            Some("budget_requests")
        );
        r.record(10, 20, None);
        let t = r.totals();
        assert_eq!((t.bytes_up, t.bytes_down), (10, 20));
    }

    #[tokio::test(start_paused = true)]
    async fn denial_lines_are_a_burst_then_a_rate_and_the_muted_ones_are_counted() {
        let r = run(BudgetConfig::default());
        for _ in 0..DENIAL_LINES_BURST {
            assert_eq!(r.denial_line(), Some(0));
        }
        // Over the burst: muted, and counted.
        for _ in 0..10 {
            assert_eq!(r.denial_line(), None);
        }
        assert_eq!(r.totals().audit_suppressed, 10);
        // A second later the rate allows a few more; the first says how many went before it.
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert_eq!(r.denial_line(), Some(10));
        for _ in 1..DENIAL_LINES_PER_SEC {
            assert_eq!(r.denial_line(), Some(0));
        }
        assert_eq!(r.denial_line(), None);
        // A quiet while refills the whole burst, never more.
        tokio::time::advance(std::time::Duration::from_secs(3600)).await;
        for _ in 0..DENIAL_LINES_BURST {
            assert!(r.denial_line().is_some());
        }
        assert_eq!(r.denial_line(), None);
        assert_eq!(r.totals().audit_suppressed, 12);
    }
}
