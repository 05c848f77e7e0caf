#!/usr/bin/env bash
# tests/mpi/run_abort_test.sh MPIEXEC TEST_BINARY
# Expects: the fatal path exits 70 without MPI; under mpirun with 3 ranks a CHECK failure on rank 1
# ends the job with a non-zero status within 30 s, and its FATAL line names rank 1.
set -u
mpiexec=$1 bin=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
fail=0
out=$("$bin" single 2>&1); rc=$?
if [ $rc -ne 70 ] || ! grep -q "FATAL \[rank 0/1 .*deliberate failure without MPI (value 2)" <<<"$out"; then
  echo "FAIL single-process fatal path: rc=$rc output: $out"; fail=1
else
  echo "ok: single-process fatal path exits 70 with one FATAL line"
fi
start=$(date +%s)
out=$(timeout 30 "$mpiexec" -n 3 "$bin" 2>&1); rc=$?
elapsed=$(( $(date +%s) - start ))
if [ $rc -eq 124 ]; then
  echo "FAIL: the MPI job hung (killed after 30 s)"; fail=1
elif [ $rc -eq 0 ]; then
  echo "FAIL: the MPI job exited 0; output: $out"; fail=1
elif ! grep -q "FATAL \[rank 1/3 .*deliberate failure on rank 1 of 3" <<<"$out"; then
  echo "FAIL: no FATAL line naming rank 1/3; output: $out"; fail=1
elif grep -q "passed a barrier" <<<"$out"; then
  echo "FAIL: a rank passed the barrier"; fail=1
else
  echo "ok: rank 1's fatal error ended the 3-rank job (rc=$rc) in ${elapsed}s"
fi
[ $fail -eq 0 ] && echo "test_mpi_abort: passed" || echo "test_mpi_abort: FAILED"
exit $fail
