#!/usr/bin/env bash
# tests/mpi/test_serve_mpi.sh REELFARM MPIEXEC ZREQ - `reelfarm serve` under mpirun (issue 9, docs/protocol.md
# "Under MPI"): 2 ranks, CFG-parallel and then sequence-parallel, load the tiny model once, rank 0 owns the
# sockets; two films submitted one after the other render collectively to the same bits as the single-process
# render of each film; a job the layout cannot run (guidance 1 on a CFG-split mesh) fails with the reason while
# the server stays up; a shutdown request ends every rank with exit 0.
set -uo pipefail
BIN=$(realpath "$1")
MPIEXEC=$2
ZREQ=$(realpath "$3")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive REELFARM_LOG_LEVEL=info
T=$(mktemp -d /tmp/reelfarm-serve-mpi.XXXXXX)
export XDG_CACHE_HOME=$T/cache
SERVER_PID=
cleanup() { # mpirun and every rank it started (killing mpirun alone can leave its ranks running)
  if [[ -n "$SERVER_PID" ]]; then kill -TERM "$SERVER_PID" 2>/dev/null; sleep 1; kill -9 "$SERVER_PID" 2>/dev/null; fi
  pkill -9 -f "reelfarm serve .*$T/" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
source "$(dirname "${BASH_SOURCE[0]}")/../service/serve_lib.sh" # ok, bad, check, start_serving

M=$T/model
"$BIN" make-tiny-model "$M" --fps-embedding >/dev/null || { echo "cannot make the tiny model" >&2; exit 1; }
film() { # name prompt output [extra JSON] -> a film file
  printf '{"resolution":"64x64","steps":3,"base_frames":9,"overlap":5,"frames":21,"prompt":"%s","seed":7,"output":"%s"%s}\n' \
    "$2" "$3" "${4:-}" >"$T/$1"
}

# serve_mpi NP LOG flags...: a server under mpirun on a free loopback port (EP); waits until it answers
serve_mpi() {
  local np=$1 log=$2
  shift 2
  start_serving "$log" "$MPIEXEC" -n "$np" "$BIN" serve --state-dir "$log.state" --model "$M" --threads 1 \
    --files-root "$T" "$@"
}
stop_server() { # LOG
  local log=$1
  "$ZREQ" "$EP" '{"v":1,"op":"shutdown"}' >/dev/null
  local i
  for i in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    bad "the server did not exit within 30 s of a shutdown request: $(tail -3 "$log")"
    kill -TERM "$SERVER_PID"; sleep 1; kill -9 "$SERVER_PID" 2>/dev/null; pkill -9 -f "reelfarm serve .*$T/"
  fi
  wait "$SERVER_PID"; local rc=$?
  SERVER_PID=
  return $rc
}

# the single-process films
for f in a b; do
  film "ref_$f.json" "a lighthouse, take $f" "$T/ref_$f.h5"
  "$BIN" render "$T/ref_$f.json" --model "$M" --quiet --threads 1 2>>"$T/ref.log" ||
    { tail -3 "$T/ref.log" >&2; bad "single-process render of film $f"; exit 1; }
done

# mesh NP NAME serve-flags...: two jobs on one resident model, each equal to its single-process film
mesh() {
  local np=$1 name=$2 t0=$SECONDS
  shift 2
  local log=$T/$name.log
  serve_mpi "$np" "$log" "$@"
  local ids=() f id wrc
  for f in a b; do
    film "${name}_$f.json" "a lighthouse, take $f" "$T/${name}_$f.h5"
    id=$("$BIN" submit "$T/${name}_$f.json" --to "$EP" 2>/dev/null)
    check '[[ $id =~ ^j[0-9]+$ ]]' "$name: submit of film $f: '$id'"
    ids+=("$id")
  done
  for id in "${ids[@]}"; do
    timeout 120 "$BIN" watch --to "$EP" "$id" >/dev/null 2>&1
    wrc=$?
    check '[[ $wrc -eq 0 ]]' "$name: job $id did not finish (watch rc $wrc): $(grep -i "error\|fail" "$log" | tail -2)"
  done
  for f in a b; do
    check 'h5diff -q "$T/ref_$f.h5" "$T/${name}_$f.h5" video_uint8' "$name: film $f differs from the single-process render"
  done
  local loads; loads=$(grep -c "service: ready" "$log")
  check '[[ $loads -eq 1 ]]' "$name: the server started $loads times"
  if [[ $# -gt 0 && " $* " == *" --cfg-parallel "* ]]; then
    film "${name}_g1.json" "no guidance" "$T/${name}_g1.h5" ',"guidance":1'
    id=$("$BIN" submit "$T/${name}_g1.json" --to "$EP" 2>/dev/null)
    timeout 60 "$BIN" watch --to "$EP" "$id" >/dev/null 2>"$T/${name}_g1.err"
    wrc=$?
    check '[[ $wrc -eq 1 ]] && grep -q "guidance" "$T/${name}_g1.err" && [[ ! -e $T/${name}_g1.h5 ]]' \
      "$name: a guidance-1 film on a CFG-split mesh: watch rc $wrc: $(cat "$T/${name}_g1.err")"
    check '"$BIN" status --to "$EP" --timeout 5 >/dev/null' "$name: the server did not stay up after a failed job"
  fi
  stop_server "$log"
  local rc=$?
  check '[[ $rc -eq 0 ]]' "$name: shutdown: mpirun exit $rc: $(tail -3 "$log")"
  check '[[ $(grep -c "rank [0-9]/$np" "$log") -gt 0 ]]' "$name: the log shows no $np-rank world"
  echo "test_serve_mpi: $name ($np ranks): two jobs on one model load, each identical to one process ($((SECONDS - t0)) s)"
}

mesh 2 cfg2 --cfg-parallel
mesh 2 sp2 --sp 2
echo "test_serve_mpi: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
