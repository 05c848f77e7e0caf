#!/usr/bin/env bash
# tests/mpi/test_failure.sh MPIEXEC REELFARM - a rank that dies or hangs ends a render in bounded time,
# names the rank and its host, and leaves a checkpoint that resumes to the same film (docs/failure.md).
#
# Under mpirun -n 2 and -n 4 (oversubscribed) the built-in tiny model renders 29 frames with a
# checkpoint after every row. The last rank (-n 2: rank 1, -n 4: rank 3) stops itself at a collective in
# the middle of the render with the test hook REELFARM_TEST_COMM_FAULT=rank:n[:KILL|STOP]
# (parallel/watchdog.h):
#   (a) SIGKILL: mpirun notices the dead rank and ends the job; it must end within KILL_LIMIT seconds of
#       the kill, non-zero, with mpirun's line naming the rank;
#   (b) SIGSTOP (a hang) with REELFARM_COMM_TIMEOUT=5: a waiting rank's deadline ends the job within
#       timeout + grace (2 s) + STOP_SLACK, non-zero, with one FATAL line naming the stopped rank and host;
#   (c) -n 2 only: SIGKILL under a launcher that does not end the job by itself: the deadline does.
# After each, the checkpoint resumes as a single process and the film equals an uninterrupted render
# (h5diff of the raw frames). Every mpirun is bounded by `timeout`, so a hang fails instead of blocking.
set -u
mpiexec=$1 bin=$2
T=$(mktemp -d /tmp/reelfarm-failure-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive XDG_CACHE_HOME=$T/cache REELFARM_LOG_LEVEL=warn
unset REELFARM_TEST_INTERRUPT REELFARM_TEST_COMM_FAULT REELFARM_COMM_TIMEOUT
TIMEOUT=5 GRACE=2 KILL_LIMIT=10 STOP_SLACK=6
host=$(hostname); host=${host%%.*}
R=(--prompt "a lighthouse at dawn" --frames 29 --steps 4 --checkpoint-every 1 --threads 1 --quiet)
fail=0
bad() { echo "FAIL: $*"; fail=1; }

now() { date +%s.%N; }
# seconds from the hook's log line "[hh:mm:ss.mmm][rank ...] test hook ..." to $1 (an epoch time)
since_fault() {
  local stamp t
  stamp=$(sed -n 's/^\[\([0-9:.]*\)\]\[rank.*test hook REELFARM_TEST_COMM_FAULT.*/\1/p' <<<"$2" | head -1)
  [ -n "$stamp" ] || { echo "?"; return; }
  t=$(date -d "$stamp" +%s.%N)
  awk -v a="$1" -v b="$t" 'BEGIN { d = a - b; if (d < 0) d += 86400; printf "%.1f", d }'
}

# the uninterrupted single-process film
out=$("$bin" render "${R[@]}" --out "$T/ref.h5" 2>&1) || { echo "FAIL: the reference render failed: $out"; exit 1; }

# resume_check NAME DIR: single-process resume of DIR/x.h5.ckpt.h5 must give the reference film
resume_check() {
  local name=$1 d=$2 out rc
  if [ ! -f "$d/x.h5.ckpt.h5" ]; then bad "$name: no checkpoint left"; return; fi
  out=$(REELFARM_LOG_LEVEL=info timeout 120 "$bin" render --resume "$d/x.h5.ckpt.h5" --quiet 2>&1); rc=$?
  local where
  where=$(sed -n 's/.*resuming .* at \(chunk [0-9/]* row [0-9]*\).*/\1/p' <<<"$out")
  if [ $rc -ne 0 ]; then bad "$name: resume failed (exit $rc): $out"; return; fi
  if ! h5diff -q "$T/ref.h5" "$d/x.h5" >/dev/null; then bad "$name: the resumed film differs from the reference"; return; fi
  echo "    resumed as one process from ${where:-?}: film identical to the uninterrupted render"
}

# leftover ranks of a job (a stopped rank that nobody killed) fail the test and are ended here
no_leftovers() {
  local name=$1 d=$2 pids
  sleep 0.5
  pids=$(pgrep -f -- "--out $d/x.h5" || true)
  if [ -n "$pids" ]; then
    bad "$name: processes left behind: $pids"
    for p in $pids; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  fi
}

for np in 2 4; do
  victim=$((np - 1))
  # an uninterrupted run of this layout: the same film, and how many collectives the victim makes
  # (its debug line at the end); the fault goes to the middle of them
  out=$(REELFARM_LOG_LEVEL=debug timeout 60 "$mpiexec" -n $np "$bin" render "${R[@]}" --out "$T/clean$np.h5" 2>&1)
  rc=$?
  n=$(sed -n "s/.*\[rank $victim\/$np .*: \([0-9]*\) collectives.*/\1/p" <<<"$out" | head -1)
  if [ $rc -ne 0 ] || [ -z "$n" ]; then bad "-n $np: the uninterrupted render failed (exit $rc) or gave no count: $out"; continue; fi
  if ! h5diff -q "$T/ref.h5" "$T/clean$np.h5" >/dev/null; then bad "-n $np: the film differs from one process's"; fi
  at=$((n / 2))

  # (a) a killed rank
  d=$T/kill$np; mkdir -p "$d"
  t0=$(now)
  out=$(REELFARM_TEST_COMM_FAULT=$victim:$at:KILL REELFARM_COMM_TIMEOUT=$TIMEOUT \
        timeout 60 "$mpiexec" -n $np "$bin" render "${R[@]}" --out "$d/x.h5" 2>&1); rc=$?
  t1=$(now); after=$(since_fault "$t1" "$out"); total=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
  name="-n $np SIGKILL rank $victim"
  if [ $rc -eq 124 ]; then bad "$name: the job hung (killed by timeout after 60 s)"
  elif [ $rc -eq 0 ]; then bad "$name: the job exited 0: $out"
  elif [ "$after" = "?" ]; then bad "$name: the test hook did not fire: $out"
  elif awk -v a="$after" -v l=$KILL_LIMIT 'BEGIN { exit !(a > l) }'; then bad "$name: ended ${after} s after the kill (limit $KILL_LIMIT s)"
  elif ! grep -Eq "process rank $victim .*exited on signal 9" <<<"$out"; then bad "$name: no line names rank $victim: $out"
  else
    echo "ok: $name at its collective $at: job ended ${after} s after the kill (whole run ${total} s, exit $rc)"
    echo "    $(grep -E "process rank $victim .*exited on signal 9" <<<"$out" | head -1)"
    resume_check "$name" "$d"
  fi
  no_leftovers "$name" "$d"

  # (b) a stopped (hung) rank
  d=$T/stop$np; mkdir -p "$d"
  t0=$(now)
  out=$(REELFARM_TEST_COMM_FAULT=$victim:$at:STOP REELFARM_COMM_TIMEOUT=$TIMEOUT \
        timeout 60 "$mpiexec" -n $np "$bin" render "${R[@]}" --out "$d/x.h5" 2>&1); rc=$?
  t1=$(now); after=$(since_fault "$t1" "$out"); total=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
  name="-n $np SIGSTOP rank $victim"
  limit=$((TIMEOUT + GRACE + STOP_SLACK))
  fatal=$(grep -E "FATAL \[rank [0-9]+/$np .*did not arrive" <<<"$out" | head -1)
  if [ $rc -eq 124 ]; then bad "$name: the job hung (killed by timeout after 60 s)"
  elif [ $rc -eq 0 ]; then bad "$name: the job exited 0: $out"
  elif [ "$after" = "?" ]; then bad "$name: the test hook did not fire: $out"
  elif awk -v a="$after" -v l=$limit 'BEGIN { exit !(a > l) }'; then bad "$name: ended ${after} s after the stop (limit $limit s)"
  elif awk -v a="$after" -v l=$TIMEOUT 'BEGIN { exit !(a < l) }'; then bad "$name: ended ${after} s after the stop, before the $TIMEOUT s timeout"
  elif [ -z "$fatal" ]; then bad "$name: no FATAL line naming the ranks that did not arrive: $out"
  elif ! grep -q "rank $victim (host $host)" <<<"$fatal"; then bad "$name: the FATAL line does not name rank $victim on $host: $fatal"
  elif [ "$(grep -c 'FATAL' <<<"$out")" -ne 1 ]; then bad "$name: more than one FATAL line: $out"
  else
    echo "ok: $name at its collective $at, REELFARM_COMM_TIMEOUT=$TIMEOUT: job ended ${after} s after the stop (whole run ${total} s, exit $rc)"
    echo "    $fatal"
    resume_check "$name" "$d"
  fi
  no_leftovers "$name" "$d"

  # (c) -n 2 only: a killed rank under a launcher that keeps the others running (as srun can: mpirun
  # --enable-recovery stands in for it); the deadline ends the job and names the dead rank. That mode
  # of mpirun reports exit 0 after MPI_Abort, so only the line and the time are checked.
  [ $np -eq 2 ] || continue
  d=$T/lost$np; mkdir -p "$d"
  t0=$(now)
  out=$(REELFARM_TEST_COMM_FAULT=$victim:$at:KILL REELFARM_COMM_TIMEOUT=$TIMEOUT \
        timeout 60 "$mpiexec" --enable-recovery -n $np "$bin" render "${R[@]}" --out "$d/x.h5" 2>&1); rc=$?
  t1=$(now); after=$(since_fault "$t1" "$out"); total=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
  name="-n $np SIGKILL rank $victim, job kept running"
  fatal=$(grep -E "FATAL \[rank [0-9]+/$np .*did not arrive" <<<"$out" | head -1)
  if [ $rc -eq 124 ]; then bad "$name: the job hung (killed by timeout after 60 s)"
  elif [ "$after" = "?" ]; then bad "$name: the test hook did not fire: $out"
  elif awk -v a="$after" -v l=$limit 'BEGIN { exit !(a > l) }'; then bad "$name: ended ${after} s after the kill (limit $limit s)"
  elif ! grep -q "rank $victim (host $host)" <<<"$fatal"; then bad "$name: no FATAL line naming rank $victim on $host: $out"
  else
    echo "ok: $name (mpirun --enable-recovery), REELFARM_COMM_TIMEOUT=$TIMEOUT: job ended ${after} s after the kill (whole run ${total} s)"
    echo "    $fatal"
    resume_check "$name" "$d"
  fi
  no_leftovers "$name" "$d"
done
[ $fail -eq 0 ] && echo "test_failure: passed" || echo "test_failure: FAILED"
exit $fail
