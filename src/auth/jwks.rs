//! Keys from identity providers (SPEC §3): JWKS over http/https, OIDC discovery,
//! periodic refresh, on-demand re-fetch for an unknown `kid`, stale-if-error.
//!
//! Guarantees:
//! - a key's family (and so the algorithms it may verify) comes from the JWK itself
//!   (`kty`/`crv`), narrowed by its `alg`; never from a token header. `kty: oct`,
//!   `use: enc`, encryption algorithms and unsupported curves are skipped with a log
//!   line, never an error for the whole set;
//! - a fetch is bounded: [`MAX_BODY`] bytes, [`FETCH_TIMEOUT`] end to end, no redirects;
//! - a failed fetch keeps the last good keys and is retried with capped exponential
//!   back-off; a successful fetch replaces the set, and cached tokens verified by a key
//!   that left it are evicted;
//! - an unknown `kid` causes at most one fetch per [`UNKNOWN_KID_INTERVAL`] per issuer,
//!   and concurrent requests wait on that one fetch (single-flight) instead of starting
//!   their own. The lock is per issuer and only taken on this slow path.
//! - nothing about a token or key material is logged (key ids and URLs are).

use super::cache::TokenCache;
use super::issuer::{Issuer, KeySource};
use super::keys::{KeyFamily, KeySet, VerifyKey};
use crate::tls_client::TlsError;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Largest JWKS or discovery document accepted.
pub const MAX_BODY: usize = 256 * 1024;
/// Deadline for one fetch (connect, response and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP connect deadline within a fetch.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one fetch per issuer in this period because of unknown `kid`s.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// `Cache-Control: max-age` never schedules the next refresh sooner than this.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(30);
/// First retry delay after a failed fetch; doubles up to [`BACKOFF_CAP`].
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay (also never longer than the issuer's `refresh_interval`).
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Why a fetch failed. Messages name URLs and statuses, never document content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// Connection, TLS or protocol failure.
    #[error("request to {0} failed: {1}")]
    Http(String, String),
    /// A status other than 200.
    #[error("{0} answered HTTP {1}")]
    Status(String, u16),
    /// The body is over [`MAX_BODY`].
    #[error("{0}: document larger than {MAX_BODY} bytes")]
    TooLarge(String),
    /// No answer within [`FETCH_TIMEOUT`].
    #[error("{0}: no answer within {FETCH_TIMEOUT:?}")]
    Timeout(String),
    /// Not a JWK set / discovery document.
    #[error("{0}: {1}")]
    Invalid(String, &'static str),
}

/// The HTTP(S) client used for JWKS and discovery fetches.
pub type FetchClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Builds a fetch client trusting the webpki roots plus `ca`.
pub fn client(ca: Option<&std::path::Path>) -> Result<FetchClient, TlsError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.enforce_http(false);
    let tls = crate::tls_client::client_config(ca)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https))
}

/// A fetched document and the `Cache-Control: max-age` it came with.
struct Fetched {
    body: Bytes,
    max_age: Option<Duration>,
}

async fn get(client: &FetchClient, url: &str) -> Result<Fetched, JwksError> {
    let fail = |e: &dyn std::fmt::Display| JwksError::Http(url.to_owned(), e.to_string());
    let uri: http::Uri = url.parse().map_err(|e| fail(&e))?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("portcullis/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| fail(&e))?;
    let work = async {
        let resp = client.request(req).await.map_err(|e| fail(&e))?;
        if resp.status() != http::StatusCode::OK {
            return Err(JwksError::Status(url.to_owned(), resp.status().as_u16()));
        }
        let max_age = resp
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    JwksError::TooLarge(url.to_owned())
                } else {
                    fail(&e)
                }
            })?
            .to_bytes();
        Ok(Fetched { body, max_age })
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| JwksError::Timeout(url.to_owned()))?
}

/// `max-age=N` from one `Cache-Control` value (RFC 9111 §5.2.2.1).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|d| {
        let (name, v) = d.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        v.trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}

