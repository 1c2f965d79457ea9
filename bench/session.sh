#!/usr/bin/env bash
# Browser sessions vs bearer tokens (issue 18): what a request with a §9 session cookie
# costs against one with a hot bearer token, one run, on 127.0.0.1, HTTP/1.1 (wrk):
#   inline-bearer      portcullis as the reverse proxy, a hot HS256 token (the
#                      verified-token cache serves it)
#   inline-session     the same route (login = true), the session cookie of a real
#                      sign-in instead (opened and checked on every request)
#   decide-bearer      the [forward_auth] decision listener (x-forwarded, as Traefik
#                      asks it), the hot token
#   decide-session     the decision listener, the session cookie
# The session comes from a real sign-in (bench/signin.py) at npm oidc-provider
# (tests/login_support/provider.mjs from target/oidc, which scripts/test-all.sh
# installs): a typical cookie session (claims, access, refresh and ID token sealed;
# access tokens live a day, so no refresh happens while measuring).
# Reported per scenario: req/s, p50/p99, portcullis CPU and requests per portcullis
# CPU-second. Pinning as bench/forward_auth.sh: portcullis alone on CPU
# BENCH_PROXY_CPU (1); wrk and the upstream (nginx, 1 worker) on BENCH_LOAD_CPU (0).
# Usage: PORTCULLIS_BIN=target/release/portcullis [BENCH_SECONDS=10 BENCH_CONNS=64] bench/session.sh
set -euo pipefail
export LC_ALL=C PYTHONDONTWRITEBYTECODE=1
PATH=$PATH:/usr/sbin:/sbin
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

DURATION=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-64}
PORT_BASE=${BENCH_PORT_BASE:-18200}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
OUT=${BENCH_OUT:-/tmp/bench-session.md}
OIDC_DIR=${PORTCULLIS_OIDC_DIR:-$ROOT/target/oidc}
: "${PORTCULLIS_BIN:?set PORTCULLIS_BIN to the portcullis binary (cargo build --release)}"
PORTCULLIS_BIN=$(cd "$(dirname "$PORTCULLIS_BIN")" && pwd)/$(basename "$PORTCULLIS_BIN")

UP_PORT=$PORT_BASE
IDP_PORT=$((PORT_BASE + 1))
PC_PORT=$((PORT_BASE + 2))
FA_PORT=$((PORT_BASE + 3))

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for c in nginx wrk taskset python3 curl node openssl; do
  command -v "$c" >/dev/null 2>&1 || die "missing $c (apt-get install nginx wrk util-linux python3 curl nodejs openssl)"
done
[ -d "$OIDC_DIR/node_modules/oidc-provider" ] || die "oidc-provider not in $OIDC_DIR (run scripts/test-all.sh)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-session-bench.XXXXXX")
# shellcheck source=bench/procs.sh
. "$HERE/procs.sh"
cleanup_extra() { rm -f "$OIDC_DIR/bench-provider.mjs"; }

# ---- upstream, provider, configs --------------------------------------------------
openssl rand -hex 32 >"$WORK/secret"
TOKEN=$(python3 "$HERE/mint_jwt.py" --alg HS256 --key "$WORK/secret" --count 1)
COOKIE_SECRET=$(openssl rand -hex 32)
mkdir -p "$WORK/up"
cat >"$WORK/up/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
$([ "$(id -u)" = 0 ] && echo "user root;")
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/up/body;
    proxy_temp_path $WORK/up/proxy;
    fastcgi_temp_path $WORK/up/fastcgi;
    uwsgi_temp_path $WORK/up/uwsgi;
    scgi_temp_path $WORK/up/scgi;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / { add_header X-Seen-User \$http_x_user always; return 200 "ok\n"; }
    }
}
EOF

portcullis_config() {  # FILE MODE(inline|x-forwarded)
  {
    echo "[server]"
    echo "listen = \"127.0.0.1:$PC_PORT\""
    if [ "$2" = inline ]; then
      echo "[upstreams.app]"
      echo "url = \"http://127.0.0.1:$UP_PORT\""
    else
      forward_auth_toml "$FA_PORT" "$2"
    fi
    echo "[identity]"
    echo 'header = "X-User"'
    echo 'claim = "sub"'
    echo '[identity.claims_to_headers]'
    echo '"X-User-Email" = "email"'
    echo "[[issuers]]"
    echo 'name = "bench"'
    echo 'issuer = "bench"'
    echo 'algorithms = ["HS256"]'
    echo "secret = \"$(cat "$WORK/secret")\""
    echo "[[issuers]]"
    echo 'name = "idp"'
    echo "issuer = \"http://127.0.0.1:$IDP_PORT\""
    echo 'discovery = true'
    echo "[login]"
    echo 'issuer = "idp"'
    echo 'client_id = "bench-app"'
    echo 'client_secret = "bench-client-secret-0123456789"'
    echo "cookie_secret = \"$COOKIE_SECRET\""
    echo 'scopes = ["openid", "email", "profile"]'
    echo "[[routes]]"
    echo 'name = "app"'
    echo 'path = "/**"'
    echo 'login = true'
    [ "$2" != inline ] || echo 'upstream = "app"'
  } >"$1"
}

start upstream "$LOAD_CPU" nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" -e "$WORK/up/error.log"
wait_port "$UP_PORT" upstream
# The provider script imports oidc-provider: it runs from the directory it is installed in.
cp "$ROOT/tests/login_support/provider.mjs" "$OIDC_DIR/bench-provider.mjs"
start provider "$LOAD_CPU" env PORT="$IDP_PORT" CLIENT_ID=bench-app \
  CLIENT_SECRET=bench-client-secret-0123456789 PUBLIC_ID=bench-spa ACCESS_TTL=86400 \
  node "$OIDC_DIR/bench-provider.mjs"
