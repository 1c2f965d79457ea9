//! Connections: everything between the listening socket and [`crate::proxy::handler`].
//! HTTP/1.1 and HTTP/2 share one listener; the version is sniffed from the first bytes
//! (the preface ALPN `h2` clients send, or prior knowledge in plain HTTP).
//!
//! | file | owns |
//! |---|---|
//! | [`accept`] | the accept loop ([`serve`]): connection permits, TLS handshake, back-off when `accept()` fails (EMFILE) |
//! | [`limits`] | the open-files limit (`RLIMIT_NOFILE`) and the default `max_connections` it allows |
//! | `conn` | one connection: sniff, guard, hyper's HTTP/1.1 or HTTP/2 builder, the per-request service, `header_timeout` / `idle_timeout` / `max_header_bytes`, the guard's refusals (SPEC §4) |
//! | `idle` | when a connection last moved a byte, and whether a request came in (the deadlines `conn` enforces) |
//! | `drain` | shutdown (SPEC §6): the drain signal, and waiting for open and upgraded connections until `shutdown_grace` |
//! | [`sniff`] | HTTP/1.1 or HTTP/2 from the first bytes, replayed to hyper |
//! | [`smuggle`] | the request-smuggling guard that frames every HTTP/1.1 request before hyper |
//!
//! The certificates the listener presents are [`crate::tls`]'s (`Certs`, `server_config`).

pub mod accept;
mod conn;
mod drain;
mod idle;
pub mod smuggle;
pub mod sniff;

pub use accept::serve;
