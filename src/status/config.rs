//! `GET /config`: the running config as JSON, defaults filled in, durations in the
//! config's notation, every secret redacted (HMAC secrets, signing keys, Redis
//! passwords).

use super::{host_text, redact_url, source_text, token_source, REDACTED};
use crate::config::{Config, UpstreamKind};
use serde_json::{json, Value};

fn upstream_url(k: &UpstreamKind) -> String {
    match k {
        UpstreamKind::Echo => "echo:".into(),
        UpstreamKind::Http {
            scheme,
            authority,
            prefix,
        } => format!("{scheme}://{authority}{prefix}"),
    }
}

/// The running config as JSON, secrets redacted (HMAC secrets, Redis passwords).
pub(crate) fn config_json(cfg: &Config) -> Value {
    let d = crate::config::values::format_duration;
    json!({
        "path": cfg.path.display().to_string(),
        "server": server_json(cfg),
        "admin": cfg.admin.map(|a| json!({"listen": a.to_string()})),
        "upstreams": cfg.upstreams.iter().map(|u| json!({
            "name": u.name,
            "url": upstream_url(&u.kind),
            "connect_timeout": d(u.connect_timeout),
            "timeout": d(u.timeout),
            "ca": u.ca.as_ref().map(|c| c.display().to_string()),
            "audience": u.audience,
        })).collect::<Vec<_>>(),
        "identity": {
            "header": cfg.identity.header.as_str(),
            "claim": cfg.identity.claim,
            "forward_authorization": cfg.identity.forward_authorization,
            "claims_to_headers": cfg.identity.claims_to_headers.iter()
                .map(|(h, c)| (h.as_str().to_owned(), Value::String(c.clone())))
                .collect::<serde_json::Map<_, _>>(),
            "assertion": cfg.identity.assertion.as_ref().map(|a| json!({
                "header": a.header.as_str(),
                "issuer": cfg.issuers.get(a.issuer).map(|i| i.name.clone()),
                "ttl": d(a.ttl),
            })),
        },
        "issuers": issuers_json(cfg),
        "token_endpoint": cfg.token_endpoint.as_ref().map(|t| json!({
            "path": t.path,
            "issuer": cfg.issuers.get(t.issuer).map(|i| i.name.clone()),
            "users": t.users.as_ref().map(|u| u.display().to_string()),
            "access_ttl": d(t.access_ttl),
            "refresh_ttl": d(t.refresh_ttl),
        })),
        "login": login_json(cfg),
        "cache": {"tokens": cfg.cache_tokens},
        "forward_auth": cfg.forward_auth.as_ref().map(|f| json!({
            "listen": f.listen.to_string(),
            "headers": f.headers.as_str(),
        })),
        "state": {
            "backend": if cfg.state.redis_url.is_some() { "redis" } else { "memory" },
            "url": cfg.state.redis_url.as_deref().map(redact_url),
            "topology": cfg.state.redis_url.as_deref().map(crate::state::topology::name),
            "replicas_ack": cfg.state.replicas_ack,
            "key_prefix": cfg.state.key_prefix,
            "fail_open": cfg.state.fail_open,
        },
        "routes": routes_json(cfg),
        "telemetry": cfg.telemetry.as_ref().map(|t| json!({
            "otlp_endpoint": redact_url(&t.otlp_endpoint),
            "service_name": t.service_name,
            "sample_ratio": t.sample_ratio,
        })),
    })
}

/// A route's `cors` as configured (`max_age` in seconds).
fn cors_json(c: &crate::routes::cors::Cors) -> Value {
    let text = |v: &http::HeaderValue| v.to_str().unwrap_or("").to_owned();
    let mut origins = c.origins.clone();
    if c.any {
        origins.push("*".into());
    }
    json!({
        "origins": origins,
        "methods": text(&c.methods),
        "headers": c.headers.as_ref().map(text),
        "credentials": c.credentials,
        "max_age": c.max_age.as_ref().map(text),
    })
}

