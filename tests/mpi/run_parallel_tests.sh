#!/usr/bin/env bash
# tests/mpi/run_parallel_tests.sh MPIEXEC TEST_BINARY - the layout tests under 2 and 4 ranks
# (oversubscribed on small machines), each bounded so a hang fails instead of blocking CI.
set -u
mpiexec=$1 bin=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
fail=0
for np in 2 4; do
  timeout 300 "$mpiexec" -n $np "$bin"; rc=$?
  if [ $rc -ne 0 ]; then echo "FAIL: $np ranks: exit $rc"; fail=1; else echo "ok: $np ranks"; fi
done
exit $fail
