#!/usr/bin/env bash
# tests/service/test_service.sh - the render service end to end on real loopback sockets (issue 9,
# docs/protocol.md): submit -> watch -> a finished MP4 on the tiny model; two queued jobs on one model load;
# cancel then resubmit resumes to a film equal to an uninterrupted one; a server stopped mid-job (SIGTERM)
# or killed (SIGKILL) and restarted resumes the job from its journal to the same film; malformed, oversized
# and multi-frame requests get error replies while the server stays up; films naming files outside --files-root
# (links followed) are refused; non-loopback endpoints are refused; clients of a dead server fail
# with a clear error within their timeout; a batch `render --progress-endpoint` followed by `watch --events` (done,
# SIGTERM -> interrupted then resumed, SIGKILL -> the watcher notices the silence).
# Usage: test_service.sh path/to/reelfarm path/to/zreq
set -uo pipefail
BIN=$(realpath "$1")
ZREQ=$(realpath "$2")
source "$(dirname "${BASH_SOURCE[0]}")/serve_lib.sh"
service_test_setup service

STATE=$T/state

# start_server LOG: a server on a free loopback port pair (EP, PUB); waits until it answers
start_server() { start_serving "$1" "$BIN" serve --state-dir "$STATE" --model "$M" --threads 1 --files-root "$T"; }
stop_server() { # graceful: a shutdown request, then wait for the exit
  "$ZREQ" "$EP" '{"v":1,"op":"shutdown"}' >/dev/null
  local i
  for i in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$SERVER_PID"; local rc=$?
  SERVER_PID=
  return $rc
}
probe_frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }
film() { # name frames output -> a film file
  printf '{"resolution":"64x64","steps":3,"base_frames":9,"overlap":5,"frames":%s,"prompt":"a lighthouse at dawn","seed":7,"output":"%s"}\n' "$2" "$3" >"$T/$1"
}
# wait_state JOB STATE: until status says so (20 s)
wait_state() {
  local i
  for i in $(seq 200); do
    "$BIN" status --to "$EP" "$1" 2>/dev/null | grep -q " $2 " && return 0
    sleep 0.1
  done
  return 1
}

