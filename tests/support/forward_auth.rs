//! The forward-auth decision listener (`[forward_auth]`, SPEC §8) under test: a
//! portcullis with the listener on port 0 (its address read from the proxy's own
//! `portcullis listening` line, like the admin listener's), and clients for it: raw
//! HTTP/1.1 (byte-exact headers, duplicates kept) and h2c with prior knowledge
//! (reqwest over hyper's HTTP/2 client, as Envoy and Istio speak to it).
//!
//! Used as `#[path = "support/forward_auth.rs"] mod decisions;` next to `mod support;`.

use crate::support::{read_response, Proxy, ProxyBuilder, Reply, Req, START_TIMEOUT, TIMEOUT};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A running portcullis with a decision listener.
pub struct Decider {
    pub proxy: Proxy,
    /// The decision listener.
    pub addr: SocketAddr,
    /// The admin listener, when the config has `[admin]`.
    pub admin: Option<SocketAddr>,
}

/// `[forward_auth]` on port 0 with `headers = convention`, then `body`.
pub fn config(convention: &str, body: &str) -> String {
    format!("[forward_auth]\nlisten = \"127.0.0.1:0\"\nheaders = \"{convention}\"\n\n{body}")
}

impl Decider {
    /// Starts portcullis with `body` (which has its `[forward_auth]` table, e.g. from
    /// [`config`]); returns once the decision listener is known.
    pub async fn start(builder: ProxyBuilder, body: &str) -> Decider {
        let proxy = builder.start(body).await;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(line) = listening_line(&proxy) {
                let addr = |k: &str| line[k].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
                let fa = addr("forward_auth").unwrap_or_else(|| {
                    panic!("no forward_auth address in {line}\n{}", proxy.logs())
                });
                let admin = addr("admin");
                return Decider {
                    proxy,
                    addr: fa,
                    admin,
                };
            }
            assert!(
                Instant::now() < deadline,
                "no `portcullis listening` line\n{}",
                proxy.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `req` to the decision listener on a fresh connection (`Host` defaults
    /// to the listener's address).
    pub async fn send(&self, req: &Req) -> Reply {
        self.raw(&req.to_bytes(&self.addr.to_string())).await
    }

    /// Writes `bytes` to the decision listener and reads one response.
    pub async fn raw(&self, bytes: &[u8]) -> Reply {
        let exchange = async {
            let mut s = TcpStream::connect(self.addr).await?;
            s.write_all(bytes).await?;
            read_response(&mut s).await
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!(
                "decision exchange failed: {e}\n--- request\n{}\n{}",
                String::from_utf8_lossy(bytes),
                self.proxy.logs()
            ),
            Err(_) => panic!(
                "no decision within {TIMEOUT:?}\n--- request\n{}\n{}",
                String::from_utf8_lossy(bytes),
                self.proxy.logs()
            ),
        }
    }

    /// `http://<decision listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let admin = self.admin.expect("an [admin] table");
        crate::support::http_client()
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The access lines written so far (the JSON lines with a `decision`).
    pub fn access_lines(&self) -> Vec<Value> {
        json_lines(&self.proxy)
            .into_iter()
            .filter(|l| l.get("decision").is_some() && l.get("request_id").is_some())
            .collect()
    }
}

/// An h2c client (HTTP/2 with prior knowledge, no TLS).
pub fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn json_lines(proxy: &Proxy) -> Vec<Value> {
    let out = std::fs::read_to_string(proxy.dir.path().join("stdout.log")).unwrap_or_default();
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn listening_line(proxy: &Proxy) -> Option<Value> {
    json_lines(proxy)
        .into_iter()
        .find(|l| l["message"] == "portcullis listening")
}