/// `/config`'s `server`.
fn server_json(cfg: &Config) -> Value {
    let d = crate::config::values::format_duration;
    json!({
        "listen": cfg.server.listen.to_string(),
        "header_timeout": d(cfg.server.header_timeout),
        "idle_timeout": d(cfg.server.idle_timeout),
        "max_header_bytes": cfg.server.max_header_bytes,
        "shutdown_grace": d(cfg.server.shutdown_grace),
        "watch": cfg.server.watch,
        "max_connections": cfg.server.max_connections,
        "h2_max_concurrent_streams": cfg.server.h2_max_concurrent_streams,
        "worker_threads": cfg.server.worker_threads,
        "trusted_proxies": cfg.server.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "tls": cfg.server.tls.as_ref().map(|t| json!({
            "cert": t.cert.display().to_string(),
            "key": t.key.display().to_string(),
            "sni": t.sni.iter().map(|(h, c, k)| json!({
                "hosts": h, "cert": c.display().to_string(), "key": k.display().to_string()
            })).collect::<Vec<_>>(),
        })),
    })
}

/// `/config`'s `issuers` (signing keys redacted).
fn issuers_json(cfg: &Config) -> Value {
    let d = crate::config::values::format_duration;
    json!(cfg
        .issuers
        .iter()
        .map(|i| json!({
            "name": i.name,
            "issuer": i.iss,
            "audiences": i.audiences,
            "algorithms": i.algorithms.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>(),
            "leeway": d(i.leeway),
            "keys": source_text(&i.source),
            "refresh_interval": d(i.refresh_interval),
            "signing": i.signing.as_ref().map(|s| json!({
                "alg": format!("{:?}", s.alg),
                "kid": s.kid,
                "key": REDACTED,
            })),
        }))
        .collect::<Vec<_>>())
}

/// `/config`'s `login` (client and cookie secrets redacted).
fn login_json(cfg: &Config) -> Value {
    let d = crate::config::values::format_duration;
    json!(cfg.login.as_ref().map(|l| json!({
        "issuer": cfg.issuers.get(l.issuer).map(|i| i.name.clone()),
        "client_id": l.client_id,
        "client_secret": l.client_secret.as_ref().map(|_| REDACTED),
        "scopes": l.scopes,
        "callback_path": l.callback_path,
        "logout_path": l.logout_path,
        "cookie_name": l.cookie_name,
        "cookie_secret": REDACTED,
        "session_ttl": d(l.session_ttl),
        "session_store": match l.session_store {
            crate::config::SessionStore::Cookie => "cookie",
            crate::config::SessionStore::State => "state",
        },
        "redirect_url": l.redirect_url,
    })))
}

