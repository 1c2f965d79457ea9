//! Reading an `application/x-www-form-urlencoded` request body (RFC 6749 §4.3.2,
//! RFC 7009 §2.1) the way FastAPI's `OAuth2PasswordRequestForm` receives it, but
//! defensively: the body is streamed in under a byte cap and a deadline (never
//! buffered unbounded), every name and value must be UTF-8 once decoded, and a
//! parameter sent twice is refused (RFC 6749 §3.2). Unknown parameters are ignored.

use crate::body::ReqBody;
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::BodyExt;
use std::time::Duration;

/// Largest form body accepted.
pub const MAX_BODY: usize = 16 * 1024;

/// Why a form body was refused. Every case is a 400 (`invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// Not `application/x-www-form-urlencoded`.
    #[error("Content-Type must be application/x-www-form-urlencoded")]
    ContentType,
    /// Over [`MAX_BODY`].
    #[error("Request body too large")]
    TooLarge,
    /// The body did not arrive in time or the connection failed.
    #[error("Request body incomplete")]
    Incomplete,
    /// A name or value is not UTF-8 once percent-decoded.
    #[error("Request body is not valid UTF-8")]
    NotUtf8,
    /// A parameter appears twice.
    #[error("Repeated parameter")]
    Repeated,
}

impl FormError {
    /// Whether the body may be left partly unread (the connection should close).
    pub fn body_unread(self) -> bool {
        matches!(self, FormError::TooLarge | FormError::Incomplete)
    }
}

/// Decoded parameters, in order.
#[derive(Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are passwords and tokens: names only.
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Form {
    /// A parameter's value; an empty value counts as absent (as in FastAPI forms).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Parses a body.
    pub fn parse(body: &[u8]) -> Result<Form, FormError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let k = decode(k)?;
            if pairs.iter().any(|(x, _)| *x == k) {
                return Err(FormError::Repeated);
            }
            pairs.push((k, decode(v)?));
        }
        Ok(Form { pairs })
    }
}

/// `+` is a space, `%XX` a byte; a `%` not followed by two hex digits stays as is
/// (the WHATWG URL standard's rule). The result must be UTF-8.
fn decode(s: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                s.get(i + 1).and_then(|h| hex(*h)),
                s.get(i + 2).and_then(|l| hex(*l)),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Whether the request declares a form body (`charset` and other parameters allowed).
pub fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Reads and parses the form body of a request, within `deadline`.
pub async fn read(
    headers: &http::HeaderMap,
    body: ReqBody,
    deadline: Duration,
) -> Result<Form, FormError> {
    if !is_form(headers) {
        return Err(FormError::ContentType);
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(FormError::TooLarge);
    }
    let bytes = tokio::time::timeout(deadline, collect(body))
        .await
        .map_err(|_| FormError::Incomplete)??;
    Form::parse(&bytes)
}

async fn collect(mut body: ReqBody) -> Result<Bytes, FormError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| FormError::Incomplete)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_BODY {
                return Err(FormError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastapi_swagger_form() {
        // What Swagger UI's "Authorize" sends for OAuth2PasswordBearer.
        let f = Form::parse(
            b"grant_type=password&username=johndoe&password=s%C3%A9cret+x%21&scope=me+items&client_id=&client_secret=",
        )
        .unwrap();
        assert_eq!(f.get("grant_type"), Some("password"));
        assert_eq!(f.get("username"), Some("johndoe"));
        assert_eq!(f.get("password"), Some("sécret x!"));
        assert_eq!(f.get("scope"), Some("me items"));
        assert_eq!(f.get("client_id"), None);
        assert_eq!(f.get("nope"), None);
    }

    #[test]
    fn hostile_bodies() {
        assert_eq!(
            Form::parse(b"password=%FF").unwrap_err(),
            FormError::NotUtf8
        );
        assert_eq!(
            Form::parse(b"password=\xff").unwrap_err(),
            FormError::NotUtf8
        );
        assert_eq!(Form::parse(b"%C3=x").unwrap_err(), FormError::NotUtf8);
        assert_eq!(
            Form::parse(b"username=a&username=b").unwrap_err(),
            FormError::Repeated
        );
        let f = Form::parse(b"a=%&b=%4&c=%zz&d&&e==").unwrap();
        assert_eq!(f.get("a"), Some("%"));
        assert_eq!(f.get("b"), Some("%4"));
        assert_eq!(f.get("c"), Some("%zz"));
        assert_eq!(f.get("d"), None);
        assert_eq!(f.get("e"), Some("="));
        assert!(Form::parse(b"").unwrap().get("x").is_none());
        assert!(format!("{f:?}").contains("\"a\""));
    }

    #[test]
    fn content_types() {
        let mut h = http::HeaderMap::new();
        assert!(!is_form(&h));
        for ok in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
        ] {
            h.insert(CONTENT_TYPE, ok.parse().unwrap());
            assert!(is_form(&h), "{ok}");
        }
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_form(&h));
    }
}