/// The discovery URL of an issuer (OIDC Discovery §4): a trailing `/` of the
/// issuer is not doubled.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Reads `jwks_uri` from a discovery document, checking it is for `issuer`
/// (OIDC Discovery §4.3; a trailing `/` difference is tolerated).
fn jwks_uri(url: &str, issuer: &str, body: &[u8]) -> Result<String, JwksError> {
    let bad = |m| JwksError::Invalid(url.to_owned(), m);
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("not a JSON document"))?;
    let named = doc
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or(bad("no `issuer`"))?;
    if named.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(bad("`issuer` does not match the configured issuer"));
    }
    let uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or(bad("no `jwks_uri`"))?;
    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return Err(bad("`jwks_uri` is not an http(s) URL"));
    }
    Ok(uri.to_owned())
}

/// Parses a JWK set. Each key is parsed on its own, so one odd key does not make
/// the set unusable; only a document that is not `{"keys": [...]}` is an error.
pub fn parse_jwks(url: &str, body: &[u8]) -> Result<Vec<(Jwk, VerifyKey)>, JwksError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|_| JwksError::Invalid(url.to_owned(), "not a JSON document"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| JwksError::Invalid(url.to_owned(), "no `keys` array"))?;
    let mut out = Vec::with_capacity(keys.len());
    for (i, raw) in keys.iter().enumerate() {
        let kid = raw.get("kid").and_then(Value::as_str).unwrap_or("");
        let parsed = serde_json::from_value::<Jwk>(raw.clone())
            .map_err(|_| "not a valid JWK")
            .and_then(|jwk| key_from_jwk(&jwk).map(|k| (jwk, k)));
        match parsed {
            Ok(k) => out.push(k),
            Err(why) => tracing::info!(url, index = i, kid, reason = why, "JWKS key skipped"),
        }
    }
    Ok(out)
}

/// Builds a verification key from one JWK: family from `kty`/`crv`, checked sizes,
/// `use`/`key_ops`/`alg` honoured. `Err` is the reason it is skipped.
pub fn key_from_jwk(jwk: &Jwk) -> Result<VerifyKey, &'static str> {
    let c = &jwk.common;
    match &c.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(PublicKeyUse::Encryption) => return Err("`use` is `enc`"),
        Some(_) => return Err("`use` is not `sig`"),
    }
    if let Some(ops) = &c.key_operations {
        if !ops.iter().any(|o| matches!(o, KeyOperations::Verify)) {
            return Err("`key_ops` does not allow `verify`");
        }
    }
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| "bad base64url")
    };
    let family = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => {
            return Err("`kty: oct` keys are never trusted from a JWKS")
        }
        AlgorithmParameters::RSA(p) => {
            let n = b64(&p.n)?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) || b64(&p.e)?.is_empty() {
                return Err("RSA modulus outside 2048..8192 bits");
            }
            KeyFamily::Rsa
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (family, len) = match p.curve {
                EllipticCurve::P256 => (KeyFamily::EcP256, 32),
                EllipticCurve::P384 => (KeyFamily::EcP384, 48),
                _ => return Err("unsupported EC curve (P-256 and P-384 are)"),
            };
            if b64(&p.x)?.len() != len || b64(&p.y)?.len() != len {
                return Err("EC coordinates of the wrong size");
            }
            family
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err("unsupported OKP curve (Ed25519 is)");
            }
            if b64(&p.x)?.len() != 32 {
                return Err("Ed25519 key of the wrong size");
            }
            KeyFamily::Ed25519
        }
        _ => return Err("unsupported key type"),
    };
    let alg = match c.key_algorithm {
        None => None,
        Some(a) => {
            let alg = signing_alg(a).ok_or("`alg` is not a signature algorithm we support")?;
            if !family.allows(alg) {
                return Err("`alg` does not fit the key type");
            }
            Some(alg)
        }
    };
    let key = match &jwk.algorithm {
        // As DER, so the key is parsed once rather than on every verification.
        AlgorithmParameters::RSA(p) => super::keys::rsa_from_components(&b64(&p.n)?, &b64(&p.e)?)
            .map_err(|_| "unusable key material")?,
        _ => DecodingKey::from_jwk(jwk).map_err(|_| "unusable key material")?,
    };
    Ok(VerifyKey::new(c.key_id.clone(), family, alg, key))
}

