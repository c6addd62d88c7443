//! Streaming body types: the request body sent upstream (size-limited, metered) and the
//! response body sent to the client (a small local reply, or the metered upstream stream that
//! writes the audit line when it ends).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::audit::AuditRecord;
use crate::proxy::Shared;

/// A byte counter shared between the request side and the audit line.
#[derive(Debug, Default)]
pub struct Meter(AtomicU64, AtomicBool);

impl Meter {
    /// The body went over its limit and was cut.
    pub fn exceeded(&self) -> bool {
        self.1.load(Ordering::Relaxed)
    }
    /// Adds `n` bytes.
    pub fn add(&self, n: usize) {
        self.0
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    /// Bytes so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A body stream failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The underlying stream failed.
    #[error("body stream failed: {0}")]
    Stream(#[from] hyper::Error),
    /// The request body exceeded `limits.max_request_body`.
    #[error("request body exceeds the configured limit")]
    TooLarge,
}

/// The client's request body on its way upstream.
#[derive(Debug)]
pub struct UpBody {
    inner: Option<Incoming>,
    limit: u64,
    seen: u64,
    meter: Arc<Meter>,
}

impl UpBody {
    /// Streams `inner`, failing once more than `limit` bytes have passed.
    pub fn new(inner: Incoming, limit: u64, meter: Arc<Meter>) -> Self {
        UpBody {
            inner: Some(inner),
            limit,
            seen: 0,
            meter,
        }
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len();
                    this.seen = this
                        .seen
                        .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                    if this.seen > this.limit {
                        this.inner = None;
                        this.meter.1.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    this.meter.add(n);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Stream(e)))),
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// An audit line waiting for the response to finish.
#[derive(Debug)]
pub struct PendingAudit {
    /// The record; bytes and duration are filled in at the end.
    pub record: AuditRecord,
    /// When the request head arrived.
    pub start: tokio::time::Instant,
    /// Request body bytes sent upstream.
    pub up: Arc<Meter>,
    /// Where to send it.
    pub shared: Arc<Shared>,
}

impl PendingAudit {
    /// Completes and emits the record.
    pub fn finish(mut self: Box<Self>, bytes_down: u64) {
        self.record.bytes_up = self.up.get();
        self.record.bytes_down = bytes_down;
        self.record.duration_ms =
            u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.shared
            .metrics
            .add_bytes(self.record.bytes_up, bytes_down);
        self.shared.auditor.record(self.record);
    }
}

/// The body answered to the client.
#[derive(Debug)]
pub enum DownBody {
    /// A small local reply (denials, errors).
    Full(Option<Bytes>),
    /// The upstream response, metered; the audit line is written when it ends or is dropped.
    Upstream {
        /// The stream.
        inner: Incoming,
        /// Bytes relayed.
        seen: u64,
        /// The line to write at the end.
        audit: Option<Box<PendingAudit>>,
    },
}

impl DownBody {
    /// An empty body.
    pub fn empty() -> Self {
        DownBody::Full(None)
    }

    /// A fixed body.
    pub fn full(b: impl Into<Bytes>) -> Self {
        DownBody::Full(Some(b.into()))
    }
}

impl Drop for DownBody {
    fn drop(&mut self) {
        if let DownBody::Upstream { seen, audit, .. } = self
            && let Some(a) = audit.take()
        {
            a.finish(*seen);
        }
    }
}

impl Body for DownBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            DownBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            DownBody::Upstream { inner, seen, audit } => {
                let r = Pin::new(inner).poll_frame(cx);
                match &r {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(d) = frame.data_ref() {
                            *seen = seen.saturating_add(u64::try_from(d.len()).unwrap_or(0));
                        }
                    }
                    Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                        if let Some(a) = audit.take() {
                            a.finish(*seen);
                        }
                    }
                    Poll::Pending => {}
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DownBody::Full(b) => b.is_none(),
            DownBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DownBody::Full(b) => SizeHint::with_exact(
                b.as_ref()
                    .map_or(0, |b| u64::try_from(b.len()).unwrap_or(0)),
            ),
            DownBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
