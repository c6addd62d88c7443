//! Request-framing guard: scans each request head on the client connection before the HTTP
//! parser sees it and flags smuggling shapes the parser would otherwise silently normalise
//! (Content-Length with Transfer-Encoding, repeated or list-valued Content-Length, any
//! Transfer-Encoding but a single `chunked`). The flagged request is answered 400 and the
//! connection closed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Headers accepted in one request head (the parser gets the same limit).
pub const MAX_HEADERS: usize = 100;

/// Why a request head was refused. The strings go into 400 bodies and audit lines.
pub const REASONS: [&str; 7] = [
    "none",
    "content_length_with_transfer_encoding",
    "duplicate_content_length",
    "invalid_content_length",
    "invalid_transfer_encoding",
    "malformed_request_head",
    "request_head_too_large",
];

const CL_AND_TE: usize = 1;
const DUP_CL: usize = 2;
const BAD_CL: usize = 3;
const BAD_TE: usize = 4;
const MALFORMED: usize = 5;
const TOO_LARGE: usize = 6;

/// What the guard learned, shared with the request handler of the same connection.
#[derive(Debug)]
pub struct Verdicts {
    /// Index of the first refused request head (`u64::MAX`: none).
    bad_from: AtomicU64,
    reason: AtomicUsize,
    /// Requests the handler has seen.
    served: AtomicU64,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            bad_from: AtomicU64::new(u64::MAX),
            reason: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }
}

impl Verdicts {
    fn flag(&self, index: u64, reason: usize) {
        if self.bad_from.load(Ordering::Acquire) == u64::MAX {
            self.reason.store(reason, Ordering::Release);
            self.bad_from.store(index, Ordering::Release);
        }
    }

