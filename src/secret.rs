//! [`Secret`]: a config value that must never reach a log line. Its `Debug` prints
//! `[redacted]`, so `{:?}` of the compiled [`super::Config`] (or of a raw section)
//! shows no HMAC secret, Redis password or credential-bearing URL. It has no
//! `Display`; reading the value is explicit (`*secret`, [`Secret::expose`]).
//!
//! Why not the `secrecy` crate: its value is zeroizing memory on drop, which buys
//! nothing here (the same bytes are copied into `jsonwebtoken` keys and the Redis
//! client, which do not zeroize), while its `SecretBox` needs a `CloneableSecret`
//! marker for the `Clone` the compiled config needs. What we need is the Debug.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A value whose `Debug` is `[redacted]`.
///
/// `PartialEq` is an ordinary comparison (used to compare configs across a reload),
/// not a constant-time one: never compare client input against a `Secret` with it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Reads through to the value's own target (`Secret<String>` reads as `str`), so a
/// secret passes where the plain value did.
impl<T: std::ops::Deref> std::ops::Deref for Secret<T> {
    type Target = T::Target;
    fn deref(&self) -> &T::Target {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_is_redacted_and_deref_reads_the_value() {
        let s = Secret::new("redis://u:hunter2@h/0".to_string());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(&*s, "redis://u:hunter2@h/0");
        assert_eq!(s.expose(), "redis://u:hunter2@h/0");
        assert_eq!(s.len(), 21);
    }
}