# ---- refusals before start ----
out=$("$BIN" serve --bind tcp://0.0.0.0:5999 --state-dir "$STATE" --model "$M" 2>&1)
check '[[ $? -eq 2 ]] && grep -q "loopback only" <<<"$out"' "a public --bind was not refused: $out"
out=$("$BIN" serve --bind tcp://127.0.0.1:5999 --pub tcp://10.0.0.1:6000 --state-dir "$STATE" --model "$M" 2>&1)
check '[[ $? -eq 2 ]] && grep -q -- "--pub tcp://10.0.0.1:6000" <<<"$out"' "a public --pub was not refused: $out"

LOG=$T/server.log
start_server "$LOG"

# ---- submit -> watch -> a finished MP4 ----
film a.json 17 a.mp4
id=$(cd "$T" && "$BIN" submit a.json --to "$EP" 2>/dev/null)
check '[[ $id == j1 ]]' "submit printed '$id', expected j1"
out=$("$BIN" watch --to "$EP" "$id" 2>"$T/watch.err")
rc=$?
check '[[ $rc -eq 0 ]] && grep -q "j1 done $T/a.mp4" <<<"$out"' "watch: $out $(cat "$T/watch.err")"
check '[[ "$(probe_frames "$T/a.mp4")" == 17 ]]' "a.mp4 has $(probe_frames "$T/a.mp4") frames, expected 17"
check '[[ ! -e "$T/a.mp4.ckpt.h5" ]]' "a finished job left its checkpoint"
check 'grep -q "frames 17/17" "$T/watch.err"' "watch drew no final progress: $(cat "$T/watch.err")"

# ---- two queued jobs, one model load ----
film b.json 17 b.h5
film c.json 21 c.h5
jb=$("$BIN" submit "$T/b.json" --to "$EP" 2>/dev/null)
jc=$("$BIN" submit "$T/c.json" --to "$EP" 2>/dev/null)
check '[[ $jb == j2 && $jc == j3 ]]' "job ids $jb $jc"
"$BIN" watch --to "$EP" "$jc" >/dev/null 2>&1
check '[[ $? -eq 0 ]]' "watch of the second queued job failed"
check '"$BIN" status --to "$EP" "$jb" | grep -q " done "' "job $jb is not done: $("$BIN" status --to "$EP" "$jb")"
check '[[ $(grep -c "render: model .* loaded in" "$LOG") -eq 1 ]]' "the model was loaded more than once"
check '[[ $(grep -c "started (model resident" "$LOG") -eq 3 ]]' "three jobs did not start on the resident model"
check 'h5dump -H -d video_uint8 "$T/c.h5" | grep -q "( 21, 64, 64, 3 )"' "c.h5 is not 21 frames"
jd=$("$BIN" submit "$T/b.json" --to "$EP" 2>/dev/null)
"$BIN" watch --to "$EP" "$jd" >/dev/null 2>"$T/watch.err"
rc=$?
check '[[ $rc -eq 1 ]] && grep -q "already exists" "$T/watch.err"' "a job over an existing output did not fail: $(cat "$T/watch.err")"

# ---- cancel, then resubmit: resumes, equal to the uninterrupted film (c.h5 above is the reference) ----
film long.json 41 long.h5
film ref.json 41 ref.h5
jr=$("$BIN" submit "$T/ref.json" --to "$EP" 2>/dev/null)
jl=$("$BIN" submit "$T/long.json" --to "$EP" 2>/dev/null)
"$BIN" watch --to "$EP" "$jr" >/dev/null 2>&1
for _ in $(seq 300); do # wait until the job has run a few rows
  r=$("$BIN" status --to "$EP" --json "$jl" | sed -n 's/.*"rows_done":\([0-9]*\).*/\1/p')
  [[ -n "$r" && "$r" -ge 3 ]] && break
  sleep 0.02
done
out=$("$BIN" cancel --to "$EP" "$jl")
check '[[ "$out" == "$jl cancelling" ]]' "cancel said: $out"
"$BIN" watch --to "$EP" "$jl" >/dev/null 2>"$T/watch.err"
rc=$?
check '[[ $rc -eq 1 ]] && grep -q "cancelled" "$T/watch.err"' "watch of a cancelled job: $(cat "$T/watch.err")"
check '[[ -e "$T/long.h5.ckpt.h5" && ! -e "$T/long.h5" ]]' "cancel did not keep a checkpoint (or finished the film)"
jl2=$("$BIN" submit "$T/long.json" --to "$EP" 2>/dev/null)
"$BIN" watch --to "$EP" "$jl2" >/dev/null 2>&1
check '[[ $? -eq 0 ]]' "the resubmitted job failed"
check 'grep -q "job $jl2 resumes from" "$LOG"' "the resubmitted job did not resume from the checkpoint"
check 'h5diff -q "$T/long.h5" "$T/ref.h5"' "the cancelled-and-resumed film differs from the uninterrupted one"
out=$("$BIN" cancel --to "$EP" "$jl2" 2>&1)
check '[[ $? -eq 1 ]] && grep -q "already ended" <<<"$out"' "cancelling a finished job: $out"
# a queued job cancelled before it starts
film q1.json 41 q1.h5
film q2.json 17 q2.h5
j1=$("$BIN" submit "$T/q1.json" --to "$EP" 2>/dev/null)
j2=$("$BIN" submit "$T/q2.json" --to "$EP" 2>/dev/null)
out=$("$BIN" cancel --to "$EP" "$j2")
check '[[ "$out" == "$j2 cancelled" ]]' "cancel of a queued job said: $out"
"$BIN" watch --to "$EP" "$j1" >/dev/null 2>&1
check '[[ ! -e "$T/q2.h5" ]]' "a cancelled queued job ran"

# ---- malformed requests: error replies, the server stays up ----
expect_error() { # payload-args code
  local code=$1; shift
  local r; r=$("$ZREQ" "$EP" "$@")
  check '[[ $? -eq 0 ]] && grep -q "\"ok\":false" <<<"$r" && grep -q "\"code\":\"$code\"" <<<"$r"' \
    "request ${*:0:3} -> $r (expected $code)"
}
expect_error bad_json 'not json'
expect_error bad_json '{"v":1,"op":"status"'
expect_error bad_request '[1,2,3]'
expect_error bad_request '{"op":"status"}'
expect_error bad_version '{"v":2,"op":"status"}'
expect_error unknown_op '{"v":1,"op":"explode"}'
expect_error bad_request '{"v":1,"op":"submit","film":"a.json"}'
expect_error invalid_film '{"v":1,"op":"submit","film":{"output":"/tmp/x.mp4","shots":[{"prompt":"a","seconds":-2}]}}'
expect_error invalid_film '{"v":1,"op":"submit","film":{"prompt":"a","output":"relative.mp4"}}'
expect_error invalid_film '{"v":1,"op":"submit","film":{"prompt":"a","output":"/tmp/x.mp4","model":"/elsewhere"}}'
# files outside --files-root (links followed): refused with the film's key and the path
mkdir -p "$T/outside_root"
OUTSIDE=$(mktemp -d /tmp/reelfarm-outside.XXXXXX)
ln -s "$OUTSIDE" "$T/escape"
printf 'x' >"$OUTSIDE/start.png"
outside() { # key-words film-json
  local what=$1 r; r=$("$ZREQ" "$EP" "$2")
  check 'grep -q "\"code\":\"invalid_film\"" <<<"$r" && grep -q "$what" <<<"$r" && grep -q "files-root" <<<"$r"' \
    "a film with $what outside --files-root: $r"
}
outside '$.output' '{"v":1,"op":"submit","film":{"prompt":"a","output":"/etc/x.mp4"}}'
outside '$.output' "{\"v\":1,\"op\":\"submit\",\"film\":{\"prompt\":\"a\",\"output\":\"$T/escape/x.mp4\"}}"
outside '$.output' "{\"v\":1,\"op\":\"submit\",\"film\":{\"prompt\":\"a\",\"output\":\"$T/../x.mp4\"}}"
outside '$.image' "{\"v\":1,\"op\":\"submit\",\"film\":{\"prompt\":\"a\",\"output\":\"$T/in.mp4\",\"image\":\"$T/escape/start.png\"}}"
outside '$.shots\[1\].image' "{\"v\":1,\"op\":\"submit\",\"film\":{\"output\":\"$T/in.mp4\",\"shots\":[{\"prompt\":\"a\",\"frames\":9},{\"prompt\":\"b\",\"frames\":9,\"image\":\"/etc/hostname\"}]}}"
check '[[ ! -e $OUTSIDE/x.mp4 && ! -e $T/in.mp4 ]]' "a refused film wrote something"
rm -rf "$OUTSIDE"
expect_error unknown_job '{"v":1,"op":"status","job":"j999"}'
expect_error bad_request '{"v":1,"op":"cancel","job":7}'
expect_error bad_request '{"v":1,"op":"status"}' --parts 2
expect_error too_large --size $((5 << 20))
r=$("$ZREQ" "$EP" --size $((9 << 20)) --timeout 1 2>&1)
check '[[ $? -eq 3 ]]' "a 9 MiB request (over the hard limit) got a reply: ${r:0:200}"
out=$("$BIN" status --to "$EP" 2>&1)
check '[[ $? -eq 0 ]] && grep -q "running none" <<<"$out"' "the server is not well after bad requests: $out"
check 'kill -0 "$SERVER_PID"' "the server died"

# ---- journal: stopped mid-job, restarted, the job resumes and the queue is restored ----
film r.json 41 r.h5
film s.json 17 s.h5
jr=$("$BIN" submit "$T/r.json" --to "$EP" 2>/dev/null)
js=$("$BIN" submit "$T/s.json" --to "$EP" 2>/dev/null)
for _ in $(seq 300); do
  r=$("$BIN" status --to "$EP" --json "$jr" | sed -n 's/.*"rows_done":\([0-9]*\).*/\1/p')
  [[ -n "$r" && "$r" -ge 3 ]] && break
  sleep 0.02
done
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"; rc=$?
SERVER_PID=
check '[[ $rc -eq 0 ]]' "SIGTERM: the server exited $rc"
check 'grep -q "\"id\":\"$jr\",\"state\":\"running\"" "$STATE/journal.json"' "the journal lost the running job"
check 'grep -q "\"id\":\"$js\",\"state\":\"queued\"" "$STATE/journal.json"' "the journal lost the queued job"
check '[[ -e "$T/r.h5.ckpt.h5" && ! -e "$T/r.h5" ]]' "no checkpoint after SIGTERM"
start_server "$LOG"
check 'grep -q "restored 2 queued jobs" "$LOG"' "the restart did not restore the queue"
"$BIN" watch --to "$EP" "$js" >/dev/null 2>&1
rc=$?
check '[[ $rc -eq 0 ]]' "the queued job did not finish after the restart"
check '"$BIN" status --to "$EP" "$jr" | grep -q " done "' "the interrupted job is not done after the restart"
check 'grep -q "job $jr resumes from" "$LOG"' "the interrupted job did not resume from its checkpoint"
check 'h5diff -q "$T/r.h5" "$T/ref.h5"' "the film interrupted by a server restart differs from the uninterrupted one"
# ---- a crash: SIGKILL mid-job (no chance to save anything), restart: resumes from the last checkpoint ----
film k.json 41 k.h5
jk=$("$BIN" submit "$T/k.json" --to "$EP" 2>/dev/null)
for _ in $(seq 500); do
  r=$("$BIN" status --to "$EP" --json "$jk" | sed -n 's/.*"rows_done":\([0-9]*\).*/\1/p')
  [[ -n "$r" && "$r" -ge 8 ]] && break
  sleep 0.02
done
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
check 'grep -q "\"id\":\"$jk\",\"state\":\"running\"" "$STATE/journal.json"' "SIGKILL: the journal lost the running job"
check '[[ -e "$T/k.h5.ckpt.h5" && ! -e "$T/k.h5" ]]' "SIGKILL: no checkpoint from before the crash"
start_server "$LOG"
"$BIN" watch --to "$EP" "$jk" >/dev/null 2>&1
rc=$?
check '[[ $rc -eq 0 ]] && grep -q "job $jk resumes from" "$LOG"' "the crashed job did not resume and finish (watch rc $rc)"
check 'h5diff -q "$T/k.h5" "$T/ref.h5"' "the film interrupted by a server crash differs from the uninterrupted one"

out=$("$BIN" submit --to "$EP" --prompt "x" 2>&1)
check '[[ $? -eq 1 ]] && grep -q "no output" <<<"$out"' "submit without output: $out"
stop_server
check '[[ $? -eq 0 ]]' "shutdown request: the server did not exit 0"

# ---- a dead server: clear errors within the timeout, no hang ----
for c in "status --to $EP" "watch --to $EP j1" "cancel --to $EP j1" "submit $T/a.json --to $EP"; do
  t0=$(date +%s.%N)
  out=$(timeout 20 "$BIN" $c --timeout 1 2>&1)
  rc=$?
  dt=$(echo "$(date +%s.%N) - $t0" | bc)
  check '[[ $rc -eq 1 ]] && grep -q "no reply within 1 s" <<<"$out" && (( $(echo "$dt < 5" | bc) ))' \
    "'$c' on a dead server: rc $rc after ${dt}s: $out"
done

# ---- a batch render's progress: render --progress-endpoint, watch --events ----
PEP=ipc://$T/batch.ev
render_batch() { # out frames [more flags]: a tiny-model render publishing on $PEP, in the background
  local out=$1 n=$2
  shift 2
  "$BIN" render --model "$M" --prompt "a gull" --resolution 64x64 --steps 3 --base-frames 9 --overlap 5 --frames "$n" \
    --seed 7 --out "$out" --progress-endpoint "$PEP" --quiet --threads 1 "$@" 2>>"$T/batch.log" &
  BATCH_PID=$!
}
"$BIN" watch --events "$PEP" --timeout 20 >"$T/w1.out" 2>"$T/w1.err" &
WPID=$!
render_batch "$T/b1.mp4" 21
wait "$BATCH_PID"; brc=$?
wait "$WPID"; wrc=$?
check '[[ $brc -eq 0 && $wrc -eq 0 ]] && grep -q "^render-[0-9]* done $T/b1.mp4" "$T/w1.out" && grep -q "rows 12/12" "$T/w1.err"' \
  "watch --events on a batch render: render rc $brc, watch rc $wrc: $(cat "$T/w1.out" "$T/w1.err" | tail -3)"
# stopped with SIGTERM mid-render: the watcher hears "interrupted" (exit 1); the render resumes, watched again
"$BIN" watch --events "$PEP" --timeout 20 >"$T/w2.out" 2>"$T/w2.err" &
WPID=$!
render_batch "$T/b2.h5" 81 --checkpoint-every 1
for _ in $(seq 600); do grep -q "rows [1-9]" "$T/w2.err" 2>/dev/null && break; sleep 0.05; done
kill -TERM "$BATCH_PID"
wait "$BATCH_PID"; brc=$?
wait "$WPID"; wrc=$?
check '[[ $brc -eq 143 && $wrc -eq 1 ]] && grep -q "interrupted" "$T/w2.err" && [[ -e $T/b2.h5.ckpt.h5 ]]' \
  "a batch render stopped by SIGTERM: render rc $brc, watch rc $wrc: $(tail -2 "$T/w2.err")"
"$BIN" watch --events "$PEP" --timeout 20 >"$T/w3.out" 2>"$T/w3.err" &
WPID=$!
"$BIN" render --resume "$T/b2.h5.ckpt.h5" --progress-endpoint "$PEP" --quiet --threads 1 2>>"$T/batch.log"; brc=$?
wait "$WPID"; wrc=$?
check '[[ $brc -eq 0 && $wrc -eq 0 ]] && grep -q " done $T/b2.h5" "$T/w3.out"' \
  "watch --events on a resumed batch render: render rc $brc, watch rc $wrc: $(tail -2 "$T/w3.err")"
# a render killed outright: the watcher notices the silence (no heartbeat) within its timeout
"$BIN" watch --events "$PEP" --timeout 2 >/dev/null 2>"$T/w4.err" &
WPID=$!
render_batch "$T/b4.h5" 81
for _ in $(seq 600); do grep -q "rows [1-9]" "$T/w4.err" 2>/dev/null && break; sleep 0.05; done
kill -KILL "$BATCH_PID"; wait "$BATCH_PID" 2>/dev/null
t0=$SECONDS
wait "$WPID"; wrc=$?
check '[[ $wrc -eq 1 && $((SECONDS - t0)) -le 6 ]] && grep -q "not even a heartbeat" "$T/w4.err"' \
  "watch --events after the render was killed: rc $wrc after $((SECONDS - t0)) s: $(tail -1 "$T/w4.err")"
out=$(timeout 20 "$BIN" watch --events "ipc://$T/nobody.ev" --timeout 1 2>&1)
check '[[ $? -eq 1 ]] && grep -q "no progress events for 1 s" <<<"$out"' "watch --events with no render: $out"
out=$("$BIN" render --model "$M" --prompt x --out "$T/x.mp4" --progress-endpoint tcp://0.0.0.0:5999 2>&1)
check '[[ $? -eq 2 ]] && grep -q "loopback only" <<<"$out" && [[ ! -e $T/x.mp4 ]]' "render --progress-endpoint on 0.0.0.0 without CURVE: $out"

echo "test_service: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
