# Processes of forward_auth.sh and session.sh (sourced after WORK, log and die are
# set): each started pinned to a CPU with its log in $WORK, stopped alone or all at
# exit, and its CPU ticks read from /proc. A script may redefine cleanup_extra.
# shellcheck shell=bash disable=SC2034  # CLK_TCK and LAST_PID are read by the scripts

cleanup_extra() { :; }
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
  cleanup_extra
  [ -n "${BENCH_KEEP:-}" ] && log "scratch kept in $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {  # NAME CPU CMD... ; sets LAST_PID
  local name=$1 cpu=$2
  shift 2
  taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() q
  for q in "${PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}
wait_port() {  # PORT NAME
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 20 "$WORK/$2.log" >&2
  die "$2 did not open 127.0.0.1:$1"
}
CLK_TCK=$(getconf CLK_TCK)
ticks() {  # utime+stime of one process (all threads)
  local s f
  read -r s 2>/dev/null <"/proc/$1/stat" || { echo 0; return; }
  s=${s##*) }
  read -r -a f <<<"$s"
  echo $((f[11] + f[12]))
}
