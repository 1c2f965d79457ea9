//! Request handling: [`handler`] runs the phases (normalize path -> match route ->
//! authenticate -> authorize -> rewrite -> forward -> rewrite response -> log);
//! [`headers`] holds the header rules, [`upstream`] the pooled clients, [`echo`]
//! the built-in echo upstream, [`upgrade`] which tunnels may open (WebSocket only).

pub mod echo;
pub mod handler;
pub mod headers;
pub mod upgrade;
pub mod upstream;
