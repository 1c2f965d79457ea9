//! The inline proxy, front door 1: [`handler`] asks the decision ([`crate::decide`]),
//! then rewrites and forwards (rewrite -> [`send`] -> rewrite response -> log);
//! [`headers`] holds the header rules, [`request_id`] the `X-Request-Id`, [`echo`]
//! the built-in echo upstream, [`upgrade`] which tunnels may open (WebSocket only),
//! [`client`] the client behind trusted proxies (SPEC §11), [`access`] the access line,
//! [`cors`] CORS preflights and headers.
//! The upstream handles and their pooled clients are [`crate::upstream`].

pub mod access;
mod builtin;
pub mod client;
pub mod cors;
pub mod echo;
pub mod handler;
pub mod headers;
mod outcome;
pub mod request_id;
mod send;
pub mod upgrade;
