//! Prometheus counters and gauges, rendered as text for the admin listener.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Process-wide counters. Cheap atomics on the hot path; one short lock per decision.
#[derive(Debug, Default)]
pub struct Metrics {
    decisions: Mutex<HashMap<(&'static str, &'static str), u64>>,
    active_connections: AtomicI64,
    connections_total: AtomicU64,
    connections_refused: Mutex<HashMap<&'static str, u64>>,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    audit_dropped: AtomicU64,
}

impl Metrics {
    /// Counts one decision.
    pub fn record_decision(&self, verdict: &'static str, rule: &'static str) {
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((verdict, rule)).or_insert(0) += 1;
        }
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection ended.
    pub fn connection_closed(&self) {
        self.active_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// A client connection was refused by a limit.
    pub fn connection_refused(&self, reason: &'static str) {
        if let Ok(mut m) = self.connections_refused.lock() {
            *m.entry(reason).or_insert(0) += 1;
        }
    }

    /// Body bytes moved.
    pub fn add_bytes(&self, up: u64, down: u64) {
        self.bytes_up.fetch_add(up, Ordering::Relaxed);
        self.bytes_down.fetch_add(down, Ordering::Relaxed);
    }

    /// An audit line was dropped because the queue was full.
    pub fn audit_dropped(&self) {
        self.audit_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Client connections open now.
    pub fn active_connections(&self) -> i64 {
        self.active_connections.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str(
            "# HELP paddock_egress_requests_total Egress decisions by verdict and rule.\n",
        );
        out.push_str("# TYPE paddock_egress_requests_total counter\n");
        if let Ok(m) = self.decisions.lock() {
            let mut rows: Vec<_> = m.iter().collect();
            rows.sort();
            for ((verdict, rule), n) in rows {
                let _ = writeln!(
                    out,
                    "paddock_egress_requests_total{{verdict=\"{verdict}\",rule=\"{rule}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP paddock_egress_active_connections Client connections open now.\n");
        out.push_str("# TYPE paddock_egress_active_connections gauge\n");
        let _ = writeln!(
            out,
            "paddock_egress_active_connections {}",
            self.active_connections.load(Ordering::Relaxed)
        );
        out.push_str("# HELP paddock_egress_connections_total Client connections accepted.\n");
        out.push_str("# TYPE paddock_egress_connections_total counter\n");
        let _ = writeln!(
            out,
            "paddock_egress_connections_total {}",
            self.connections_total.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP paddock_egress_connections_refused_total Client connections refused by a limit.\n",
        );
        out.push_str("# TYPE paddock_egress_connections_refused_total counter\n");
        if let Ok(m) = self.connections_refused.lock() {
            let mut rows: Vec<_> = m.iter().collect();
            rows.sort();
            for (reason, n) in rows {
                let _ = writeln!(
                    out,
                    "paddock_egress_connections_refused_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP paddock_egress_bytes_total Body bytes relayed, by direction.\n");
        out.push_str("# TYPE paddock_egress_bytes_total counter\n");
        let _ = writeln!(
            out,
            "paddock_egress_bytes_total{{direction=\"up\"}} {}",
            self.bytes_up.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "paddock_egress_bytes_total{{direction=\"down\"}} {}",
            self.bytes_down.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP paddock_egress_audit_dropped_total Audit lines dropped because the queue was full.\n",
        );
        out.push_str("# TYPE paddock_egress_audit_dropped_total counter\n");
        let _ = writeln!(
            out,
            "paddock_egress_audit_dropped_total {}",
            self.audit_dropped.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.record_decision("deny", "cloud_metadata");
        m.record_decision("deny", "cloud_metadata");
        m.connection_opened();
        m.add_bytes(5, 7);
        let text = m.render();
        assert!(
            text.contains(
                "paddock_egress_requests_total{verdict=\"deny\",rule=\"cloud_metadata\"} 2"
            )
        );
        assert!(text.contains("paddock_egress_active_connections 1"));
        assert!(text.contains("paddock_egress_bytes_total{direction=\"down\"} 7"));
    }
}
