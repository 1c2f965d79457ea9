//! `[identity]` -> [`Identity`]: the identity header and claim, more claims into
//! headers, and the folded list of every identity header name a client-sent header
//! is stripped against (lower case, `_` written as `-`).

use super::Cx;
use crate::config::file::RawIdentity;
use crate::config::Identity;
use crate::defaults;
use http::header::HeaderName;

impl RawIdentity {
    pub(super) fn compile(self, cx: &mut Cx<'_>) -> Identity {
        let default = || HeaderName::from_static(defaults::IDENTITY_HEADER);
        let header = match &self.header {
            Some(h) => cx
                .header_name(h.get_ref(), h.span())
                .unwrap_or_else(default),
            None => default(),
        };
        let mut claims_to_headers = Vec::new();
        for (name, claim) in self.claims_to_headers {
            if let Some(h) = cx.header_name(&name, claim.span()) {
                claims_to_headers.push((h, claim.into_inner().0));
            }
        }
        let fold = |h: &HeaderName| h.as_str().replace('_', "-");
        let mut strip: Vec<String> = std::iter::once(fold(&header))
            .chain(claims_to_headers.iter().map(|(h, _)| fold(h)))
            .collect();
        strip.sort();
        strip.dedup();
        Identity {
            header,
            claim: self
                .claim
                .map_or_else(|| defaults::IDENTITY_CLAIM.to_owned(), |c| c.0),
            forward_authorization: self
                .forward_authorization
                .unwrap_or(defaults::FORWARD_AUTHORIZATION),
            claims_to_headers,
            strip,
            assertion: None,
        }
    }
}
