//! `[forward_auth]` -> [`ForwardAuth`] (SPEC §8): the decision listener's address and
//! its one header convention. An unknown convention is an error naming the three.

use super::Cx;
use crate::config::file::RawForwardAuth;
use crate::config::{Convention, ForwardAuth};
use crate::defaults;

impl RawForwardAuth {
    /// `None` when a key is invalid (reported).
    pub(super) fn compile(self, cx: &mut Cx<'_>) -> Option<ForwardAuth> {
        let listen = match &self.listen {
            Some(l) => cx.addr(l),
            None => Some(defaults::FORWARD_AUTH_LISTEN),
        };
        let headers = match &self.headers {
            None => Convention::parse(defaults::FORWARD_AUTH_HEADERS),
            Some(h) => {
                let found = Convention::parse(h.get_ref());
                if found.is_none() {
                    let known: Vec<_> = Convention::ALL.iter().map(|c| c.as_str()).collect();
                    cx.rep.at(
                        h.span(),
                        format!(
                            "unknown [forward_auth] headers `{}` (one of: {})",
                            &**h.get_ref(),
                            known.join(", ")
                        ),
                    );
                }
                found
            }
        };
        Some(ForwardAuth {
            listen: listen?,
            headers: headers?,
        })
    }
}
