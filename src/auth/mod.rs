//! Authentication: finding the token in a request ([`extract`]), the keys that
//! verify it ([`keys`], fetched and refreshed by [`jwks`]), verification itself ([`verify`]) and the verified-token
//! cache ([`cache`]) and the revocation check ([`revocation`]).

pub mod cache;
pub mod claims;
pub mod dpop;
pub mod error;
pub mod extract;
pub mod issuer;
pub mod jwks;
pub mod keys;
pub mod revocation;
pub mod verify;
