//! An answer's head: parsed with httparse from the connection's buffer (interim 1xx
//! heads skipped), its fields shared with the buffer, and its framing decided once
//! (RFC 9112 §6.3).

use super::body::{Chunk, Framing};
use super::{Conn, Error, MAX_HEADERS};
use bytes::Buf;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};

impl Conn {
    /// The answer's head when the buffer holds all of it (interim 1xx heads are
    /// consumed), with its framing and whether the connection may be reused.
    #[allow(clippy::type_complexity)]
    pub(super) fn parse_head(
        &mut self,
        to_head: bool,
    ) -> Result<Option<(http::response::Parts, Framing, bool)>, Error> {
        loop {
            // (name start, end, value start, end) per field: offsets into the head.
            let mut fields = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
            let base = self.buf.as_ptr() as usize;
            let mut hs = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut r = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut r, &self.buf, &mut hs);
            let n = match parsed {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(Error::Invalid("too many header fields"))
                }
                Err(_) => return Err(Error::Invalid("malformed answer head")),
            };
            let code = r.code.unwrap_or(0);
            let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid("bad status"))?;
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                self.buf.advance(n);
                continue;
            }
            let version = match r.version {
                Some(1) => Version::HTTP_11,
                _ => Version::HTTP_10,
            };
            let reason = r.reason.filter(|r| Some(*r) != status.canonical_reason());
            let reason = reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r.as_bytes()).ok());
            let count = r.headers.len();
            let offset = |p: *const u8| (p as usize - base) as u32; // < MAX_HEAD + a read
            for (f, h) in fields.iter_mut().zip(r.headers.iter()) {
                let (name, value) = (offset(h.name.as_ptr()), offset(h.value.as_ptr()));
                *f = (
                    name,
                    name + h.name.len() as u32,
                    value,
                    value + h.value.len() as u32,
                );
            }
            let head = self.buf.split_to(n).freeze();
            // Room for what the proxy adds on the way back (request id, security
            // headers, CORS): growing a header map rehashes it each time.
            let mut headers = HeaderMap::with_capacity(count + 16);
            let mut frame = FramingFacts::default();
            for &(ns, ne, vs, ve) in &fields[..count] {
                let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
                let name = HeaderName::from_bytes(&head[ns..ne])
                    .map_err(|_| Error::Invalid("bad header name"))?;
                let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
                    .map_err(|_| Error::Invalid("bad header value"))?;
                frame.see(&name, &value)?;
                headers.append(name, value);
            }
            let (framing, reuse) = frame.decide(to_head, status, version)?;
            let mut parts = Response::new(()).into_parts().0;
            parts.status = status;
            parts.version = version;
            parts.headers = headers;
            if let Some(reason) = reason {
                parts.extensions.insert(reason);
            }
            return Ok(Some((parts, framing, reuse)));
        }
    }
}

/// What the framing headers of an answer said.
#[derive(Default)]
struct FramingFacts {
    transfer_encoding: bool,
    chunked_last: bool,
    content_length: Option<u64>,
    close: bool,
}

impl FramingFacts {
    fn see(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), Error> {
        let text = || {
            value
                .to_str()
                .map_err(|_| Error::Invalid("bad framing header"))
        };
        if name == http::header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            let last = text()?.rsplit(',').next().unwrap_or_default();
            self.chunked_last = last.trim().eq_ignore_ascii_case("chunked");
        } else if name == http::header::CONTENT_LENGTH {
            for v in text()?.split(',') {
                let v = v.trim();
                if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Invalid("bad Content-Length"));
                }
                let n: u64 = v
                    .parse()
                    .map_err(|_| Error::Invalid("bad Content-Length"))?;
                if self.content_length.is_some_and(|m| m != n) {
                    return Err(Error::Invalid("differing Content-Length values"));
                }
                self.content_length = Some(n);
            }
        } else if name == http::header::CONNECTION {
            self.close |= text()?
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
        Ok(())
    }

    /// RFC 9112 §6.3: the framing, and whether the connection may carry another
    /// request after it.
    fn decide(
        self,
        to_head: bool,
        status: StatusCode,
        version: Version,
    ) -> Result<(Framing, bool), Error> {
        if self.transfer_encoding && self.content_length.is_some() {
            return Err(Error::Invalid("Transfer-Encoding with Content-Length"));
        }
        let reuse = version == Version::HTTP_11 && !self.close;
        let no_body = to_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        Ok(if status == StatusCode::SWITCHING_PROTOCOLS {
            (Framing::Length(0), false) // never asked for: the caller refuses it
        } else if no_body {
            (Framing::Length(0), reuse)
        } else if self.transfer_encoding {
            if self.chunked_last {
                (Framing::Chunked(Chunk::Size), reuse)
            } else {
                (Framing::Close, false)
            }
        } else if let Some(n) = self.content_length {
            (Framing::Length(n), reuse)
        } else {
            (Framing::Close, false)
        })
    }
}