fn signing_alg(a: KeyAlgorithm) -> Option<Algorithm> {
    use Algorithm as A;
    use KeyAlgorithm as K;
    Some(match a {
        K::RS256 => A::RS256,
        K::RS384 => A::RS384,
        K::RS512 => A::RS512,
        K::PS256 => A::PS256,
        K::PS384 => A::PS384,
        K::PS512 => A::PS512,
        K::ES256 => A::ES256,
        K::ES384 => A::ES384,
        K::EdDSA => A::EdDSA,
        _ => return None,
    })
}

/// When the next scheduled refresh is due: `refresh_interval`, shortened by the
/// server's `max-age`, but never below [`MIN_MAX_AGE`] (or the interval, if shorter).
pub fn next_refresh(interval: Duration, max_age: Option<Duration>) -> Duration {
    max_age.map_or(interval, |m| m.clamp(MIN_MAX_AGE.min(interval), interval))
}

/// Fetch counters for one issuer, kept across reloads (metric-ready).
#[derive(Debug, Default)]
pub struct JwksStats {
    /// Successful fetches.
    pub ok: AtomicU64,
    /// Failed fetches.
    pub error: AtomicU64,
    /// Fetches caused by an unknown `kid` (included in `ok`/`error`).
    pub on_demand: AtomicU64,
    /// Unix time (seconds) of the last fetch attempt; 0 = never.
    pub last_fetch_unix: AtomicU64,
    /// Whether the last fetch succeeded.
    pub last_ok: AtomicBool,
    /// Keys currently in use.
    pub keys: AtomicUsize,
    /// The last error, for the status page.
    pub last_error: Mutex<Option<String>>,
}

struct FetchState {
    /// The keys in use, with the JWK each came from (to keep the same `Arc` for an
    /// unchanged key, so cache entries verified by it stay valid).
    published: Vec<(Jwk, Arc<VerifyKey>)>,
    /// When the last fetch started (for the unknown-kid rate limit).
    last_attempt: Option<Instant>,
}

/// The keys of one JWKS / discovery issuer and how they are kept fresh.
pub struct JwksSource {
    issuer: Arc<Issuer>,
    client: FetchClient,
    cache: Arc<TokenCache>,
    stats: Arc<JwksStats>,
    /// Single-flight: held for the duration of one fetch.
    state: tokio::sync::Mutex<FetchState>,
    /// Completed fetches; lets waiters see that a fetch finished while they queued.
    generation: AtomicU64,
}

impl JwksSource {
    /// A source for `issuer` (which must have a JWKS or discovery source).
    pub fn new(issuer: Arc<Issuer>, cache: Arc<TokenCache>) -> Result<Self, TlsError> {
        Ok(JwksSource {
            client: client(issuer.ca.as_deref())?,
            issuer,
            cache,
            stats: Arc::default(),
            state: tokio::sync::Mutex::new(FetchState {
                published: Vec::new(),
                last_attempt: None,
            }),
            generation: AtomicU64::new(0),
        })
    }

    /// The issuer.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// Fetch counters.
    pub fn stats(&self) -> &Arc<JwksStats> {
        &self.stats
    }

    /// Whether the issuer has keys (SPEC §6 readiness).
    pub fn ready(&self) -> bool {
        !self.issuer.keys.load().keys.is_empty()
    }

    /// Takes over the keys and counters of the same issuer in the previous runtime
    /// (reload), so a reload neither empties the key set nor resets the counters.
    /// Call before [`JwksSource::spawn`].
    pub fn inherit(&self, old: &JwksSource) -> bool {
        let same = old.issuer.iss == self.issuer.iss
            && old.issuer.ca == self.issuer.ca
            && match (&old.issuer.source, &self.issuer.source) {
                (KeySource::Jwks(a), KeySource::Jwks(b)) => a == b,
                (KeySource::Discovery, KeySource::Discovery) => true,
                _ => false,
            };
        if !same || !old.ready() {
            return false;
        }
        self.issuer.keys.store(old.issuer.keys.load_full());
        // With the previous JWKs, the next fetch keeps unchanged keys' `Arc`s (so no
        // cache churn); when a fetch holds the old lock, the next fetch rebuilds them.
        if let (Ok(o), Ok(mut st)) = (old.state.try_lock(), self.state.try_lock()) {
            st.published.clone_from(&o.published);
        }
        true
    }

