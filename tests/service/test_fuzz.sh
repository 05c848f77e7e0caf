#!/usr/bin/env bash
# tests/service/test_fuzz.sh - the render service under malformed input (issue 9): tests/service/zfuzz sends a
# bounded stream (3000 messages or 20 s) of random bytes, truncated and mutated requests, random multi-frame
# messages, messages without the REQ envelope, huge frames, deep nesting, wrong-typed JSON and raw TCP garbage
# to the request socket. Every reply must be a service reply, the server must stay alive, and afterwards a
# normal status request (zfuzz's own and `reelfarm status`) must succeed.
# Usage: test_fuzz.sh path/to/reelfarm path/to/zfuzz [count] [seconds]
set -uo pipefail
BIN=$(realpath "$1")
ZFUZZ=$(realpath "$2")
COUNT=${3:-3000}
SECONDS_MAX=${4:-20}
source "$(dirname "${BASH_SOURCE[0]}")/serve_lib.sh"
service_test_setup fuzz

LOG=$T/server.log
start_serving "$LOG" "$BIN" serve --state-dir "$T/state" --model "$T/model" --threads 1 --files-root "$T"

timeout $((SECONDS_MAX + 30)) "$ZFUZZ" "$EP" --count "$COUNT" --seconds "$SECONDS_MAX" --seed "${ZFUZZ_SEED:-1}"
rc=$?
[[ $rc -eq 0 ]] || bad "zfuzz exited $rc (a bad reply, or the final status request failed)"
kill -0 "$SERVER_PID" 2>/dev/null || bad "the server died: $(tail -5 "$LOG")"
out=$("$BIN" status --to "$EP" --timeout 5 2>&1)
[[ $? -eq 0 ]] && grep -q "running none; 0 queued" <<<"$out" || bad "status after the fuzz: $out"
if grep -q "job .* queued" "$LOG"; then bad "a fuzzed submit was queued: $(grep 'queued' "$LOG" | head -3)"; fi
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; rc=$?; SERVER_PID=
[[ $rc -eq 0 ]] || bad "SIGTERM after the fuzz: the server exited $rc"
echo "test_fuzz: $([[ $fail -eq 0 ]] && echo passed || echo "$fail failed")"
[[ $fail -eq 0 ]]
