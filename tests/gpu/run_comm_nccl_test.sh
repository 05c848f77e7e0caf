#!/usr/bin/env bash
# tests/gpu/run_comm_nccl_test.sh MPIEXEC TEST_BINARY - the NCCL communicator under mpirun.
# N = the number of visible CUDA devices (one rank per GPU, as NCCL requires); 0 devices: skipped (77).
# Expects: the comparisons (mode all) pass on N ranks; a host pointer ends the job with a FATAL line naming
# the buffer; a stream held busy past REELFARM_COMM_TIMEOUT=2 ends it with "allgather (stream busy)";
# with N >= 2, a rank that skips an allgather ends it (REELFARM_COMM_TIMEOUT=2) with the line naming that
# rank as not arrived, and a tag mismatch ends it with the line naming both tags. Each job is bounded by
# `timeout`, so a hang fails instead of blocking CI.
set -u
mpiexec=$1 bin=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
out=$("$bin" devices 2>&1); rc=$?
if [ $rc -eq 77 ]; then echo "$out"; exit 77; fi
if [ $rc -ne 0 ]; then echo "FAIL: $bin devices: exit $rc: $out"; exit 1; fi
n=$(tail -n 1 <<<"$out")
echo "CUDA devices: $n"
fail=0

# run LABEL NP TIMEOUT MODE [VAR=VALUE...]: sets rc, out and elapsed
run() {
  local label=$1 np=$2 limit=$3 mode=$4; shift 4
  local start; start=$(date +%s.%N)
  out=$(env "$@" timeout "$limit" "$mpiexec" -n "$np" "$bin" "$mode" 2>&1); rc=$?
  elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "--- $label: $np ranks, exit $rc, ${elapsed} s"
}

# expect_fatal LABEL MAX_SECONDS PATTERN...: the last run ended non-zero, within MAX_SECONDS, with a FATAL
# line matching every PATTERN
expect_fatal() {
  local label=$1 max=$2; shift 2
  local line; line=$(grep "FATAL" <<<"$out" | head -n 1)
  if [ $rc -eq 124 ]; then echo "FAIL: $label: the job hung (killed by timeout)"; fail=1; return; fi
  if [ $rc -eq 0 ]; then echo "FAIL: $label: the job exited 0; output: $out"; fail=1; return; fi
  if awk -v e="$elapsed" -v m="$max" 'BEGIN { exit !(e > m) }'; then
    echo "FAIL: $label: took ${elapsed} s (> $max)"; fail=1
  fi
  for p in "$@"; do
    if ! grep -q -- "$p" <<<"$line"; then echo "FAIL: $label: FATAL line lacks \"$p\"; output: $out"; fail=1; return; fi
  done
  echo "ok: $label: $line"
}

run "comparisons" "$n" 300 all
echo "$out" | tail -n 40
if [ $rc -ne 0 ]; then
  echo "FAIL: comparisons on $n ranks: exit $rc"; fail=1
else
  echo "ok: comparisons on $n ranks"
fi

run "host pointer" 1 60 hostptr
expect_fatal "host pointer" 30 "comm hostptr (nccl): allgather (call 1" "send buffer" "is host memory"

run "stream held busy" 1 60 stall REELFARM_COMM_TIMEOUT=2
expect_fatal "stream held busy" 30 "comm stall (nccl): allgather (stream busy) (call 1, 1 ranks) waited" \
  "REELFARM_COMM_TIMEOUT=2"

if [ "$n" -ge 2 ]; then
  last=$((n - 1))
  # NCCL_RUNTIME_CONNECT=0: connections are made at init (60 s floor), not in the first collectives
  run "rank skips a collective" "$n" 90 timeout REELFARM_COMM_TIMEOUT=2 NCCL_RUNTIME_CONNECT=0
  expect_fatal "rank skips a collective" 30 "comm timeout (nccl): allgather (call 3, $n ranks) waited" \
    "rank $last (host" "did not arrive"
  run "tag mismatch" "$n" 60 tag
  expect_fatal "tag mismatch" 30 "comm tag (nccl): recv" "rank 0 sent 64 bytes with tag 5" "expects 64 bytes with tag 6"
else
  echo "note: one GPU: the rank-skip timeout and the tag mismatch need 2 ranks on 2 GPUs; not run"
fi
[ $fail -eq 0 ] && echo "test_comm_nccl: passed" || echo "test_comm_nccl: FAILED"
exit $fail
