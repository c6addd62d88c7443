//! The audit stream: one JSON line per decision, written by a background task.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// Lines queued for the writer before new ones are dropped (and counted) rather than stall
/// the proxy.
const QUEUE: usize = 65_536;

/// One decision.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// When the decision was made.
    pub ts: SystemTime,
    /// The run, when the request came in on a run's socket.
    pub run: Option<Arc<str>>,
    /// The client: `ip:port` for TCP, `unix:<path>` for a Unix socket.
    pub client: Arc<str>,
    /// The method as received (truncated).
    pub method: String,
    /// `http` or `https` (CONNECT).
    pub scheme: &'static str,
    /// The normalised host, or the escaped and truncated raw text when it did not parse.
    pub host: String,
    /// The destination port, when known.
    pub port: Option<u16>,
    /// The address connected to, when one was.
    pub resolved_ip: Option<IpAddr>,
    /// The rule name.
    pub rule: &'static str,
    /// `allow`, `tunnel`, `deny` or `error`.
    pub verdict: &'static str,
    /// The HTTP status answered to the client.
    pub status: u16,
    /// Body bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Body bytes from the upstream to the client.
    pub bytes_down: u64,
    /// Time from request head to the end of the response, in milliseconds.
    pub duration_ms: u64,
    /// A credential handle or a real secret was misused (written only when true).
    pub security_event: bool,
    /// The run's denial lines muted since its last written one (written only when non-zero).
    pub suppressed: u64,
    /// Counted in the metrics but not written: the run is over its denial-line rate.
    pub muted: bool,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    run: Option<&'a str>,
    client: &'a str,
    method: &'a str,
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
    resolved_ip: Option<IpAddr>,
    rule: &'a str,
    verdict: &'a str,
    status: u16,
    bytes_up: u64,
    bytes_down: u64,
    duration_ms: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    security_event: bool,
    #[serde(skip_serializing_if = "is_zero")]
    suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl AuditRecord {
    /// The JSON line (without the newline).
    pub fn to_json(&self) -> String {
        let ts: chrono::DateTime<chrono::Utc> = self.ts.into();
        let line = Line {
            ts: ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            run: self.run.as_deref(),
            client: &self.client,
            method: &self.method,
            scheme: self.scheme,
            host: &self.host,
            port: self.port,
            resolved_ip: self.resolved_ip,
            rule: self.rule,
            verdict: self.verdict,
            status: self.status,
            bytes_up: self.bytes_up,
            bytes_down: self.bytes_down,
            duration_ms: self.duration_ms,
            security_event: self.security_event,
            suppressed: self.suppressed,
        };
        serde_json::to_string(&line).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Where audit lines go.
#[derive(Debug, Clone)]
pub enum AuditTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl AuditTarget {
    /// `-` is standard output; anything else is a file path.
    pub fn from_config(path: &str) -> AuditTarget {
        if path == "-" {
            AuditTarget::Stdout
        } else {
            AuditTarget::File(PathBuf::from(path))
        }
    }
}

/// The sending side, cheap to clone.
#[derive(Debug, Clone)]
pub struct Auditor {
    tx: mpsc::Sender<AuditRecord>,
    metrics: Arc<Metrics>,
}

impl Auditor {
    /// Queues a record without waiting. A full queue drops the line and counts it.
    pub fn record(&self, rec: AuditRecord) {
        self.metrics.record_decision(rec.verdict, rec.rule);
        if rec.muted {
            return;
        }
        if self.tx.try_send(rec).is_err() {
            self.metrics.audit_dropped();
            tracing::warn!("audit queue full or closed: line dropped");
        }
    }
}

/// Opens the target and starts the writer task. The task ends, after writing every queued
/// line, when the last [`Auditor`] is dropped.
pub async fn start(
    target: &AuditTarget,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Auditor, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = match target {
        AuditTarget::Stdout => tokio::spawn(writer(rx, tokio::io::stdout())),
        AuditTarget::File(path) => {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            tokio::spawn(writer(rx, file))
        }
    };
    Ok((Auditor { tx, metrics }, task))
}

async fn writer<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<AuditRecord>, out: W) {
    let mut out = BufWriter::new(out);
    while let Some(rec) = rx.recv().await {
        if write_line(&mut out, &rec).await.is_err() {
            break;
        }
        // Write whatever else is queued, then flush once.
        while let Ok(rec) = rx.try_recv() {
            if write_line(&mut out, &rec).await.is_err() {
                return;
            }
        }
        if let Err(e) = out.flush().await {
            tracing::error!(error = %e, "audit stream flush failed");
            return;
        }
    }
    let _ = out.flush().await;
}

async fn write_line<W: AsyncWrite + Unpin>(
    out: &mut BufWriter<W>,
    rec: &AuditRecord,
) -> std::io::Result<()> {
    let mut line = rec.to_json();
    line.push('\n');
    let r = out.write_all(line.as_bytes()).await;
    if let Err(e) = &r {
        tracing::error!(error = %e, "audit stream write failed");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_every_field() {
        let rec = AuditRecord {
            ts: SystemTime::UNIX_EPOCH,
            run: None,
            client: Arc::from("127.0.0.1:4000"),
            method: "GET".into(),
            scheme: "http",
            host: "a.test".into(),
            port: Some(80),
            resolved_ip: Some("127.0.0.2".parse().unwrap()),
            rule: "read_public",
            verdict: "allow",
            status: 200,
            bytes_up: 1,
            bytes_down: 2,
            duration_ms: 3,
            security_event: false,
            suppressed: 0,
            muted: false,
        };
        let v: serde_json::Value = serde_json::from_str(&rec.to_json()).unwrap();
        for key in [
            "ts",
            "run",
            "client",
            "method",
            "scheme",
            "host",
            "port",
            "resolved_ip",
            "rule",
            "verdict",
            "bytes_up",
            "bytes_down",
            "duration_ms",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
        assert!(v["run"].is_null());
        assert_eq!(v["resolved_ip"], "127.0.0.2");
    }
}