    /// Shares the counters of `old` (same issuer name across a reload).
    pub fn share_stats(&mut self, old: &JwksSource) {
        self.stats = old.stats.clone();
    }

    /// Where the JWK set is, resolving discovery when configured.
    async fn jwks_url(&self) -> Result<String, JwksError> {
        match &self.issuer.source {
            KeySource::Jwks(url) => Ok(url.clone()),
            KeySource::Discovery => {
                let url = discovery_url(&self.issuer.iss);
                let doc = get(&self.client, &url).await?;
                jwks_uri(&url, &self.issuer.iss, &doc.body)
            }
            KeySource::Static => Err(JwksError::Invalid(
                self.issuer.name.clone(),
                "issuer has static keys",
            )),
        }
    }

    async fn fetch(&self) -> Result<(Vec<(Jwk, VerifyKey)>, Option<Duration>), JwksError> {
        let url = self.jwks_url().await?;
        let doc = get(&self.client, &url).await?;
        Ok((parse_jwks(&url, &doc.body)?, doc.max_age))
    }

    /// Fetches with the state lock held, records the outcome, and swaps the key set
    /// on success. Returns the server's `max-age`.
    async fn fetch_locked(&self, st: &mut FetchState) -> Result<Option<Duration>, JwksError> {
        st.last_attempt = Some(Instant::now());
        let result = self.fetch().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.stats.last_fetch_unix.store(now, Ordering::Relaxed);
        let out = match result {
            Ok((keys, max_age)) => {
                self.apply(st, keys);
                self.stats.ok.fetch_add(1, Ordering::Relaxed);
                crate::metrics::jwks_fetch(&self.issuer.name, true);
                self.stats.last_ok.store(true, Ordering::Relaxed);
                if let Ok(mut e) = self.stats.last_error.lock() {
                    *e = None;
                }
                Ok(max_age)
            }
            Err(e) => {
                self.stats.error.fetch_add(1, Ordering::Relaxed);
                crate::metrics::jwks_fetch(&self.issuer.name, false);
                self.stats.last_ok.store(false, Ordering::Relaxed);
                if let Ok(mut last) = self.stats.last_error.lock() {
                    *last = Some(e.to_string());
                }
                tracing::warn!(
                    issuer = %self.issuer.name,
                    error = %e,
                    keys = st.published.len(),
                    "JWKS fetch failed; keeping the last good keys"
                );
                Err(e)
            }
        };
        self.generation.fetch_add(1, Ordering::Release);
        out
    }

