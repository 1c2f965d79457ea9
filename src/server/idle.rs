//! What a connection has done lately, for the deadlines [`super::conn`] enforces:
//! when it last moved a byte either way (`idle_timeout`) and whether a request came
//! in yet (the first head is due within `header_timeout` of the accept).
//! [`Watched`] wraps the connection's IO and notes the time of every read and write.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared by the connection's IO ([`Watched`]), its service and the task driving it.
#[derive(Debug)]
pub(super) struct Activity {
    /// Milliseconds since `epoch` of the last byte read or written.
    last_io_ms: AtomicU64,
    epoch: Instant,
    /// The service has been called for a request.
    served: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            last_io_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            served: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection last moved a byte either way (at first: when it was wrapped).
    pub(super) fn last_io(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed))
    }

    /// Notes that a request came in.
    pub(super) fn request_seen(&self) {
        self.served.store(true, Ordering::Relaxed);
    }

    /// Whether a request came in.
    pub(super) fn has_request(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }
}

/// An IO wrapper that notes in its [`Activity`] when a byte moved.
#[derive(Debug)]
pub(super) struct Watched<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO> Watched<IO> {
    /// Wraps `inner`; the activity starts now.
    pub(super) fn new(inner: IO) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity::new());
        let io = Watched {
            inner,
            activity: activity.clone(),
        };
        (io, activity)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.activity.touch();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, b);
        if let Poll::Ready(Ok(_)) = r {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(_)) = r {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
