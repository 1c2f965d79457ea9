//! Path patterns (`/items/*`, `/admin/**`) and host rules (`api.example.com`,
//! `*.example.com`), compiled once at load time; matching allocates nothing, and
//! `covers` decides at load time whether one pattern matches all another does.

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// Matches exactly this (case-sensitive).
    Lit(String),
    /// `*`: exactly one non-empty segment.
    Any,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as written.
    pub source: String,
    segs: Vec<Seg>,
    /// Trailing `/**`: zero or more further segments.
    rest: bool,
}

impl PathPattern {
    /// Compiles a pattern such as `/api/*/items/**`.
    pub fn parse(p: &str) -> Result<Self, String> {
        let Some(body) = p.strip_prefix('/') else {
            return Err(format!("path pattern `{p}` must start with `/`"));
        };
        if p.contains("//") {
            return Err(format!("path pattern `{p}` contains `//`"));
        }
        let (body, rest) = if body == "**" {
            ("", true)
        } else if let Some(b) = body.strip_suffix("/**") {
            (b, true)
        } else {
            (body, false)
        };
        let mut segs = Vec::new();
        if !(rest && body.is_empty()) {
            for s in body.split('/') {
                segs.push(match s {
                    "*" => Seg::Any,
                    "**" => return Err(format!("`**` is only allowed at the end of `{p}`")),
                    "." | ".." => return Err(format!("dot segment in path pattern `{p}`")),
                    _ if s.contains('*') => {
                        return Err(format!(
                            "`*` must be a whole segment in `{p}` (e.g. `/a/*/b`)"
                        ))
                    }
                    _ if s.contains('%') || s.contains('\\') => {
                        return Err(format!(
                            "path pattern `{p}` must be written decoded, without `%` or `\\`"
                        ))
                    }
                    _ => Seg::Lit(s.to_owned()),
                });
            }
        }
        Ok(PathPattern {
            source: p.to_owned(),
            segs,
            rest,
        })
    }

    /// Whether the normalized path matches.
    pub fn matches(&self, normalized: &str) -> bool {
        let mut it = crate::path::segments(normalized);
        for seg in &self.segs {
            match (seg, it.next()) {
                (Seg::Lit(l), Some(s)) if l == s => {}
                (Seg::Any, Some(s)) if !s.is_empty() => {}
                _ => return false,
            }
        }
        self.rest || it.next().is_none()
    }

    /// Whether every path `other` matches is also matched by `self`.
    pub fn covers(&self, other: &PathPattern) -> bool {
        let seg_covers = |a: &Seg, b: &Seg| match (a, b) {
            (Seg::Any, _) => true,
            (Seg::Lit(x), Seg::Lit(y)) => x == y,
            (Seg::Lit(_), Seg::Any) => false,
        };
        if self.rest {
            // `other` must have at least as many fixed segments, and agree on them.
            other.segs.len() >= self.segs.len()
                && self
                    .segs
                    .iter()
                    .zip(&other.segs)
                    .all(|(a, b)| seg_covers(a, b))
        } else {
            !other.rest
                && other.segs.len() == self.segs.len()
                && self
                    .segs
                    .iter()
                    .zip(&other.segs)
                    .all(|(a, b)| seg_covers(a, b))
        }
    }
}

/// A compiled host rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Exact host, lowercase.
    Exact(String),
    /// `*.example.com`: the suffix `.example.com`, lowercase.
    Suffix(String),
}

impl HostMatch {
    /// Parses `api.example.com` or `*.example.com`: a host as [`crate::host::parse`]
    /// accepts it, without a port, normalized the same way (case folded, one
    /// trailing `.` removed) so that it is compared with normalized request hosts.
    pub fn parse(h: &str) -> Result<Self, String> {
        let (wild, name) = match h.strip_prefix("*.") {
            Some(sfx) => (true, sfx),
            None => (false, h),
        };
        match crate::host::parse(name.as_bytes()) {
            Ok(n) if n.port().is_none() && !(wild && n.name().starts_with('[')) => Ok(if wild {
                HostMatch::Suffix(format!(".{}", n.name()))
            } else {
                HostMatch::Exact(n.name().to_owned())
            }),
            _ => Err(format!(
                "invalid host `{h}` (an exact name or `*.example.com`, no port)"
            )),
        }
    }

    /// Matches a request host name: normalized by [`crate::host`] (port removed,
    /// one trailing `.` removed). Case is still ignored, as defence in depth.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(e) => host.eq_ignore_ascii_case(e),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
        }
    }

    pub(crate) fn covers(&self, other: &HostMatch) -> bool {
        match (self, other) {
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Suffix(a), HostMatch::Exact(b)) => b.len() > a.len() && b.ends_with(a),
            (HostMatch::Suffix(a), HostMatch::Suffix(b)) => b.ends_with(a),
            (HostMatch::Exact(_), HostMatch::Suffix(_)) => false,
        }
    }
}
