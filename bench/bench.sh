#!/usr/bin/env bash
# Runs the comparison (run.sh) and the footprint measurement (footprint.py), and renders bench/RESULTS.md and bench/results.png.
# run.sh's table includes the Traefik anchor, the -2w rows, the decision listener and the
# 10000-token row (BENCH_MANY_TOKENS); see README.md.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${PORTCULLIS_BIN:?set PORTCULLIS_BIN to the portcullis binary (cargo build --release)}"
OUT=$(mktemp)
BENCH_OUT=$OUT "$HERE/run.sh"
FOOT=$(mktemp)
python3 "$HERE/footprint.py" "$PORTCULLIS_BIN" 10000 20 >"$FOOT"
VENV=${PORTCULLIS_BENCH_VENV:-$HOME/.cache/portcullis-bench-venv}
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q matplotlib
fi
"$VENV/bin/python" "$HERE/plot.py" "$OUT" "$HERE/results.png"
{
  echo "# portcullis benchmark results"
  echo
  echo "Reproduce: \`cargo build --release && PORTCULLIS_BIN=target/release/portcullis bench/bench.sh\`"
  echo
  cat "$OUT"
  echo
  echo "![req per proxy CPU-second and p99 per scenario](results.png)"
  echo
  cat "$FOOT"
} >"$HERE/RESULTS.md.new"
if [ -f "$HERE/RESULTS.md" ] && grep -q '^## Analysis' "$HERE/RESULTS.md"; then
  # Keep the hand-written analysis below the generated table.
  sed -n '/^## Analysis/,$p' "$HERE/RESULTS.md" >>"$HERE/RESULTS.md.new"
fi
mv "$HERE/RESULTS.md.new" "$HERE/RESULTS.md"
echo "wrote $HERE/RESULTS.md and $HERE/results.png" >&2
