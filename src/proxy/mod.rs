//! Request handling: [`handler`] runs the phases (normalize path -> match route ->
//! authenticate -> authorize -> rewrite -> forward -> rewrite response -> log);
//! [`headers`] holds the header rules, [`upstream`] the pooled clients, [`echo`]
//! the built-in echo upstream.

pub mod echo;
pub mod handler;
pub mod headers;
pub mod upstream;
