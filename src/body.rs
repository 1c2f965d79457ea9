//! The response body type: either a small body we produced (denials, echo) or the
//! upstream's body streamed through untouched. An enum instead of a boxed trait
//! object keeps the streaming path free of an allocation per response.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Boxed error for bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project_lite::pin_project! {
    /// A response body.
    #[project = Proj]
    pub enum ProxyBody {
        /// Produced by portcullis.
        Full { #[pin] inner: Full<Bytes> },
        /// Streamed from the upstream.
        Stream { #[pin] inner: Incoming },
    }
}

impl ProxyBody {
    /// A body from bytes.
    pub fn full(b: impl Into<Bytes>) -> Self {
        ProxyBody::Full {
            inner: Full::new(b.into()),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// The upstream's body.
    pub fn stream(inner: Incoming) -> Self {
        ProxyBody::Stream { inner }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            Proj::Full { inner } => inner.poll_frame(cx).map_err(|e| match e {}),
            Proj::Stream { inner } => inner.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full { inner } => inner.is_end_stream(),
            ProxyBody::Stream { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full { inner } => inner.size_hint(),
            ProxyBody::Stream { inner } => inner.size_hint(),
        }
    }
}
