//! `[cache]` -> the verified-token cache size (0 turns the cache off).

use super::Cx;
use crate::config::file::RawCache;
use crate::defaults;

impl RawCache {
    pub(super) fn compile(self, cx: &mut Cx<'_>) -> u64 {
        match self.tokens {
            None => defaults::CACHE_TOKENS,
            Some(n) => u64::try_from(*n.get_ref()).unwrap_or_else(|_| {
                cx.rep.at(n.span(), "`tokens` must be 0 or more");
                0
            }),
        }
    }
}
