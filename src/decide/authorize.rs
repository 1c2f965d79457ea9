//! Phase 4 (SPEC §2 `scopes` / `claims`, §4 `insufficient_scope`): every route
//! scope granted, every claim rule satisfied (the claim equals, or for an array
//! contains, one of the rule's values).

use crate::auth::issuer::Verified;
use crate::deny::Denial;
use crate::routes::Route;
use serde_json::Value;

/// `Ok` when the caller holds every scope and satisfies every claim rule; else 403
/// with the route's scopes for the challenge (none when only a claim rule failed).
pub fn authorize(route: &Route, v: &Verified) -> Result<(), Denial> {
    let scopes_ok = route.scopes.iter().all(|s| v.scopes.iter().any(|g| g == s));
    let claims_ok = route
        .claims
        .iter()
        .all(|rule| match v.claims.get(&rule.claim) {
            Some(Value::Array(items)) => items.iter().any(|i| rule.values.contains(i)),
            Some(x) => rule.values.contains(x),
            None => false,
        });
    if scopes_ok && claims_ok {
        return Ok(());
    }
    Err(Denial::Insufficient(if scopes_ok {
        String::new()
    } else {
        route.scope_param.clone()
    }))
}
