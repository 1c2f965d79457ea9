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
run() {  # N -> instructions
  local n=$1 out=$W/cg.$1
  if [ "$SCEN" = nginx ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$W/n.conf" -p "$W" 2>"$W/vg.$n" &
  else
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" --config "$W/p.toml" 2>"$W/vg.$n" &
  fi
  local pid=$!
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$PX) 2>/dev/null && break; sleep 0.1; done
  python3 - "$PX" "$n" "$TOKEN" <<'PY'
import socket, sys
port, n, tok = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
req = f"GET /items/1 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {tok}\r\n\r\n".encode()
for _ in range(n):
    s.sendall(req)
    buf = b""
    while not (b"\r\n\r\n" in buf and buf.endswith(b"ok\n")):
        buf += s.recv(65536)
    assert buf.startswith(b"HTTP/1.1 200"), buf[:80]
PY
  kill -TERM "$pid"; wait "$pid" || true
  grep -h '^summary:\|^totals:' "$out" | head -n1 | awk '{print $2}'
}
I1=$(run 200); I2=$(run 1200)
echo "$SCEN: $(( (I2 - I1) / 1000 )) instructions per request (callgrind; N=200 vs N=1200)"