    /// Replaces the key set; unchanged keys keep their `Arc`, and cached tokens
    /// verified by a key that left the set are evicted.
    fn apply(&self, st: &mut FetchState, fetched: Vec<(Jwk, VerifyKey)>) {
        let mut next: Vec<(Jwk, Arc<VerifyKey>)> = Vec::with_capacity(fetched.len());
        for (jwk, key) in fetched {
            let kept = st
                .published
                .iter()
                .find(|(j, _)| *j == jwk)
                .map(|(_, k)| k.clone());
            next.push((jwk, kept.unwrap_or_else(|| Arc::new(key))));
        }
        let dropped: Vec<Arc<VerifyKey>> = st
            .published
            .iter()
            .filter(|(_, old)| !next.iter().any(|(_, k)| Arc::ptr_eq(old, k)))
            .map(|(_, k)| k.clone())
            .collect();
        let added = next
            .iter()
            .filter(|(_, k)| !st.published.iter().any(|(_, o)| Arc::ptr_eq(o, k)))
            .count();
        self.issuer.keys.store(Arc::new(KeySet {
            keys: next.iter().map(|(_, k)| k.clone()).collect(),
        }));
        self.stats.keys.store(next.len(), Ordering::Relaxed);
        if next.is_empty() {
            tracing::warn!(issuer = %self.issuer.name, "JWKS has no usable signature key; tokens of this issuer are refused");
        }
        if added > 0 || !dropped.is_empty() {
            let kids = |ks: &mut dyn Iterator<Item = &Arc<VerifyKey>>| {
                ks.map(|k| k.kid.as_deref().unwrap_or("-").to_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            tracing::info!(
                issuer = %self.issuer.name,
                keys = %kids(&mut next.iter().map(|(_, k)| k)),
                dropped = %kids(&mut dropped.iter()),
                "JWKS key set updated"
            );
        }
        st.published = next;
        if !dropped.is_empty() {
            self.cache
                .evict_where(move |v| dropped.iter().any(|d| Arc::ptr_eq(d, &v.key)));
        }
    }

    /// A scheduled fetch (start-up, refresh, retry).
    pub async fn refresh(&self) -> Result<Option<Duration>, JwksError> {
        let mut st = self.state.lock().await;
        self.fetch_locked(&mut st).await
    }

    /// Called when a token names a `kid` the issuer does not have: waits for a fetch
    /// in flight, or starts one unless one started less than
    /// [`UNKNOWN_KID_INTERVAL`] ago. Returns whether a fetch completed meanwhile.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        let mut st = self.state.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        if st
            .last_attempt
            .is_some_and(|t| t.elapsed() < UNKNOWN_KID_INTERVAL)
        {
            return false;
        }
        self.stats.on_demand.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(issuer = %self.issuer.name, "unknown kid: re-fetching the JWKS");
        let _ = self.fetch_locked(&mut st).await;
        true
    }

    /// Starts the refresh loop: fetch now, then every `refresh_interval` (or sooner
    /// per `max-age`); after a failure retry with exponential back-off.
    pub fn spawn(self: &Arc<Self>) -> AbortHandle {
        let me = self.clone();
        tokio::spawn(async move {
            let interval = me.issuer.refresh_interval.max(Duration::from_secs(1));
            let cap = BACKOFF_CAP.min(interval);
            let mut backoff = BACKOFF_START.min(cap);
            loop {
                let delay = match me.refresh().await {
                    Ok(max_age) => {
                        backoff = BACKOFF_START.min(cap);
                        next_refresh(interval, max_age)
                    }
                    Err(_) => {
                        let d = backoff;
                        backoff = (backoff * 2).min(cap);
                        d
                    }
                };
                tokio::time::sleep(delay).await;
            }
        })
        .abort_handle()
    }
}

/// The JWKS sources of one verifier, index-aligned with its issuers, and their
/// refresh tasks (aborted when this is dropped, e.g. after a reload).
#[derive(Default)]
pub struct JwksSet {
    sources: Vec<Option<Arc<JwksSource>>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl JwksSet {
    /// One source per JWKS / discovery issuer.
    pub fn new(issuers: &[Arc<Issuer>], cache: &Arc<TokenCache>) -> Result<Self, TlsError> {
        let sources = issuers
            .iter()
            .map(|i| match i.source {
                KeySource::Static => Ok(None),
                _ => JwksSource::new(i.clone(), cache.clone()).map(|s| Some(Arc::new(s))),
            })
            .collect::<Result<_, _>>()?;
        Ok(JwksSet {
            sources,
            tasks: Mutex::default(),
        })
    }

    /// The source of issuer `idx`, if it has one.
    pub fn source(&self, idx: usize) -> Option<&Arc<JwksSource>> {
        self.sources.get(idx).and_then(Option::as_ref)
    }

    /// Every JWKS source.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<JwksSource>> {
        self.sources.iter().flatten()
    }

    /// Whether every JWKS issuer has keys.
    pub fn ready(&self) -> bool {
        self.iter().all(|s| s.ready())
    }

    /// Takes keys and counters over from the previous runtime's sources (by issuer
    /// name). Must run before [`JwksSet::start`].
    pub fn inherit(&mut self, old: &JwksSet) {
        for slot in &mut self.sources {
            let Some(new) = slot else { continue };
            let Some(prev) = old.iter().find(|o| o.issuer.name == new.issuer.name) else {
                continue;
            };
            if let Some(s) = Arc::get_mut(new) {
                s.share_stats(prev);
            }
            new.inherit(prev);
        }
    }

