//! Connections: everything between the listening socket and [`crate::proxy::handler`].
//! HTTP/1.1 and HTTP/2 share one listener; the version is sniffed from the first bytes
//! (the preface ALPN `h2` clients send, or prior knowledge in plain HTTP).
//!
//! | file | owns |
//! |---|---|
//! | [`accept`] | the accept loop ([`serve`]): connection permits, TLS handshake, back-off when `accept()` fails (EMFILE) |
//! | `conn` | one connection: sniff, guard, hyper's HTTP/1.1 or HTTP/2 builder, the per-request service, `header_timeout` / `idle_timeout` / `max_header_bytes`, the guard's refusals (SPEC §4) |
//! | `idle` | when a connection last moved a byte, and whether a request came in (the deadlines `conn` enforces) |
//! | `drain` | shutdown (SPEC §6): the drain signal, and waiting for open and upgraded connections until `shutdown_grace` |
//! | [`sniff`] | HTTP/1.1 or HTTP/2 from the first bytes, replayed to hyper |
//! | [`smuggle`] | the request-smuggling guard that frames every HTTP/1.1 request before hyper |
//!
//! The certificates the listener presents are [`crate::tls`]'s (`Certs`, `server_config`);
//! the open-files limit and the default `max_connections` it allows are [`crate::rlimit`]'s.

/// `AsyncWrite` for a wrapper that only watches the read side: every write call goes
/// to its field `inner` unchanged.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<IO> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                b: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, b)
            }
            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

pub mod accept;
mod conn;
mod drain;
mod idle;
pub mod smuggle;
pub mod sniff;

pub use accept::serve;
