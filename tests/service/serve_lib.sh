# tests/service/serve_lib.sh - sourced by the service tests: their common set-up, and starting a render service
# on a free loopback port. Needs BIN (the reelfarm binary).

# service_test_setup NAME: a temporary folder T (removed on exit, with the server SERVER_PID killed), the test
# environment, the pass/fail counters (ok, bad, check 'EXPR' 'what failed') and the tiny model M = $T/model.
service_test_setup() {
  T=$(mktemp -d "/tmp/reelfarm-$1-test.XXXXXX")
  SERVER_PID=
  trap 'if [[ -n "$SERVER_PID" ]]; then kill -9 "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi; rm -rf "$T"' EXIT
  export XDG_CACHE_HOME=$T/cache OMP_WAIT_POLICY=passive REELFARM_LOG_LEVEL=info
  unset REELFARM_TEST_INTERRUPT
  pass=0
  fail=0
  M=$T/model
  "$BIN" make-tiny-model "$M" --fps-embedding >/dev/null || { echo "cannot make the tiny model" >&2; exit 1; }
}
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

# start_serving sets EP, PORT and SERVER_PID.

# start_serving LOG WORDS...: runs `WORDS --bind EP` in the background (WORDS: `reelfarm serve ...`, or the same
# under mpirun) on a random free port, until `reelfarm status` answers; a few ports are tried; exits the test
# with the log's tail when none works.
start_serving() {
  local log=$1 try
  shift
  for try in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 30000))
    EP=tcp://127.0.0.1:$PORT
    "$@" --bind "$EP" >>"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 150); do
      if "$BIN" status --to "$EP" --timeout 0.5 >/dev/null 2>&1; then return 0; fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
  done
  echo "cannot start the server: $(tail -3 "$log")" >&2
  exit 1
}
