//! The body types of the proxy path. [`ProxyBody`], the response body: either a small
//! body we produced (denials, echo) or the upstream's body streamed through untouched
//! (an enum instead of a boxed trait object keeps the streaming path free of an
//! allocation per response); its data bytes are counted as they pass when a
//! [`ProxyBody::on_finish`] callback is set (the access log's `bytes_out`, SPEC §11),
//! which runs once the body is done or dropped. [`ReqBody`], the client's request
//! body, streamed, counting its data bytes (`bytes_in`). Nothing is buffered.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Boxed error for bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project_lite::pin_project! {
    #[project = Proj]
    enum Kind {
        Full { #[pin] inner: Full<Bytes> },
        Stream { #[pin] inner: Incoming },
        Raw { #[pin] inner: crate::h1::RawBody },
    }
}

pin_project_lite::pin_project! {
    /// A response body.
    pub struct ProxyBody {
        #[pin]
        kind: Kind,
        finish: Option<Box<Finish>>,
        end: Option<EndGuard>,
    }
}

/// Told when a response body is done (written to the end, or dropped): the HTTP/1.1
/// connection's wait for its next request head starts then.
pub trait Ended: Send + Sync {
    /// The body is done.
    fn ended(&self);
}

/// Calls [`Ended::ended`] when dropped.
struct EndGuard(Arc<dyn Ended>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.ended();
    }
}

/// What runs once a response body is done: the data bytes it carried.
struct Finish {
    bytes: u64,
    f: Option<Box<dyn FnOnce(u64) + Send + Sync>>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            f(self.bytes);
        }
    }
}

impl ProxyBody {
    /// A body from bytes.
    pub fn full(b: impl Into<Bytes>) -> Self {
        ProxyBody {
            kind: Kind::Full {
                inner: Full::new(b.into()),
            },
            finish: None,
            end: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// The upstream's body.
    pub fn stream(inner: Incoming) -> Self {
        ProxyBody {
            kind: Kind::Stream { inner },
            finish: None,
            end: None,
        }
    }

    /// The upstream's body read by our own HTTP/1.1 client ([`crate::h1`]).
    pub(crate) fn raw(inner: crate::h1::RawBody) -> Self {
        ProxyBody {
            kind: Kind::Raw { inner },
            finish: None,
            end: None,
        }
    }

    /// Counts the data bytes sent from now on and calls `f` with them once the body
    /// is done or dropped (the client went away, the connection was upgraded).
    pub fn on_finish(mut self, f: impl FnOnce(u64) + Send + Sync + 'static) -> Self {
        self.finish = Some(Box::new(Finish {
            bytes: 0,
            f: Some(Box::new(f)),
        }));
        self
    }
}

impl ProxyBody {
    /// Tells `to` once the body is done or dropped.
    pub fn on_end(mut self, to: Arc<dyn Ended>) -> Self {
        self.end = Some(EndGuard(to));
        self
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = match this.kind.project() {
            Proj::Full { inner } => inner.poll_frame(cx).map_err(|e| match e {}),
            Proj::Stream { inner } => inner.poll_frame(cx).map_err(Into::into),
            Proj::Raw { inner } => inner.poll_frame(cx).map_err(Into::into),
        };
        if let (Some(f), Poll::Ready(Some(Ok(frame)))) = (this.finish.as_mut(), &polled) {
            f.bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { inner } => inner.is_end_stream(),
            Kind::Stream { inner } => inner.is_end_stream(),
            Kind::Raw { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { inner } => inner.size_hint(),
            Kind::Stream { inner } => inner.size_hint(),
            Kind::Raw { inner } => inner.size_hint(),
        }
    }
}

/// The client's request body, streamed, its data bytes added to a shared count
/// when there is one (only the access line reads it).
pub struct ReqBody {
    inner: Incoming,
    read: Option<Arc<AtomicU64>>,
}

impl ReqBody {
    /// `inner`, counted into `read` when given.
    pub fn new(inner: Incoming, read: Option<Arc<AtomicU64>>) -> Self {
        ReqBody { inner, read }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Some(read), Poll::Ready(Some(Ok(frame)))) = (&self.read, &polled) {
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            read.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
