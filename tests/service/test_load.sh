#!/usr/bin/env bash
# tests/service/test_load.sh - the render service answers a burst of status requests while a job renders
# (issue 9): 5000 status requests from 2 threads (tests/service/zload) during a render on the tiny model,
# none may fail or time out (5 s); and a second job starts on the resident model (no second model load), its
# first row event arriving after the submit. Prints the latency percentiles and the timings it measured
# (docs/benchmarks.md "Render service" has figures); asserts no latency bound (machines differ).
# Usage: test_load.sh path/to/reelfarm path/to/zload [requests]
set -uo pipefail
BIN=$(realpath "$1")
ZLOAD=$(realpath "$2")
N=${3:-5000}
source "$(dirname "${BASH_SOURCE[0]}")/serve_lib.sh"
service_test_setup load

LOG=$T/server.log
start_serving "$LOG" "$BIN" serve --state-dir "$T/state" --model "$T/model" --threads 1 --files-root "$T"
film() { # name steps frames -> a submit request
  printf '{"v":1,"op":"submit","film":{"resolution":"64x64","steps":%s,"base_frames":9,"overlap":5,"frames":%s,"prompt":"a lighthouse at dawn","seed":7,"output":"%s"}}' \
    "$2" "$3" "$T/$1.h5"
}
out=$("$ZLOAD" "$EP" --requests 0 --submit "$(film j1 3 17)" --wait-row 60) || bad "the first job: $out"
echo "$out"
"$BIN" watch --to "$EP" j1 >/dev/null 2>&1 || bad "the first job did not finish"
out=$("$ZLOAD" "$EP" --requests "$N" --threads 2 --submit "$(film j2 10 201)" --wait-row 60)
rc=$?
echo "$out"
[[ $rc -eq 0 ]] || bad "zload: rc $rc"
grep -q "$N status requests .* 0 failed" <<<"$out" || bad "status requests failed under load"
grep -q "running job at the end: j2" <<<"$out" || echo "note: the job ended before the load did (a fast machine): the latencies were not all taken during a render"
[[ $(grep -c "render: model .* loaded in" "$LOG") -eq 1 ]] || bad "the model was loaded more than once"
grep -q "job j2 started (model resident" "$LOG" || bad "the second job did not start on the resident model"
"$BIN" status --to "$EP" --json | grep -o '"model_load_s":[0-9.e-]*'
"$BIN" cancel --to "$EP" j2 >/dev/null 2>&1
# a SIGTERM right after the cancel, while the render is stopping: the render's handler hands it on to the
# server's, which must exit 0 within a bounded time (docs/protocol.md "shutdown")
kill -TERM "$SERVER_PID"
for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SERVER_PID" 2>/dev/null && { bad "SIGTERM during a cancel: the server is still running after 30 s"; kill -KILL "$SERVER_PID"; }
wait "$SERVER_PID"; rc=$?; SERVER_PID=
[[ $rc -eq 0 ]] || bad "SIGTERM: the server exited $rc"
echo "test_load: $([[ $fail -eq 0 ]] && echo passed || echo "$fail failed")"
[[ $fail -eq 0 ]]
