//! Decoding the JOSE header and claims set of a compact JWS, refusing what a
//! lenient parser would accept: oversized parts, non-canonical base64url, duplicate
//! JSON member names (RFC 7515 §5.2 lets us reject them; we do, so two parsers can
//! never disagree about a claim).

use super::error::TokenError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Largest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The parts of a compact JWS.
pub struct Parts<'a> {
    /// `header.payload`, the signed message.
    pub message: &'a str,
    /// base64url header.
    pub header: &'a str,
    /// base64url payload.
    pub payload: &'a str,
    /// base64url signature.
    pub signature: &'a str,
}

/// Splits a compact JWS into its three parts.
pub fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN || token.is_empty() {
        return Err(TokenError::Malformed);
    }
    let (message, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, payload) = message.split_once('.').ok_or(TokenError::Malformed)?;
    if header.is_empty() || payload.is_empty() || signature.is_empty() || payload.contains('.') {
        return Err(TokenError::Malformed);
    }
    Ok(Parts {
        message,
        header,
        payload,
        signature,
    })
}

/// Decodes strict base64url without padding.
pub fn b64(s: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed)
}

/// Decodes a base64url JSON object, rejecting duplicate member names.
pub fn json_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = b64(part)?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let map = de
        .deserialize_map(StrictMap)
        .map_err(|_| TokenError::Malformed)?;
    de.end().map_err(|_| TokenError::Malformed)?;
    Ok(map)
}

struct StrictMap;

impl<'de> Visitor<'de> for StrictMap {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some((k, v)) = access.next_entry::<String, Value>()? {
            if map.insert(k, v).is_some() {
                return Err(serde::de::Error::custom("duplicate member"));
            }
        }
        Ok(map)
    }
}

/// A NumericDate claim (RFC 7519 §2): a JSON number, possibly fractional.
pub fn numeric_date(v: Option<&Value>) -> Result<Option<f64>, TokenError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or(TokenError::Malformed),
        Some(_) => Err(TokenError::Malformed),
    }
}

/// Scopes granted by a token: the `scope` string (space-separated) or the `scp` array/string.
pub fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_ascii_whitespace().map(str::to_owned)),
            Some(Value::Array(a)) => {
                out.extend(a.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn split_rules() {
        assert!(split("a.b.c").is_ok());
        for bad in ["", "a.b", "a..c", ".b.c", "a.b.", "a.b.c.d"] {
            assert!(split(bad).is_err(), "{bad}");
        }
        assert!(split(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }

    #[test]
    fn objects() {
        assert!(json_object(&enc(r#"{"a":1}"#)).is_ok());
        assert_eq!(
            json_object(&enc(r#"{"a":1,"a":2}"#)),
            Err(TokenError::Malformed)
        );
        assert_eq!(json_object(&enc("[1]")), Err(TokenError::Malformed));
        assert_eq!(
            json_object(&enc(r#"{"a":1} x"#)),
            Err(TokenError::Malformed)
        );
        // Padding and the standard alphabet are not base64url.
        assert_eq!(json_object("eyJhIjoxfQ=="), Err(TokenError::Malformed));
        assert_eq!(json_object("eyJh+joxfQ"), Err(TokenError::Malformed));
    }

    #[test]
    fn dates_and_scopes() {
        assert_eq!(numeric_date(Some(&serde_json::json!(5))), Ok(Some(5.0)));
        assert_eq!(numeric_date(Some(&serde_json::json!(5.5))), Ok(Some(5.5)));
        assert!(numeric_date(Some(&serde_json::json!("5"))).is_err());
        let c = serde_json::json!({"scope": "a b", "scp": ["c"]});
        let c = c.as_object().cloned().unwrap_or_default();
        assert_eq!(scopes(&c), vec!["a", "b", "c"]);
    }
}
