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

# The integration tests use the openssl CLI to make some fixtures.
need_apt openssl openssl
# The admin status page is checked in a real headless browser (Debian's chromium).
need_apt chromium chromium

echo "== cargo test" >&2
cargo test --all-targets --locked 2>&1
