//! What the inline proxy reports about one request: the access line's fields and the
//! metrics' route and decision, filled as the request goes through the front door.

use crate::decide;

/// What the access log line reports.
#[derive(Default)]
pub(super) struct Outcome {
    /// Whether an access line will be written (the strings below are filled only then).
    pub(super) log: bool,
    pub(super) route_idx: Option<usize>,
    /// The built-in endpoint answered (its `route` label), if one was.
    pub(super) builtin: Option<&'static str>,
    pub(super) path: Option<String>,
    pub(super) route: Option<String>,
    pub(super) user: Option<String>,
    pub(super) upstream: Option<String>,
    pub(super) decision: &'static str,
    /// A CORS preflight was answered (its headers are set already).
    pub(super) preflight: bool,
}

impl Outcome {
    /// The matched route and the caller of `decision`, for the metrics and the log.
    pub(super) fn note(&mut self, decision: &decide::Decision<'_>) {
        if let Some(m) = &decision.matched {
            self.route_idx = Some(m.index);
            if self.log {
                self.route = Some(m.route.name.clone());
            }
        }
        if let (Some(v), true) = (&decision.caller, self.log) {
            self.user = Some(v.identity.clone());
        }
    }
}
