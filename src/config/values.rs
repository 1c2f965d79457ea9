//! Scalar config values: `${ENV_VAR}` expansion in every string (an unset variable is
//! an error, never an empty string) and durations such as `"250ms"`, `"30s"`, `"7d"`.
//!
//! Both are checked while deserializing, so the TOML parser attaches the position
//! of the offending value to the error.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// Expands `${NAME}` references from the process environment.
/// `$$` is not special; a `$` not followed by `{` is kept as is.
pub fn expand_env(s: &str) -> Result<String, String> {
    expand_with(s, |name| std::env::var(name).ok())
}

/// [`expand_env`] with an explicit lookup (for tests).
pub fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if !s.contains("${") {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unterminated `${` in string (expected `${NAME}`)".into());
        };
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "invalid environment variable name `{name}` (letters, digits and `_` only)"
            ));
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `"250ms"`, `"30s"`, `"10m"`, `"2h"`, `"7d"` (one number, one unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("invalid duration `{s}`: missing unit (ms, s, m, h, d)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: expected a whole number then a unit"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration `{s}` is too large"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!(
            "invalid duration `{s}`: unknown unit `{unit}` (use ms, s, m, h or d)"
        )),
    }
}

/// A duration in the config's own notation, with the largest unit that states it
/// exactly: `"30m"`, `"7d"`, `"250ms"` ([`parse_duration`] reads it back unchanged).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// A string with `${ENV}` references expanded.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EnvStr(pub String);

impl fmt::Debug for EnvStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::ops::Deref for EnvStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EnvStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_env(&raw)
            .map(EnvStr)
            .map_err(serde::de::Error::custom)
    }
}

/// A duration string, after `${ENV}` expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = EnvStr::deserialize(d)?;
        parse_duration(&raw)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            ("10m", Duration::from_secs(600)),
            ("2h", Duration::from_secs(7200)),
            ("7d", Duration::from_secs(604_800)),
            ("0s", Duration::ZERO),
        ];
        for (s, d) in ok {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
            assert_eq!(format_duration(d), s, "{d:?}");
        }
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        for bad in [
            "",
            "10",
            "s",
            "10 parsecs",
            "1.5s",
            "-1s",
            "10S",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_expansion() {
        let look = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand_with("plain $ text", look), Ok("plain $ text".into()));
        assert_eq!(expand_with("${A}-${A}", look), Ok("x-x".into()));
        assert!(expand_with("${B}", look)
            .unwrap_err()
            .contains("`B` is not set"));
        assert!(expand_with("${A", look).is_err());
        assert!(expand_with("${}", look).is_err());
        assert!(expand_with("${A-B}", look).is_err());
    }
}
