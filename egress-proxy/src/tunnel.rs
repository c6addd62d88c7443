//! CONNECT tunnels: copy both ways until either side closes, the tunnel outlives its maximum
//! lifetime, it sits idle too long, or the proxy is shutting down.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Copy buffer per direction: four times tokio's default, so a bulk transfer takes a quarter
/// of the system calls; two per open tunnel, allocated when the tunnel starts.
const COPY_BUF: usize = 32 * 1024;

/// Bytes read and the time of the last read, per direction.
#[derive(Debug)]
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that counts the bytes read from it and records activity.
struct Metered<T> {
    io: T,
    read: Arc<AtomicU64>,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = buf.filled().len().saturating_sub(before);
            if n > 0 {
                this.read
                    .fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
                this.activity.touch();
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Relays until done; returns (bytes client → upstream, bytes upstream → client).
pub async fn run<C, U>(
    client: C,
    upstream: U,
    lifetime: Duration,
    idle: Duration,
    kill: &CancellationToken,
) -> (u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Arc::new(Activity {
        epoch: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let mut c = Metered {
        io: client,
        read: up.clone(),
        activity: activity.clone(),
    };
    let mut u = Metered {
        io: upstream,
        read: down.clone(),
        activity: activity.clone(),
    };
    let idle_watch = async {
        loop {
            let left = idle.saturating_sub(activity.idle_for());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left).await;
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut u, COPY_BUF, COPY_BUF) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "tunnel ended with an error");
            }
        }
        () = tokio::time::sleep(lifetime) => tracing::debug!("tunnel reached its maximum lifetime"),
        () = idle_watch => tracing::debug!("tunnel idle timeout"),
        () = kill.cancelled() => tracing::debug!("tunnel closed by shutdown"),
    }
    (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed))
}
