//! An HTTP client with a cookie jar that follows redirects by hand (reqwest without
//! its `cookies` feature): what a browser does at the HTTP level, without one, for
//! the sign-in tests that look at each hop (tests/login.rs). Cookies are kept by
//! name only (every server in the tests is on 127.0.0.1, and cookies ignore ports).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One answer.
#[derive(Debug, Clone)]
pub struct Hop {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    /// Every `Set-Cookie` value, as sent.
    pub set_cookies: Vec<String>,
    pub body: String,
}

/// The client.
#[derive(Default)]
pub struct CookieClient {
    jar: Mutex<BTreeMap<String, String>>,
    http: Option<reqwest::Client>,
}

impl CookieClient {
    pub fn new() -> Self {
        Self::default()
    }

    /// One on `http` (e.g. a client trusting a test CA; it must not follow redirects).
    pub fn with(http: reqwest::Client) -> Self {
        CookieClient {
            http: Some(http),
            ..Self::default()
        }
    }

    /// The jar's cookies.
    pub fn cookies(&self) -> BTreeMap<String, String> {
        self.jar.lock().unwrap().clone()
    }

    /// Sets (or with `None` removes) a cookie, as a hostile client would.
    pub fn set(&self, name: &str, value: Option<&str>) {
        let mut j = self.jar.lock().unwrap();
        match value {
            Some(v) => j.insert(name.to_owned(), v.to_owned()),
            None => j.remove(name),
        };
    }

    /// The `Cookie` header value of the jar.
    pub fn cookie_header(&self) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store(&self, set: &[String]) {
        let mut j = self.jar.lock().unwrap();
        for s in set {
            let first = s.split(';').next().unwrap_or("");
            let Some((k, v)) = first.split_once('=') else {
                continue;
            };
            let expired = s.to_ascii_lowercase().contains("max-age=0")
                || s.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if expired || v.is_empty() {
                j.remove(k.trim());
            } else {
                j.insert(k.trim().to_owned(), v.to_owned());
            }
        }
    }

    /// One request: `GET` (or `POST` with a form body), `Accept: text/html` like a
    /// navigation when `html`.
    pub async fn request(&self, url: &str, form: Option<&str>, html: bool) -> Hop {
        let http = self.http.clone().unwrap_or_else(super::http_client);
        let mut req = match form {
            Some(f) => http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(f.to_owned()),
            None => http.get(url),
        };
        if html {
            req = req.header("accept", "text/html,application/xhtml+xml");
        }
        let jar = self.cookie_header();
        if !jar.is_empty() {
            req = req.header("cookie", jar);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        self.store(&set_cookies);
        let body = r.text().await.unwrap_or_default();
        Hop {
            url: url.to_owned(),
            status,
            location,
            set_cookies,
            body,
        }
    }

    /// Follows redirects from `url` (at most 20), as a browser navigating; returns
    /// every hop, the last one not a redirect.
    pub async fn navigate(&self, url: &str, form: Option<&str>) -> Vec<Hop> {
        let mut hops = Vec::new();
        let mut next = url.to_owned();
        let mut body = form.map(str::to_owned);
        for _ in 0..20 {
            let hop = self.request(&next, body.as_deref(), true).await;
            body = None;
            let loc = hop.location.clone();
            let redirect = (300..400).contains(&hop.status);
            hops.push(hop);
            match loc {
                Some(l) if redirect => {
                    next = reqwest::Url::parse(&next)
                        .unwrap()
                        .join(&l)
                        .unwrap()
                        .to_string();
                }
                _ => return hops,
            }
        }
        panic!("more than 20 redirects from {url}");
    }
}

/// Signs in as `user` through the provider's login and consent pages (npm
/// `oidc-provider`'s, [`super::oidc`]), starting at `start`; returns the hops (the
/// last one the app's page).
pub async fn sign_in(c: &CookieClient, start: &str, user: &str) -> Vec<Hop> {
    let mut hops = c.navigate(start, None).await;
    let login = hops.last().unwrap().clone();
    assert_eq!(login.status, 200, "the provider's login page: {login:?}");
    assert!(login.body.contains("name=\"login\""), "{}", login.body);
    let form = format!("prompt=login&login={user}&password=pw");
    let after = c
        .navigate(&form_action(&login.url, &login.body), Some(&form))
        .await;
    hops.extend(after.clone());
    let mut last = after.last().unwrap().clone();
    if last.body.contains("name=\"prompt\" value=\"consent\"") {
        let after = c
            .navigate(&form_action(&last.url, &last.body), Some("prompt=consent"))
            .await;
        hops.extend(after.clone());
        last = after.last().unwrap().clone();
    }
    assert_eq!(last.status, 200, "the app's page after sign-in: {hops:#?}");
    hops
}

/// The `action` of the first form in `html`, resolved against `base`.
pub fn form_action(base: &str, html: &str) -> String {
    let at = html.find("action=\"").expect("a form on the page") + 8;
    let end = html[at..].find('"').unwrap() + at;
    let action = html[at..end].replace("&amp;", "&").replace("&#x2F;", "/");
    reqwest::Url::parse(base)
        .unwrap()
        .join(&action)
        .unwrap()
        .to_string()
}

/// The value of query parameter `name` of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
