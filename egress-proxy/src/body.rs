//! Streaming body types: the request body sent upstream (size-limited, metered) and the
//! response body sent to the client (a small local reply, or the metered upstream stream that
//! writes the audit line when it ends).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use paddock_policy::{BodyGuard, BrokerRule, StreamScrubber, UsageMeter};
use tokio::time::{Instant, Sleep};

use crate::audit::AuditRecord;
use crate::proxy::Shared;
use crate::run::Run;

/// A byte counter shared between the request side and the audit line.
#[derive(Debug, Default)]
pub struct Meter(AtomicU64, AtomicBool, OnceLock<BrokerRule>);

impl Meter {
    /// The body went over its limit and was cut.
    pub fn exceeded(&self) -> bool {
        self.1.load(Ordering::Relaxed)
    }
    /// The broker stopped the body: it carried a credential handle or a real secret.
    pub fn broker_denied(&self) -> Option<BrokerRule> {
        self.2.get().copied()
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
    /// The request body carried a credential handle or a real secret; it was cut before that
    /// chunk went upstream.
    #[error("request body refused by the credential broker: {}", .0.name())]
    Broker(BrokerRule),
    /// The upstream sent nothing for `limits.body_idle_timeout` in the middle of a response body.
    #[error("upstream response body idle for longer than the configured limit")]
    Idle,
}

/// The client's request body on its way upstream.
#[derive(Debug)]
pub struct UpBody {
    inner: Option<Incoming>,
    limit: u64,
    seen: u64,
    meter: Arc<Meter>,
    guard: Option<BodyGuard>,
}

impl UpBody {
    /// Streams `inner`, failing once more than `limit` bytes have passed, or (with a `guard`)
    /// as soon as a chunk carries a credential handle or a real secret. With a guard, the tail
    /// of each chunk that could still start a handle or secret is held until the next chunk
    /// (or the end) decides it, so no part of a split handle is forwarded either.
    pub fn new(inner: Incoming, limit: u64, meter: Arc<Meter>, guard: Option<BodyGuard>) -> Self {
        UpBody {
            inner: Some(inner),
            limit,
            seen: 0,
            meter,
            guard,
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
        loop {
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            return match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Some(data) = frame.data_ref() else {
                        // Request trailers are not forwarded: they would pass the broker unseen.
                        continue;
                    };
                    let n = data.len();
                    this.seen = this
                        .seen
                        .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                    if this.seen > this.limit {
                        this.inner = None;
                        this.meter.1.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    let Some(guard) = this.guard.as_mut() else {
                        this.meter.add(n);
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    match guard.release(data) {
                        Err(rule) => {
                            this.inner = None;
                            let _ = this.meter.2.set(rule);
                            Poll::Ready(Some(Err(BodyError::Broker(rule))))
                        }
                        // All of it may be held: read on.
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => {
                            this.meter.add(out.len());
                            Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Stream(e)))),
                Poll::Ready(None) => {
                    this.inner = None;
                    // The held tail, already checked, goes last.
                    match this.guard.as_mut().map(BodyGuard::finish) {
                        Some(Ok(rest)) if !rest.is_empty() => {
                            this.meter.add(rest.len());
                            Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))))
                        }
                        Some(Err(rule)) => Poll::Ready(Some(Err(BodyError::Broker(rule)))),
                        _ => Poll::Ready(None),
                    }
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        let held = self.guard.as_ref().map_or(0, BodyGuard::held);
        held == 0 && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let held = u64::try_from(self.guard.as_ref().map_or(0, BodyGuard::held)).unwrap_or(0);
        let inner = self
            .inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(held));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(held));
        }
        hint
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
    /// The run charged for the exchange.
    pub run: Arc<Run>,
}

impl PendingAudit {
    /// Completes and emits the record, and charges the run (bytes, and tokens when metered).
    /// When a successful response carries no readable usage, its tokens are estimated from the
    /// request body (the prompt) and the response body together.
    pub fn finish(mut self: Box<Self>, bytes_down: u64, usage: Option<UsageMeter>) {
        self.record.bytes_up = self.up.get();
        self.record.bytes_down = bytes_down;
        self.record.duration_ms =
            u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.shared
            .metrics
            .add_bytes(self.record.bytes_up, bytes_down);
        // A provider refusal (4xx, 5xx) processed no prompt: only its own bytes are estimated.
        let prompt = if (200..300).contains(&self.record.status) {
            self.record.bytes_up
        } else {
            0
        };
        let report = usage.map(|u| u.finish_with_request(prompt));
        self.run
            .record(self.record.bytes_up, bytes_down, report.as_ref());
        self.shared.auditor.record(self.record);
    }
}