/// `/config`'s `routes`.
fn routes_json(cfg: &Config) -> Value {
    json!(cfg.routes.routes.iter().map(|r| json!({
        "name": r.name,
        "host": host_text(r.host.as_ref()),
        "path": r.path.source,
        "methods": r.methods.as_ref().map(|m| m.iter().map(|x| x.as_str().to_owned()).collect::<Vec<_>>()),
        "access": r.access.as_str(),
        "scopes": r.scopes,
        "token_from": r.token_from.iter().map(token_source).collect::<Vec<_>>(),
        "upstream": r.upstream.and_then(|u| cfg.upstreams.get(u)).map(|u| u.name.clone()),
        "login": r.login,
        "dpop": if r.dpop_required { "required" } else { "allowed" },
        "cors": r.cors.as_deref().map(cors_json),
    })).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_has_no_secret() {
        let secret = "s3cret-s3cret-s3cret-s3cret-s3cret-42";
        let toml = format!(
            "[upstreams.e]\nurl = \"echo:\"\n[[issuers]]\nname = \"l\"\nissuer = \"x\"\nsecret = \"{secret}\"\n\
             [state]\nbackend = \"redis\"\nurl = \"redis://user:hunter2@redis:6379/0\"\n\
             [[routes]]\npath = \"/**\"\nupstream = \"e\"\n"
        );
        let cfg = crate::config::load_str(std::path::Path::new("t.toml"), &toml).expect("config");
        let text = config_json(&cfg).to_string();
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(REDACTED));
    }

    #[test]
    fn login_secrets_are_redacted() {
        let (cs, ks) = (
            "client-secret-abcdefgh-42",
            "cookie-secret-0123456789abcdef-0123456789",
        );
        let toml = format!(
            "[upstreams.e]\nurl = \"echo:\"\n[[issuers]]\nname = \"idp\"\nissuer = \"http://127.0.0.1:1\"\ndiscovery = true\n\
             [login]\nissuer = \"idp\"\nclient_id = \"app\"\nclient_secret = \"{cs}\"\ncookie_secret = \"{ks}\"\n\
             [[routes]]\npath = \"/**\"\nupstream = \"e\"\nlogin = true\n"
        );
        let cfg = crate::config::load_str(std::path::Path::new("t.toml"), &toml).expect("config");
        let text = config_json(&cfg).to_string();
        assert!(!text.contains(cs) && !text.contains(ks), "{text}");
        assert!(!format!("{cfg:?}").contains(cs) && !format!("{cfg:?}").contains(ks));
        let v = config_json(&cfg);
        assert_eq!(v["login"]["session_ttl"], "12h");
        assert_eq!(
            v["login"]["scopes"],
            serde_json::json!(["openid", "profile", "email"])
        );
        assert_eq!(v["routes"][0]["login"], true);
    }

    #[test]
    fn config_json_in_config_notation() {
        let toml = "[upstreams.e]\nurl = \"echo:\"\n[[issuers]]\nname = \"l\"\nissuer = \"x\"\n\
                    secret = \"0123456789abcdef0123456789abcdef\"\n[token_endpoint]\nissuer = \"l\"\n\
                    refresh_ttl = \"36h\"\n[[routes]]\npath = \"/**\"\nupstream = \"e\"\n";
        let cfg = crate::config::load_str(std::path::Path::new("t.toml"), toml).expect("config");
        let v = config_json(&cfg);
        assert_eq!(v["server"]["header_timeout"], "10s");
        assert_eq!(v["issuers"][0]["leeway"], "30s");
        assert_eq!(v["token_endpoint"]["access_ttl"], "30m");
        assert_eq!(v["token_endpoint"]["refresh_ttl"], "36h");
        assert_eq!(v["upstreams"][0]["connect_timeout"], "2s");
        assert_eq!(v["state"]["key_prefix"], "portcullis:");
        assert_eq!(v["routes"][0]["token_from"], serde_json::json!(["header"]));
    }

    #[test]
    fn config_json_shows_trusted_proxies_and_cors() {
        let toml = "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[upstreams.e]\nurl = \"echo:\"\n\
                    [[issuers]]\nname = \"l\"\nissuer = \"x\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
                    [[routes]]\npath = \"/**\"\nupstream = \"e\"\n\
                    cors = { origins = [\"https://App.example\"], credentials = true, max_age = \"10m\" }\n";
        let cfg = crate::config::load_str(std::path::Path::new("t.toml"), toml).expect("config");
        let v = config_json(&cfg);
        assert_eq!(
            v["server"]["trusted_proxies"],
            serde_json::json!(["10.0.0.0/8"])
        );
        let c = &v["routes"][0]["cors"];
        assert_eq!(c["origins"], serde_json::json!(["https://app.example"]));
        assert_eq!(c["methods"], "GET, HEAD, POST");
        assert_eq!(
            (c["credentials"].clone(), c["max_age"].clone()),
            (true.into(), "600".into())
        );
    }

    #[test]
    fn config_json_shows_telemetry() {
        let base = "[upstreams.e]\nurl = \"echo:\"\n[[routes]]\npath = \"/**\"\naccess = \"public\"\nupstream = \"e\"\n";
        let cfg = crate::config::load_str(std::path::Path::new("t.toml"), base).expect("config");
        assert_eq!(config_json(&cfg)["telemetry"], Value::Null);
        let toml = format!("{base}[telemetry]\notlp_endpoint = \"http://u:hunter2@otel:4318/\"\n");
        let cfg = crate::config::load_str(std::path::Path::new("t.toml"), &toml).expect("config");
        let v = config_json(&cfg);
        let t = &v["telemetry"];
        assert_eq!(t["otlp_endpoint"], format!("http://{REDACTED}@otel:4318"));
        assert_eq!(t["service_name"], "portcullis");
        assert_eq!(t["sample_ratio"], 1.0);
    }
}
