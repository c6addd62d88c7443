//! The first request head of a connection, gathered before the HTTP machinery exists: an idle
//! or slow client (silent, or stuck half-way through its head) holds only the bytes it sent,
//! not the parser's read and write buffers, so many such connections stay cheap.
//!
//! Nothing here decides anything: the gathered bytes are replayed, unchanged and in order,
//! to the framing guard and the HTTP parser, which judge them exactly as if they had just
//! arrived. Only the wait itself is bounded here (by the caller's header read timeout, and
//! by the head size limit: past it the bytes go to the parser, which refuses them).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::framing::MAX_HEADERS;

/// Bytes read from the client per read while gathering the head.
const READ_CHUNK: usize = 4096;

/// Whether `buf` holds a whole head or can never become one (malformed, too many headers,
/// too large): either way the parser should see it now. `false` while more bytes may help.
fn ready_for_parser(buf: &[u8], max_head: usize) -> bool {
    if buf.len() > max_head {
        return true;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    !matches!(req.parse(buf), Ok(httparse::Status::Partial))
}

/// Whether `tail` holds an empty line (`\n\n` or `\n\r\n`): without one no head is complete.
fn has_blank_line(tail: &[u8]) -> bool {
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// Reads from `io` until the first request head is complete (or cannot be one, or the client
/// stops sending). `None`: the client closed without sending a byte. Never reads more than
/// `max_head + READ_CHUNK` bytes. The caller bounds the wait.
///
/// The head is parsed after the first read (so that garbage is refused at once) and then only
/// when the new bytes end an empty line: a client dribbling its head a byte at a time costs
/// a scan of each new byte, not a parse of everything so far.
pub async fn gather<S: AsyncRead + Unpin>(
    io: &mut S,
    max_head: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let n = poll_fn(|cx| {
            let mut tmp = [0u8; READ_CHUNK];
            let mut rb = ReadBuf::new(&mut tmp);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
            head.extend_from_slice(rb.filled());
            Poll::Ready(Ok::<usize, io::Error>(rb.filled().len()))
        })
        .await?;
        if n == 0 {
            return Ok(if head.is_empty() { None } else { Some(head) });
        }
        let before = head.len().saturating_sub(n);
        let tail = head.get(before.saturating_sub(2)..).unwrap_or_default();
        let worth_parsing = before == 0 || head.len() > max_head || has_blank_line(tail);
        if worth_parsing && ready_for_parser(&head, max_head) {
            return Ok(Some(head));
        }
    }
}

/// A stream that first yields `prefix`, then reads from `io`. Writes go straight to `io`.
#[derive(Debug)]
pub struct Prefixed<T> {
    prefix: Vec<u8>,
    pos: usize,
    io: T,
}

impl<T> Prefixed<T> {
    /// Replays `prefix` before the bytes of `io`.
    pub fn new(prefix: Vec<u8>, io: T) -> Self {
        Prefixed { prefix, pos: 0, io }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this.prefix.get(this.pos..)
            && !rest.is_empty()
        {
            let n = rest.len().min(buf.remaining());
            if let Some(part) = rest.get(..n) {
                buf.put_slice(part);
            }
            this.pos = this.pos.saturating_add(n);
            if this.pos >= this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
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
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn gathers_a_split_head_and_replays_it_with_what_follows() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            client.write_all(b"GET http://a.test/ HTTP/1.1\r\n").await?;
            tokio::task::yield_now().await;
            client.write_all(b"Host: a.test\r\n\r\nNEXT").await?;
            client.shutdown().await?;
            Ok::<_, io::Error>(client)
        });
        let head = gather(&mut server, 8192).await.ok().flatten();
        let head = head.unwrap_or_default();
        assert!(head.starts_with(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"));
        let mut all = Vec::new();
        let mut p = Prefixed::new(head, server);
        p.read_to_end(&mut all).await.ok();
        assert_eq!(
            all,
            b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\nNEXT".to_vec()
        );
        assert!(writer.await.is_ok());
    }

    #[tokio::test]
    async fn stops_waiting_at_the_size_limit_and_on_garbage() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let big = format!("GET http://a.test/ HTTP/1.1\r\nX: {}\r\n", "a".repeat(300));
        client.write_all(big.as_bytes()).await.ok();
        let head = gather(&mut server, 100)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        assert!(head.len() > 100, "handed over past the limit");

        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client
            .write_all(b"GET http://a.test/ HTTP/1.1\r\nX-A: b\r\n  folded")
            .await
            .ok();
        let head = gather(&mut server, 8192).await.ok().flatten();
        assert!(
            head.is_some_and(|h| !h.is_empty()),
            "malformed head handed over"
        );

        // A partial, well-formed head keeps waiting.
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client
            .write_all(b"GET http://a.test/ HTTP/1.1\r\nX: y\r\n")
            .await
            .ok();
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            gather(&mut server, 8192),
        )
        .await;
        assert!(waited.is_err(), "a partial head is not handed over");
        drop(client);
    }

    #[test]
    fn blank_line_detection() {
        assert!(has_blank_line(b"a\r\n\r\n"));
        assert!(has_blank_line(b"\n\n"));
        assert!(has_blank_line(b"\n\r\nx"));
        assert!(!has_blank_line(b"a\r\nb\r\n"));
        assert!(!has_blank_line(b"\r\n\r"));
    }

    #[tokio::test]
    async fn silent_close_is_none() {
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(matches!(gather(&mut server, 8192).await, Ok(None)));
    }
}
