//! What a connection has done lately, for the deadlines [`super::conn`] enforces:
//! when it last moved a byte either way (`idle_timeout`), whether a request came in
//! yet (the first head is due within `header_timeout` of the accept) and, on HTTP/1.1,
//! since when it has waited for the next head (due within `header_timeout` of the
//! previous response's end: one deadline per connection instead of hyper's timer per
//! request, issue 20). [`Watched`] wraps the connection's IO and notes the time of
//! every read and write.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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
    /// Requests the service has been called for (heads received).
    heads: AtomicU32,
    /// Responses whose body is done (written, or dropped).
    answered: AtomicU32,
    /// Milliseconds since `epoch` of the last response's end.
    answered_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            last_io_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            heads: AtomicU32::new(0),
            answered: AtomicU32::new(0),
            answered_ms: AtomicU64::new(0),
        }
    }

    fn ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_io_ms.store(self.ms(), Ordering::Relaxed);
    }

    /// When the connection last moved a byte either way (at first: when it was wrapped).
    pub(super) fn last_io(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed))
    }

    /// Notes that a request came in.
    pub(super) fn request_seen(&self) {
        self.heads.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether a request came in.
    pub(super) fn has_request(&self) -> bool {
        self.heads.load(Ordering::Acquire) > 0
    }

    /// Since when the connection has waited for its next request head: the end of
    /// the last response, when every request so far is answered; `None` while one
    /// is in flight (or before the first, see [`Self::has_request`]).
    pub(super) fn waiting_since(&self) -> Option<Instant> {
        let heads = self.heads.load(Ordering::Acquire);
        let answered = self.answered.load(Ordering::Acquire);
        (heads > 0 && answered == heads)
            .then(|| self.epoch + Duration::from_millis(self.answered_ms.load(Ordering::Acquire)))
    }
}

impl crate::body::Ended for Activity {
    fn ended(&self) {
        self.answered_ms.store(self.ms(), Ordering::Release);
        self.answered.fetch_add(1, Ordering::AcqRel);
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