    /// Called once per request by the handler, in order: `Some(reason)` when this request (or
    /// an earlier one on the connection) was refused by the guard.
    pub fn next_request(&self) -> Option<&'static str> {
        let index = self.served.fetch_add(1, Ordering::AcqRel);
        if index >= self.bad_from.load(Ordering::Acquire) {
            let r = self.reason.load(Ordering::Acquire);
            Some(REASONS.get(r).copied().unwrap_or("malformed_request_head"))
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size { n: u64, any: bool },
    SizeWs { n: u64 },
    Ext { n: u64 },
    SizeLf { n: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    EndLf,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Head,
    Body(u64),
    Chunked(Chunk),
    /// A CONNECT tunnel or a refused connection: bytes pass unscanned.
    Done,
}

/// An I/O stream whose read side is scanned for request framing.
#[derive(Debug)]
pub struct Guarded<T> {
    io: T,
    state: State,
    /// Partial head carried across reads (empty, and unallocated, between requests).
    head: Vec<u8>,
    max_head: usize,
    heads: u64,
    verdicts: Arc<Verdicts>,
}

impl<T> Guarded<T> {
    /// Wraps `io`; `max_head` is the largest request head accepted.
    pub fn new(io: T, max_head: usize, verdicts: Arc<Verdicts>) -> Self {
        Guarded {
            io,
            state: State::Head,
            head: Vec::new(),
            max_head,
            heads: 0,
            verdicts,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    fn refuse(&mut self, reason: usize) {
        self.verdicts.flag(self.heads, reason);
        self.state = State::Done;
        self.head = Vec::new();
    }

    /// Feeds bytes just read from the client.
    fn scan(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Done => return,
                State::Head => data = self.scan_head(data),
                State::Body(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(data.len());
                    data = &data[take..];
                    let left = n.saturating_sub(u64::try_from(take).unwrap_or(u64::MAX));
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::Chunked(c) => data = self.scan_chunked(c, data),
            }
        }
    }

    fn scan_head<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        if self.head.is_empty() {
            match self.parse_head(data) {
                Some(n) => return &data[n..],
                None => {
                    if matches!(self.state, State::Done) {
                        return &[];
                    }
                    if data.len() > self.max_head {
                        self.refuse(TOO_LARGE);
                        return &[];
                    }
                    self.head.extend_from_slice(data);
                    return &[];
                }
            }
        }
        let old = self.head.len();
        let room = (self.max_head + 1).saturating_sub(old);
        let add = room.min(data.len());
        self.head.extend_from_slice(&data[..add]);
        let buf = std::mem::take(&mut self.head);
        let parsed = self.parse_head(&buf);
        match parsed {
            Some(n) => {
                // `n > old` always: the previous partial head did not parse on its own.
                let used = n.saturating_sub(old).min(data.len());
                &data[used..]
            }
            None => {
                if matches!(self.state, State::Done) {
                    return &[];
                }
                if buf.len() > self.max_head {
                    self.refuse(TOO_LARGE);
                    return &[];
                }
                self.head = buf;
                &[]
            }
        }
    }

    /// Parses one head from `buf`. `Some(len)` when complete (state updated); `None` when more
    /// bytes are needed or the head was refused (state `Done`).
    fn parse_head(&mut self, buf: &[u8]) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return None,
            Err(httparse::Error::TooManyHeaders) => {
                self.refuse(TOO_LARGE);
                return None;
            }
            Err(_) => {
                self.refuse(MALFORMED);
                return None;
            }
        };
        let mut content_length: Option<u64> = None;
        let mut cl_count = 0u32;
        let mut te_count = 0u32;
        let mut te_chunked = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                cl_count += 1;
                content_length = parse_digits(h.value);
                if content_length.is_none() {
                    self.refuse(BAD_CL);
                    return None;
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te_count += 1;
                te_chunked = h.value.eq_ignore_ascii_case(b"chunked");
            }
        }
        if cl_count > 0 && te_count > 0 {
            self.refuse(CL_AND_TE);
            return None;
        }
        if cl_count > 1 {
            self.refuse(DUP_CL);
            return None;
        }
        if te_count > 1 || (te_count == 1 && !te_chunked) {
            self.refuse(BAD_TE);
            return None;
        }
        self.heads += 1;
        self.state = if req.method == Some("CONNECT") {
            State::Done
        } else if te_chunked {
            State::Chunked(Chunk::Size { n: 0, any: false })
        } else {
            match content_length {
                Some(0) | None => State::Head,
                Some(n) => State::Body(n),
            }
        };
        Some(len)
    }

    fn scan_chunked<'d>(&mut self, mut c: Chunk, mut data: &'d [u8]) -> &'d [u8] {
        while let Some((&b, rest)) = data.split_first() {
            if let Chunk::Data(n) = c {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(data.len());
                data = &data[take..];
                let left = n.saturating_sub(u64::try_from(take).unwrap_or(u64::MAX));
                c = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            data = rest;
            let next = match (c, b) {
                (Chunk::Size { n, .. }, b) if b.is_ascii_hexdigit() => {
                    let d = u64::from(hex(b));
                    n.checked_mul(16)
                        .and_then(|v| v.checked_add(d))
                        .map(|n| Chunk::Size { n, any: true })
                }
                (Chunk::Size { n, any: true }, b' ' | b'\t')
                | (Chunk::SizeWs { n }, b' ' | b'\t') => Some(Chunk::SizeWs { n }),
                (Chunk::Size { n, any: true }, b';') | (Chunk::SizeWs { n }, b';') => {
                    Some(Chunk::Ext { n })
                }
                (Chunk::Size { n, any: true }, b'\r') | (Chunk::SizeWs { n }, b'\r') => {
                    Some(Chunk::SizeLf { n })
                }
                (Chunk::Ext { n }, b'\r') => Some(Chunk::SizeLf { n }),
                (Chunk::Ext { n }, b'\n') | (Chunk::SizeLf { n }, b'\n') => Some(if n == 0 {
                    Chunk::TrailerStart
                } else {
                    Chunk::Data(n)
                }),
                (Chunk::Ext { n }, _) => Some(Chunk::Ext { n }),
                (Chunk::DataCr, b'\r') => Some(Chunk::DataLf),
                (Chunk::DataLf, b'\n') => Some(Chunk::Size { n: 0, any: false }),
                (Chunk::TrailerStart, b'\r') => Some(Chunk::EndLf),
                (Chunk::TrailerStart, b'\n') | (Chunk::EndLf, b'\n') => {
                    self.state = State::Head;
                    return data;
                }
                (Chunk::TrailerStart, _) | (Chunk::TrailerLine, _) if b != b'\n' => {
                    Some(Chunk::TrailerLine)
                }
                (Chunk::TrailerLine, b'\n') => Some(Chunk::TrailerStart),
                _ => None,
            };
            match next {
                Some(n) => c = n,
                None => {
                    // The parser rejects this body too and closes the connection; refuse
                    // anything that might follow.
                    self.refuse(MALFORMED);
                    return &[];
                }
            }
        }
        self.state = State::Chunked(c);
        data
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// A Content-Length value: ASCII digits only (no sign, list, or whitespace), fits in u64.
fn parse_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && !matches!(this.state, State::Done)
        {
            let fresh = &buf.filled()[before..];
            this.scan(fresh);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<Option<&'static str>>, u64) {
        let v = Arc::new(Verdicts::default());
        let mut g = Guarded::new((), 8192, v.clone());
        for c in chunks {
            g.scan(c);
        }
        let heads = g.heads;
        let out = (0..heads.max(1) + 1).map(|_| v.next_request()).collect();
        (out, heads)
    }

    #[test]
    fn clean_keep_alive_sequence() {
        let (v, heads) = run(&[
            b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
            b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel",
            b"lo",
            b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            b"GET http://a.test/",
            b" HTTP/1.1\r\n\r\n",
        ]);
        assert_eq!(heads, 4);
        assert!(v.iter().all(Option::is_none), "{v:?}");
    }

    #[test]
    fn cl_with_te_is_flagged_either_order() {
        for head in [
            &b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"[..],
        ] {
            let (v, _) = run(&[head]);
            assert_eq!(v[0], Some("content_length_with_transfer_encoding"));
        }
    }

    #[test]
    fn duplicate_and_invalid_cl_flagged() {
        let (v, _) =
            run(&[b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"]);
        assert_eq!(v[0], Some("duplicate_content_length"));
        let (v, _) = run(&[b"POST http://a/ HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"]);
        assert_eq!(v[0], Some("invalid_content_length"));
        let (v, _) = run(&[b"POST http://a/ HTTP/1.1\r\nContent-Length: +5\r\n\r\n"]);
        assert_eq!(v[0], Some("invalid_content_length"));
    }

    #[test]
    fn te_must_be_exactly_chunked() {
        for te in ["gzip, chunked", "chunked, chunked", "identity", "xchunked"] {
            let head = format!("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n");
            let (v, _) = run(&[head.as_bytes()]);
            assert_eq!(v[0], Some("invalid_transfer_encoding"), "{te}");
        }
        let (v, _) = run(&[b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"]);
        assert_eq!(v[0], Some("invalid_transfer_encoding"));
    }

    #[test]
    fn smuggled_second_request_in_body_is_scanned_as_body() {
        // The body of the first request contains text shaped like a bad head: it is body, not
        // a request, so nothing is flagged.
        let (v, heads) = run(&[
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 60\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ]);
        assert_eq!(heads, 1);
        assert!(v[0].is_none());
    }

    #[test]
    fn second_bad_request_flags_only_from_its_index() {
        let (v, _) = run(&[
            b"GET http://a/ HTTP/1.1\r\n\r\nGET http://a/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]);
        assert_eq!(v[0], None);
        assert_eq!(v[1], Some("content_length_with_transfer_encoding"));
    }

    #[test]
    fn obs_fold_and_oversize_flagged() {
        let (v, _) = run(&[b"GET http://a/ HTTP/1.1\r\nX-A: b\r\n  folded\r\n\r\n"]);
        assert_eq!(v[0], Some("malformed_request_head"));
        let big = format!(
            "GET http://a/ HTTP/1.1\r\nX-A: {}\r\n\r\n",
            "a".repeat(9000)
        );
        let (v, _) = run(&[&big.as_bytes()[..4000], &big.as_bytes()[4000..]]);
        assert_eq!(v[0], Some("request_head_too_large"));
    }
}