wait_port "$IDP_PORT" provider

# ---- measuring -----------------------------------------------------------------
: >"$WORK/results.tsv"
measure() {  # NAME URL PORTCULLIS_PID HEADER [HEADER...]  (wrk's -H values)
  local name=$1 url=$2 pc=$3
  shift 3
  local hs=() h
  for h in "$@"; do hs+=(-H "$h"); done
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${hs[@]}" "$url" >/dev/null
  log "[$name] measuring ${DURATION}s"
  local p0 p1 t0 t1
  p0=$(ticks "$pc"); t0=$(date +%s%N)
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency --timeout 5s \
    "${hs[@]}" "$url" >"$WORK/$name.out"
  t1=$(date +%s%N); p1=$(ticks "$pc")
  local rps p50 p99 non2xx sockerr cpu
  read -r rps p50 p99 _ non2xx sockerr <<<"$(python3 "$HERE/report.py" parse wrk "$WORK/$name.out")"
  cpu=$(((p1 - p0) * 1000000 / CLK_TCK / ((t1 - t0) / 1000000)))
  log "[$name] $rps req/s, p99 $p99 ms, portcullis CPU $((cpu / 10)).$((cpu % 10))%, non-2xx $non2xx, socket errors $sockerr"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rps" "$p50" "$p99" "$cpu" "$non2xx" "$sockerr" >>"$WORK/results.tsv"
}
seen() {  # HEADER-NAME URL CURL-ARGS...: the value of that response header
  local name=$1 url=$2
  shift 2
  curl -s -o /dev/null -D - "$@" "$url" | tr -d '\r' |
    awk -F': *' -v n="$name" 'tolower($1)==n{print $2}'
}

# portcullis inline: sign in (a real browser flow at the provider), then both rows.
portcullis_config "$WORK/inline.toml" inline
start portcullis-inline "$PROXY_CPU" env RUST_LOG=warn "$PORTCULLIS_BIN" --config "$WORK/inline.toml"
pc=$LAST_PID; wait_port "$PC_PORT" portcullis-inline
COOKIE=$(python3 "$HERE/signin.py" "http://127.0.0.1:$PC_PORT/app" carol) || die "sign-in failed"
log "session cookie: ${#COOKIE} bytes"
[ "$(seen x-seen-user "http://127.0.0.1:$PC_PORT/app" -H "Cookie: $COOKIE")" = carol ] ||
  die "[inline-session] the upstream did not see carol"
[ "$(seen x-seen-user "http://127.0.0.1:$PC_PORT/app" -H "Authorization: Bearer $TOKEN")" = alice ] ||
  die "[inline-bearer] the upstream did not see alice"
measure inline-bearer "http://127.0.0.1:$PC_PORT/app" "$pc" "Authorization: Bearer $TOKEN"
measure inline-session "http://127.0.0.1:$PC_PORT/app" "$pc" "Cookie: $COOKIE"
stop "$pc"

# The decision listener (same cookie_secret: the cookie opens there too).
portcullis_config "$WORK/decide.toml" x-forwarded
start portcullis-decide "$PROXY_CPU" env RUST_LOG=warn "$PORTCULLIS_BIN" --config "$WORK/decide.toml"
pc=$LAST_PID; wait_port "$FA_PORT" portcullis-decide
FWD=("${DECIDE_FWD_HEADERS[@]}")
fwd_curl=()
for h in "${FWD[@]}"; do fwd_curl+=(-H "$h"); done
[ "$(seen x-user "http://127.0.0.1:$FA_PORT/" "${fwd_curl[@]}" -H "Cookie: $COOKIE")" = carol ] ||
  die "[decide-session] no X-User carol"
[ "$(seen x-user "http://127.0.0.1:$FA_PORT/" "${fwd_curl[@]}" -H "Authorization: Bearer $TOKEN")" = alice ] ||
  die "[decide-bearer] no X-User alice"
measure decide-bearer "http://127.0.0.1:$FA_PORT/" "$pc" "${FWD[@]}" "Authorization: Bearer $TOKEN"
measure decide-session "http://127.0.0.1:$FA_PORT/" "$pc" "${FWD[@]}" "Cookie: $COOKIE"
stop "$pc"

# ---- report ----------------------------------------------------------------------
python3 - "$WORK/results.tsv" "${#COOKIE}" <<'EOF' | tee "$OUT"
import sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, cpu, non2xx, sockerr = line.rstrip("\n").split("\t")
    rows[name] = dict(rps=float(rps), p50=float(p50), p99=float(p99), cpu=int(cpu) / 10.0,
                      err=int(non2xx) + int(sockerr))
def per_cpu(r):
    return r["rps"] / (r["cpu"] / 100.0) if r["cpu"] else float("nan")
print(f"Session cookie: {sys.argv[2]} bytes of Cookie header (a real sign-in at oidc-provider).")
print()
print("| scenario | req/s | p50 ms | p99 ms | portcullis CPU % | per portcullis CPU-s | session vs bearer | errors |")
print("|---|---|---|---|---|---|---|---|")
for name in ["inline-bearer", "inline-session", "decide-bearer", "decide-session"]:
    r = rows.get(name)
    if not r:
        continue
    vs = "-"
    base = rows.get(name.replace("session", "bearer"))
    if name.endswith("session") and base:
        vs = f"{per_cpu(r) / per_cpu(base):.2f}x"
    err = r["err"]
    print(f"| {name} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu']:.1f} | {per_cpu(r):,.0f} | {vs} | {err}{' !!' if err else ''} |")
print()
print("per portcullis CPU-s: requests (inline) or decisions per second of portcullis CPU time;")
print("session vs bearer: the session row's per-CPU-s over the bearer row's on the same listener.")
EOF
log "results written to $OUT"
