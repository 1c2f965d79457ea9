#!/usr/bin/env bash
# Instructions per request (valgrind --tool=callgrind counts instructions, which are
# repeatable whatever else the machine does). Runs the proxy twice under callgrind,
# with N1 and N2 keep-alive requests through a hot RS256 token, and prints
# (I2 - I1) / (N2 - N1): the per-request cost without start-up. One worker thread,
# as in the pinned benchmark, keeps the count repeatable.
#   bench/instructions.sh target/release/portcullis [scenario: hot|cold|public|assert|nginx]
# `nginx` measures nginx (Debian package, one worker, no master) proxying the same
# requests with no auth, for comparison; the binary argument is then ignored.
set -euo pipefail
BIN=$(realpath "$1"); SCEN=${2:-hot}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v valgrind >/dev/null || { echo "valgrind missing" >&2; exit 1; }
W=$(mktemp -d); trap 'rm -rf "$W"; kill $(jobs -p) 2>/dev/null || true' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/k.pem" 2>/dev/null
openssl pkey -in "$W/k.pem" -pubout -out "$W/pub.pem"
TOKEN=$(python3 "$HERE/mint_jwt.py" --alg RS256 --key "$W/k.pem" --count 1 | head -n1)
# Upstream: a tiny keep-alive HTTP server.
cat >"$W/up.py" <<'PY'
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
def serve(c):
    buf = b""
    while True:
        d = c.recv(65536)
        if not d: return
        buf += d
        while b"\r\n\r\n" in buf:
            _, buf = buf.split(b"\r\n\r\n", 1)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
UP=$((20000 + RANDOM % 10000)); PX=$((UP + 1))
python3 "$W/up.py" "$UP" & sleep 0.3
access=""; cache=""
[ "$SCEN" = public ] && access='access = "public"'
[ "$SCEN" = cold ] && cache=$'[cache]\ntokens = 0'
# `assert`: hot, plus a signed identity assertion (issue 19: reused per caller, a lookup).
assertion=""
if [ "$SCEN" = assert ]; then
  openssl genpkey -algorithm ED25519 -out "$W/a.pem" 2>/dev/null
  assertion=$'[identity.assertion]\nissuer = "assert"\n[[issuers]]\nname = "assert"\nissuer = "https://portcullis.internal/"\nprivate_key = "'"$W/a.pem"'"'
fi
cat >"$W/p.toml" <<TOML
[server]
listen = "127.0.0.1:$PX"
worker_threads = 1
[upstreams.app]
url = "http://127.0.0.1:$UP"
$cache
$assertion
[[issuers]]
name = "bench"
issuer = "bench"
algorithms = ["RS256"]
public_key = "$W/pub.pem"
[[routes]]
name = "all"
path = "/**"
$access
upstream = "app"
TOML
cat >"$W/n.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $W/nginx-error.log; pid $W/nginx.pid;
events { worker_connections 1024; }
http { access_log off;
  upstream up { server 127.0.0.1:$UP; keepalive 16; }
  server { listen 127.0.0.1:$PX; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
# Default method: one process, 200 warm-up requests, then the counters are zeroed
# (callgrind_control -z), N=2000 requests are sent and the counters dumped: the
# per-request cost with start-up left out entirely. (Start-up is not repeatable:
# quanta, under metrics and moka, calibrates its clock for a fixed wall time, which
# moved the old two-run difference by several thousand instructions per request.)
# BENCH_METHOD=diff: the old method, (I(1200) - I(200)) / 1000 over two processes.
# BENCH_KEEP=DIR keeps the callgrind outputs there (callgrind_annotate DIR/cg.*).
start_proxy() {  # out -> pid in $PID
  local out=$1
  if [ "$SCEN" = nginx ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$W/n.conf" -p "$W" 2>"$out.vg" &
  else
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" --config "$W/p.toml" 2>"$out.vg" &
  fi
  PID=$!
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$PX) 2>/dev/null && break; sleep 0.1; done
}
# Sends N keep-alive requests on one connection; with a pid, first 200 warm-up
# requests, then zero the counters, send N, dump them.
client() {  # port n token [pid]
  python3 - "$@" <<'PY'
import socket, subprocess, sys
port, n, tok = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pid = sys.argv[4] if len(sys.argv) > 4 else None
s = socket.create_connection(("127.0.0.1", port))
req = f"GET /items/1 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {tok}\r\n\r\n".encode()
def send(k):
    for _ in range(k):
        s.sendall(req)
        buf = b""
        while not (b"\r\n\r\n" in buf and buf.endswith(b"ok\n")):
            buf += s.recv(65536)
        assert buf.startswith(b"HTTP/1.1 200"), buf[:80]
if pid:
    send(200)
    subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
send(n)
if pid:
    subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
PY
}
ir() { grep -h '^summary:\|^totals:' "$1" | head -n1 | awk '{print $2}'; }
if [ "${BENCH_METHOD:-zero}" = diff ]; then
  run() {  # N -> instructions
    start_proxy "$W/cg.$1"; client "$PX" "$1" "$TOKEN"
    kill -TERM "$PID"; wait "$PID" || true
    ir "$W/cg.$1"
  }
  I1=$(run 200); I2=$(run 1200)
  PER=$(( (I2 - I1) / 1000 )); HOW="N=200 vs N=1200"
else
  N=2000
  start_proxy "$W/cg"; client "$PX" "$N" "$TOKEN" "$PID"
  kill -TERM "$PID"; wait "$PID" || true
  PER=$(( $(ir "$W/cg.1") / N )); HOW="$N requests after 200 warm-up"
fi
[ -n "${BENCH_KEEP:-}" ] && mkdir -p "$BENCH_KEEP" && cp "$W"/cg* "$BENCH_KEEP"/
echo "$SCEN: $PER instructions per request (callgrind; $HOW)"