/// What happens to an upstream response body on its way to the client.
#[derive(Debug)]
pub struct DownFilter {
    /// Masks the run's real secrets (`None` when the run holds none).
    pub scrub: Option<StreamScrubber>,
    /// Reads the provider's token usage (token hosts only).
    pub usage: Option<UsageMeter>,
    /// The upstream body has ended (or failed).
    pub ended: bool,
    /// How long the upstream may send nothing between two frames of the body.
    idle: Duration,
    /// When the last frame arrived.
    last: Instant,
    /// Wakes the body up when `idle` may have passed since `last`; created on the first wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl DownFilter {
    /// A filter whose body fails once the upstream has sent nothing for `idle`.
    pub fn new(scrub: Option<StreamScrubber>, usage: Option<UsageMeter>, idle: Duration) -> Self {
        DownFilter {
            scrub,
            usage,
            ended: false,
            idle,
            last: Instant::now(),
            timer: None,
        }
    }

    /// Called when the upstream has nothing ready: true once it has been idle too long.
    /// Otherwise arranges to be woken when it would be. Progress only records a time; the timer
    /// is re-armed lazily, so a busy stream costs no timer work per frame.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.last + self.idle;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        // The timer fired: either the upstream really was silent since its deadline, or frames
        // came after it was armed and it is moved to the deadline the last frame set.
        if deadline <= Instant::now() {
            return true;
        }
        timer.as_mut().reset(deadline);
        timer.as_mut().poll(cx).is_ready()
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
        /// Scrubbing and token metering.
        filter: Box<DownFilter>,
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
        if let DownBody::Upstream {
            seen,
            audit,
            filter,
            ..
        } = self
            && let Some(a) = audit.take()
        {
            a.finish(*seen, filter.usage.take());
        }
    }
}

impl Body for DownBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            DownBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            DownBody::Upstream {
                inner,
                seen,
                audit,
                filter,
            } => loop {
                if filter.ended {
                    return Poll::Ready(None);
                }
                match Pin::new(&mut *inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        filter.last = Instant::now();
                        let Ok(data) = frame.into_data() else {
                            // Trailers are not relayed: they could echo a secret unscrubbed.
                            continue;
                        };
                        if let Some(u) = filter.usage.as_mut() {
                            u.push(&data);
                        }
                        let out = match filter.scrub.as_mut() {
                            Some(s) => Bytes::from(s.push(&data)),
                            None => data,
                        };
                        if out.is_empty() {
                            continue;
                        }
                        *seen = seen.saturating_add(u64::try_from(out.len()).unwrap_or(0));
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Poll::Ready(None) => {
                        filter.ended = true;
                        let rest = filter.scrub.take().map(StreamScrubber::finish);
                        let rest = rest.filter(|r| !r.is_empty());
                        if let Some(r) = &rest {
                            *seen = seen.saturating_add(u64::try_from(r.len()).unwrap_or(0));
                        }
                        if let Some(a) = audit.take() {
                            a.finish(*seen, filter.usage.take());
                        }
                        return Poll::Ready(rest.map(|r| Ok(Frame::data(Bytes::from(r)))));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        filter.ended = true;
                        if let Some(a) = audit.take() {
                            a.finish(*seen, filter.usage.take());
                        }
                        return Poll::Ready(Some(Err(BodyError::Stream(e))));
                    }
                    Poll::Pending if filter.idle_expired(cx) => {
                        // The upstream went silent mid-body: end the exchange (the client
                        // sees the response cut short) instead of holding it open forever.
                        filter.ended = true;
                        filter.timer = None;
                        if let Some(a) = audit.take() {
                            a.finish(*seen, filter.usage.take());
                        }
                        return Poll::Ready(Some(Err(BodyError::Idle)));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DownBody::Full(b) => b.is_none(),
            DownBody::Upstream { inner, filter, .. } => {
                filter.ended || (filter.scrub.is_none() && inner.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DownBody::Full(b) => SizeHint::with_exact(
                b.as_ref()
                    .map_or(0, |b| u64::try_from(b.len()).unwrap_or(0)),
            ),
            // Masking changes the length: a scrubbed body goes out chunked.
            DownBody::Upstream { inner, filter, .. } if filter.scrub.is_none() => inner.size_hint(),
            DownBody::Upstream { .. } => SizeHint::default(),
        }
    }
}