    /// Spawns the refresh tasks (needs a tokio runtime; without one, nothing starts).
    pub fn start(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let handles: Vec<AbortHandle> = self.iter().map(JwksSource::spawn).collect();
        if let Ok(mut t) = self.tasks.lock() {
            t.extend(handles);
        }
    }
}

impl Drop for JwksSet {
    fn drop(&mut self) {
        if let Ok(t) = self.tasks.lock() {
            for h in t.iter() {
                h.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Vec<(Jwk, VerifyKey)> {
        parse_jwks("test", v.to_string().as_bytes()).expect("set")
    }

    fn ec_p256() -> Value {
        crate::install_crypto_providers();
        let k = crate::auth::keys::private_key_from_pem(
            ec_pem(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING).as_bytes(),
        )
        .expect("key");
        k.jwk
    }

    fn ec_pem(alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> String {
        use base64::Engine;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("gen");
        let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    }

    fn with(mut v: Value, extra: Value) -> Value {
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }

    #[test]
    fn family_from_the_key_and_alg_honoured() {
        let ec = ec_p256();
        let set = parse(json!({"keys": [
            with(ec.clone(), json!({"kid": "a", "use": "sig", "alg": "ES256"})),
            with(ec.clone(), json!({"kid": "b"})),
        ]}));
        assert_eq!(set.len(), 2);
        assert_eq!(set[0].1.family, KeyFamily::EcP256);
        assert_eq!(set[0].1.alg, Some(Algorithm::ES256));
        assert_eq!(set[0].1.kid.as_deref(), Some("a"));
        assert_eq!(set[1].1.alg, None);
    }

    #[test]
    fn skips_without_failing_the_set() {
        let ec = ec_p256();
        let set = parse(json!({"keys": [
            with(ec.clone(), json!({"kid": "enc", "use": "enc"})),
            with(ec.clone(), json!({"kid": "wrong-alg", "alg": "RS256"})),
            with(ec.clone(), json!({"kid": "enc-alg", "alg": "RSA-OAEP"})),
            with(ec.clone(), json!({"kid": "ops", "key_ops": ["encrypt"]})),
            {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
            {"kty": "OKP", "crv": "X25519", "x": "AA", "kid": "x"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "short"},
            {"kty": "weird", "kid": 7},
            "not an object",
            with(ec, json!({"kid": "good"})),
        ]}));
        let kids: Vec<_> = set.iter().map(|(_, k)| k.kid.clone()).collect();
        assert_eq!(kids, vec![Some("good".to_owned())]);
    }

    #[test]
    fn not_a_set_is_an_error() {
        assert!(parse_jwks("u", b"<html>").is_err());
        assert!(parse_jwks("u", b"{\"nokeys\": 1}").is_err());
        assert!(parse_jwks("u", b"{\"keys\": []}").is_ok_and(|s| s.is_empty()));
    }

    #[test]
    fn cache_control_bounds() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("MAX-AGE = 5"), Some(Duration::from_secs(5)));
        let ten_min = Duration::from_secs(600);
        assert_eq!(next_refresh(ten_min, None), ten_min);
        assert_eq!(
            next_refresh(ten_min, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            next_refresh(ten_min, Some(Duration::from_secs(1))),
            MIN_MAX_AGE
        );
        assert_eq!(
            next_refresh(ten_min, Some(Duration::from_secs(86400))),
            ten_min
        );
        let short = Duration::from_secs(2);
        assert_eq!(next_refresh(short, Some(Duration::ZERO)), short);
    }

    #[test]
    fn discovery_urls() {
        assert_eq!(
            discovery_url("https://idp.example/"),
            "https://idp.example/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp.example/realms/x"),
            "https://idp.example/realms/x/.well-known/openid-configuration"
        );
        let doc = br#"{"issuer": "https://idp.example/", "jwks_uri": "https://idp.example/keys"}"#;
        assert_eq!(
            jwks_uri("u", "https://idp.example", doc).ok().as_deref(),
            Some("https://idp.example/keys")
        );
        assert!(jwks_uri("u", "https://other.example", doc).is_err());
        let doc = br#"{"issuer": "i", "jwks_uri": "file:///etc/passwd"}"#;
        assert!(jwks_uri("u", "i", doc).is_err());
    }
}
