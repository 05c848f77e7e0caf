#!/usr/bin/env bash
# tests/slurm/test_slurm.sh REELFARM SOURCE_DIR - `reelfarm submit` and slurm/render.sbatch against a real,
# private, single-node Slurm (munged + slurmctld + slurmd started here, docs/slurm.md).
#
#   1. `reelfarm submit --dry-run`: the #SBATCH lines and parameters of the script for several job shapes, the
#      body equal to slurm/render.sbatch's (one source of truth), `bash -n`; each bad input refused with one
#      error line and the documented exit status, nothing written. (Runs without Slurm too.)
#   2. Skipped (exit 77) without the Slurm and munge binaries, the munge user, or root (slurmd runs as root
#      and munged as user munge, as in the recipe of environment.md); otherwise a cluster in a temp folder:
#      its own munge socket and key, free ports, its own job ids; stopped by PID on every exit path (trap),
#      after cancelling what is left.
#   3. Tiny-model renders of a film (21 frames, 64x64, 4 steps) as jobs, compared with the same film rendered
#      by one plain process: 1 rank through `reelfarm submit` itself (job id printed; MP4: ffprobe frames and
#      size, bytes equal), 2 and 4 ranks with `sbatch --wait` (HDF5 video_uint8 equal by h5diff; the log shows
#      one MPI world of 2/4 ranks and exactly one finished render), slurm/render.sbatch submitted directly
#      (2 ranks), 4 ranks launched by mpirun (MP4), slurm/render_nodes.sbatch shaped down to 1 node x 2, and
#      slurm/sweep.sbatch over 1x1 and 1x2 with the automatic and the sp=2 layout; a 2-rank job submitted with
#      --progress-endpoint followed to its end by `reelfarm watch --events` (docs/protocol.md).
#   4. Requeue and resume (a 121-frame film): the USR1 the job gets before its time limit (sent by hand with
#      `scancel --signal=USR1 --batch`), 2 ranks under srun and under mpirun: the ranks checkpoint, the script
#      requeues the job, the next run resumes; and `scontrol requeue` (what preemption does), 1 rank: Slurm TERMs the ranks, they
#      checkpoint, the next run resumes. Both films must equal the uninterrupted render.
# KEEP=1 keeps the temp folder (logs, scripts, slurm logs).
set -uo pipefail
bin=$1 src=$2
template=$src/slurm/render.sbatch
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

T=$(mktemp -d /tmp/reelfarm-slurm-test.XXXXXX)
chmod 0755 "$T" # munged (user munge) must reach its socket folder inside
D=$T/cluster
bg_pids=()
mkdir -p "$D"
cat >"$T/slurm-down.sh" <<'EOF'
# slurm-down.sh DIR: cancel the jobs left on the test cluster (so that no slurmstepd outlives its slurmd), then
# stop slurmd, slurmctld and munged by their PID files: TERM, KILL after 10 s.
D=$1
export SLURM_CONF=$D/slurm.conf
[[ -d $D/run ]] || exit 0
if [[ -s $D/run/slurmctld.pid ]] && kill -0 "$(cat "$D/run/slurmctld.pid")" 2>/dev/null; then
  jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [[ -n ${jobs// /} ]]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 1 150); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.1; done
  fi
fi
pids=()
for f in slurmd slurmctld munged; do
  p=$D/run/$f.pid
  [[ -s $p ]] || continue
  pid=$(cat "$p")
  kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" && pids+=("$pid")
  rm -f "$p"
done
for _ in $(seq 1 100); do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [[ $alive == 0 ]] && exit 0
  sleep 0.1
done
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p"; done
EOF
slurm_down() { bash "$T/slurm-down.sh" "$D"; }
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill -0 "$p" 2>/dev/null && kill -TERM "$p"; done
  slurm_down
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a clean environment: no enclosing allocation, the tiny model cached here, quiet and polite MPI on 2 cores
while IFS='=' read -r name _; do
  [[ $name =~ ^(SLURM_|SBATCH_|SRUN_|SALLOC_|SQUEUE_|SCANCEL_) ]] && unset "$name"
done < <(env)
unset REELFARM_TEST_INTERRUPT REELFARM_TEST_COMM_FAULT REELFARM_BIN REELFARM_LAUNCHER
export XDG_CACHE_HOME=$T/cache OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive REELFARM_LOG_LEVEL=info
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_mpi_yield_when_idle=1 # srun'd ranks do not know they share 2 cores (environment.md 4)

cat >"$T/film.json" <<'EOF'
{"prompt": "a lighthouse on a cliff at dawn", "frames": 21, "resolution": "64x64", "steps": 4}
EOF
cat >"$T/long.json" <<'EOF'
{"prompt": "a storm over the sea", "frames": 121, "resolution": "64x64", "steps": 8}
EOF

# ---- 1. dry runs ----
sub() { "$bin" submit "$@"; }
script=$(sub "$T/film.json" --out "$T/a.mp4" --dry-run 2>"$T/err")
check '[[ $? -eq 0 && ! -s $T/err ]]' "dry run failed: $(cat "$T/err")"
for line in "--nodes=1" "--ntasks-per-node=1" "--requeue" "--signal=B:USR1@120" "--open-mode=append" \
  "--output=\"$T/a.mp4.slurm-%j.log\"" "--job-name=\"reelfarm-a.mp4\""; do
  check 'grep -qxF -- "#SBATCH $line" <<<"$script"' "default script lacks '#SBATCH $line'"
done
check '! grep -q "^#SBATCH --\(gpus-per-node\|partition\|time\)" <<<"$script"' "default script asks for GPUs, a partition or a time"
check 'grep -qxF -- "set -- '"'$T/film.json' '$T/a.mp4' '--quiet' '--progress-json'"'" <<<"$script"' \
  "default parameters: $(grep '^set --' <<<"$script")"
check 'grep -qxF -- "bin='"'$bin'"'" <<<"$script" && grep -qxF "launcher='"'srun'"'" <<<"$script"' \
  "bin/launcher: $(grep -E '^(bin|launcher)=' <<<"$script")"
check 'bash -n <<<"$script"' "the script is not valid bash"
for f in render.sbatch render_nodes.sbatch sweep.sbatch; do check 'bash -n "$src/slurm/$f"' "slurm/$f is not valid bash"; done
body() { sed -n '/^# ---- end of parameters/,$p'; }
check 'diff <(body <<<"$script") <(body <"$template") >/dev/null' "the script's body differs from slurm/render.sbatch"
check 'diff <(sed -n "2,/^#SBATCH/p" <<<"$script" | grep -v "^#SBATCH\|^# Written by") \
  <(sed -n "2,/^#SBATCH/p" "$template" | grep -v "^#SBATCH") >/dev/null' "the script's header differs from the template's"

script=$(cd "$T" && sub film.json --out big.h5 --nodes 2 --gpus-per-node 4 --partition gpu --time 1-00:00:00 \
  --grace 300 --sp 2 --cfg-parallel --threads 3 --checkpoint-every 5 --sbatch=--account=abc --job-name big \
  --launcher mpirun --model "$T" --overwrite --dry-run --script-out "$T/big.sbatch")
check '[[ $? -eq 0 ]]' "dry run of a 2-node job failed"
for line in "--nodes=2" "--ntasks-per-node=4" "--gpus-per-node=4" "--partition=\"gpu\"" "--time=1-00:00:00" \
  "--signal=B:USR1@300" "--account=abc" "--job-name=\"big\"" "--output=\"$T/big.h5.slurm-%j.log\""; do
  check 'grep -qxF -- "#SBATCH $line" <<<"$script"' "2-node script lacks '#SBATCH $line'"
done
check 'grep -qxF -- "set -- '"'$T/film.json' '$T/big.h5' '--model' '$T' '--overwrite' '--sp' '2' '--cfg-parallel' '--threads' '3' '--checkpoint-every' '5' '--quiet' '--progress-json'"'" <<<"$script"' \
  "2-node parameters: $(grep '^set --' <<<"$script")"
check 'grep -qxF "launcher='"'mpirun'"'" <<<"$script"' "--launcher mpirun not in the script"
check 'cmp -s <(printf "%s\n" "$script") "$T/big.sbatch"' "--script-out differs from the printed script"
script=$(sub "$T/film.json" --out "$T/g.mp4" --gpus-per-node 8 --ntasks-per-node 2 --dry-run)
check 'grep -qxF -- "#SBATCH --ntasks-per-node=2" <<<"$script"' "--ntasks-per-node does not override the GPU count"
printf '{"frames": 9, "prompt": "x", "output": "from_film.mp4"}' >"$T/film_out.json"
script=$(sub "$T/film_out.json" --dry-run)
check 'grep -q -- "^set -- '"'$T/film_out.json' '$T/from_film.mp4'"'" <<<"$script"' "the film's own output is not used"

# bad inputs: exit status, words in the message, exactly one line, no script written
refuse() { # RC words... -- submit args...
  local want=$1 words=() w
  shift
  while [[ $1 != -- ]]; do words+=("$1"); shift; done
  shift
  local err rc okw=1
  err=$(sub "$@" --script-out "$T/refused.sbatch" 2>&1 >/dev/null)
  rc=$?
  for w in "${words[@]}"; do grep -qF -- "$w" <<<"$err" || okw=0; done
  check '[[ $rc -eq $want && $okw -eq 1 && $(wc -l <<<"$err") -eq 1 && ! -e $T/refused.sbatch ]]' \
    "refusal ($*): rc $rc (want $want): $err"
}
echo '{"prompt": "x", "frames": 9, "fames": 3}' >"$T/bad.json"
touch "$T/exists.mp4"
refuse 1 "nope.json" -- "$T/nope.json" --out "$T/x.mp4" --dry-run
refuse 1 "bad.json" "fames" -- "$T/bad.json" --out "$T/x.mp4" --dry-run
refuse 2 "--nodes" -- "$T/film.json" --out "$T/x.mp4" --nodes 0 --dry-run
refuse 2 "--ntasks-per-node" "'x'" -- "$T/film.json" --out "$T/x.mp4" --ntasks-per-node x --dry-run
refuse 2 "--gpus-per-node" -- "$T/film.json" --out "$T/x.mp4" --gpus-per-node -1 --dry-run
refuse 2 "--time" "1:2:3:4" -- "$T/film.json" --out "$T/x.mp4" --time 1:2:3:4 --dry-run
refuse 2 "--time" "--grace" -- "$T/film.json" --out "$T/x.mp4" --time 2 --dry-run
refuse 2 "multiple of 2" -- "$T/film.json" --out "$T/x.mp4" --ntasks-per-node 3 --sp 2 --dry-run
refuse 2 "--launcher" -- "$T/film.json" --out "$T/x.mp4" --launcher ssh --dry-run
refuse 1 "missing" "does not exist" -- "$T/film.json" --out "$T/missing/x.mp4" --dry-run
refuse 1 "exists.mp4" "--overwrite" -- "$T/film.json" --out "$T/exists.mp4" --dry-run
refuse 1 "x.txt" -- "$T/film.json" --out "$T/x.txt" --dry-run
refuse 1 "--out" -- "$T/film.json" --dry-run
refuse 1 "nomodel" -- "$T/film.json" --out "$T/x.mp4" --model "$T/nomodel" --dry-run
err=$(PATH=/nonexistent "$bin" submit "$T/film.json" --out "$T/x.mp4" 2>&1 >/dev/null)
check '[[ $? -eq 1 && $(wc -l <<<"$err") -eq 1 ]] && grep -q "sbatch" <<<"$err"' "no sbatch in PATH: $err"
check 'sub "$T/film.json" --out "$T/exists.mp4" --overwrite --dry-run >/dev/null' "--overwrite does not allow an existing output"

# ---- 2. the cluster ----
missing=()
for t in munged munge unmunge slurmctld slurmd sbatch srun scontrol scancel squeue sinfo h5diff ffprobe runuser; do
  command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || missing+=("$t")
done
if [[ ${#missing[@]} -gt 0 || $(id -u) -ne 0 ]] || ! id munge >/dev/null 2>&1; then
  echo "test_slurm: dry-run part: $pass passed, $fail failed; cluster part skipped (missing: ${missing[*]:-none};" \
    "uid $(id -u), root needed; user munge $(id munge >/dev/null 2>&1 && echo present || echo absent))"
  [[ $fail -eq 0 ]] && exit 77
  exit 1
fi
PATH=$PATH:/usr/sbin
# the jobs run a private copy of the binary: a rebuild of the tree during the test cannot pull it away
cp "$bin" "$T/reelfarm" && bin=$T/reelfarm
sub() { "$bin" submit --template "$template" "$@"; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  ctl_port=$((20000 + RANDOM % 30000)) d_port=$((ctl_port + 1))
  port_free $ctl_port && port_free $d_port && break
done
mkdir -p "$D"/{state,spool,log,run,tmp}
install -d -o munge -g munge -m 0711 "$D/munge"
# a private key: nothing under /etc/munge is read or changed
head -c 1024 /dev/urandom >"$D/munge/munge.key" && chown munge:munge "$D/munge/munge.key" && chmod 0400 "$D/munge/munge.key"
cat >"$D/slurm.conf" <<EOF
# private single-node test cluster (tests/slurm/test_slurm.sh); CPUs=4 so that 4-rank jobs fit on 2 cores
ClusterName=reelfarmtest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long (default 120 s) before it may start again
AuthInfo=socket=$D/munge/munge.socket,cred_expire=10
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
TmpFS=$D/tmp
SlurmctldDebug=info
SlurmdDebug=info
InactiveLimit=0
KillWait=15
# MinJobAge=5: sbatch --wait polls every 2 s (it slows down when MinJobAge/2 > 2)
MinJobAge=5
FirstJobId=$((1000 + RANDOM * 8))
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$D/slurm.conf
# If this script is killed outright (a CTest timeout sends SIGKILL, and the traps do not run), a detached
# watcher (not a child of this script any more) still stops the cluster when this process is gone.
(setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; bash "$2/slurm-down.sh" "$3"
  [[ $4 == 1 ]] || rm -rf "$2"' watcher $$ "$T" "$D" "${KEEP:-0}" </dev/null >/dev/null 2>&1 &)
t0=$SECONDS
up_ok=1
runuser -u munge -- munged --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
  --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed" || up_ok=0
[[ -s $D/munge/munged.pid ]] && cp "$D/munge/munged.pid" "$D/run/munged.pid"
if [[ $up_ok == 1 ]]; then
  slurmctld -c && slurmd -N localhost || up_ok=0
fi
for _ in $(seq 1 100); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.1; done
if [[ $up_ok == 0 ]] || ! sinfo -h -o %T 2>/dev/null | grep -qx idle; then
  bad "the test cluster did not come up"
  tail -n 20 "$D"/log/*.log "$D/munge/munged.log" >&2
  echo "test_slurm: $pass passed, $fail failed"
  exit 1
fi
echo "test_slurm: cluster up in $((SECONDS - t0)) s (ports $ctl_port/$d_port)"

# ---- 3. renders as jobs ----
"$bin" render "$T/film.json" --out "$T/ref.h5" --quiet 2>"$T/ref.log" &&
  "$bin" render "$T/film.json" --out "$T/ref.mp4" --quiet 2>>"$T/ref.log" &&
  "$bin" render "$T/long.json" --out "$T/long_ref.h5" --quiet 2>>"$T/ref.log" ||
  { cat "$T/ref.log" >&2; bad "the single-process reference renders failed"; exit 1; }

probe() { # file -> "frames width height"
  ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames,width,height \
    -of default=nw=1:nk=1 "$1" 2>/dev/null | tr '\n' ' ' | awk '{print $3, $1, $2}'
}
logof() { ls "$T/$1".slurm-*.log 2>/dev/null | head -1; }
# the job's log shows one render shared by one MPI world of N ranks: the lead's info lines say rank 0/N, no
# rank runs alone (rank r/1), and the film was started and finished once (N separate renders would each
# report their own start)
one_render() { # log ranks
  grep -q "\]\[rank 0/$2 " "$1" && ! grep -q "\]\[rank [0-9]*/1 " "$1" &&
    [[ $(grep -c '"event":"start"' "$1") -eq 1 && $(grep -c '"event":"done"' "$1") -eq 1 ]]
}
job() { # name ranks [submit flags...]: sbatch --wait the submitted script; echo rc
  local name=$1 n=$2
  shift 2
  sub "$T/film.json" --out "$T/$name" --ntasks-per-node "$n" --dry-run --script-out "$T/$name.sbatch" "$@" >/dev/null ||
    { echo 99; return; }
  timeout 150 sbatch --wait --quiet "$T/$name.sbatch" >/dev/null 2>"$T/$name.sbatch.err"
  echo $?
}

# 1 rank, through `reelfarm submit` itself
t0=$SECONDS
id=$(sub "$T/film.json" --out "$T/one.mp4" 2>"$T/submit.err")
check '[[ $? -eq 0 && $id =~ ^[0-9]+$ ]]' "reelfarm submit: '$id' $(cat "$T/submit.err")"
check 'grep -q "job $id" "$T/submit.err"' "reelfarm submit does not say which job: $(cat "$T/submit.err")"
for _ in $(seq 1 600); do grep -q "result=\(done\|failed\)" "$(logof one.mp4)" 2>/dev/null && break; sleep 0.2; done
check 'grep -q "job=$id run=1 ranks=1 nodes=1 result=done rc=0" "$(logof one.mp4)"' \
  "1-rank job $id: $(tail -n 3 "$(logof one.mp4)" 2>/dev/null)"
check '[[ "$(probe "$T/one.mp4")" == "21 64 64" ]]' "1-rank MP4: ffprobe '$(probe "$T/one.mp4")', want '21 64 64'"
check 'cmp -s "$T/one.mp4" "$T/ref.mp4"' "1-rank MP4 differs from the single-process render"
check '[[ ! -e $T/one.mp4.ckpt.h5 ]]' "1-rank job left its checkpoint"
echo "test_slurm: 1 rank (reelfarm submit): $((SECONDS - t0)) s"
err=$(sub "$T/film.json" --out "$T/np.mp4" --partition nopart 2>&1 >/dev/null)
check '[[ $? -eq 1 ]] && grep -q "reelfarm: error: sbatch failed" <<<"$err" && grep -qi "partition" <<<"$err"' \
  "sbatch refusing the job (unknown partition): $err"

for n in 2 4; do
  t0=$SECONDS
  rc=$(job "r$n.h5" $n)
  log=$(logof "r$n.h5")
  check '[[ $rc -eq 0 ]]' "$n ranks: sbatch --wait exit $rc: $(tail -n 5 "$log" 2>/dev/null)"
  check 'h5diff "$T/ref.h5" "$T/r$n.h5" video_uint8 >/dev/null 2>&1' "$n ranks: the film differs from the single-process render (or is missing)"
  check 'h5dump -H -d video_uint8 "$T/r$n.h5" 2>/dev/null | grep -q "( 21, 64, 64, 3 )"' "$n ranks: video_uint8 is not [21, 64, 64, 3]"
  check 'one_render "$log" $n' "$n ranks: the log does not show one render by one $n-rank MPI world ($(grep -c '"event":"start"' "$log" 2>/dev/null) start and $(grep -c '"event":"done"' "$log" 2>/dev/null) done events; rank tags: $(grep -o '\]\[rank [0-9]*/[0-9]*' "$log" 2>/dev/null | sort -u | tr '\n' ' '))"
  check '[[ ! -e $T/r$n.h5.ckpt.h5 ]]' "$n ranks: checkpoint left behind"
  echo "test_slurm: $n ranks (srun): $((SECONDS - t0)) s"
done

# a batch job's progress: `submit --progress-endpoint`, rank 0 of 2 publishes, `watch --events` follows it
t0=$SECONDS
"$bin" watch --events "ipc://$T/job.ev" --timeout 100 >"$T/watch.out" 2>"$T/watch.err" &
wpid=$!
rc=$(job "pw.h5" 2 --progress-endpoint "ipc://$T/job.ev")
wait $wpid
wrc=$?
check '[[ $rc -eq 0 && $wrc -eq 0 ]] && grep -q "^slurm-[0-9]* done $T/pw.h5" "$T/watch.out" && grep -qE "rows ([0-9]+)/\1 " "$T/watch.err"' \
  "watch --events on a 2-rank Slurm job: job rc $rc, watch rc $wrc: $(tail -n 2 "$T/watch.out" "$T/watch.err")"
check 'h5diff "$T/ref.h5" "$T/pw.h5" video_uint8 >/dev/null 2>&1' "the watched 2-rank job's film differs from the single-process render"
echo "test_slurm: 2 ranks with --progress-endpoint and watch --events: $((SECONDS - t0)) s"

# slurm/render.sbatch itself, without reelfarm submit: sbatch options on the command line, flags after OUT
t0=$SECONDS
REELFARM_BIN=$bin timeout 150 sbatch --wait --quiet --ntasks-per-node 2 --time 10 --output "$T/direct.log" \
  "$template" "$T/film.json" "$T/direct.h5" --quiet --progress-json >/dev/null 2>"$T/direct.err"
rc=$?
check '[[ $rc -eq 0 ]] && h5diff "$T/ref.h5" "$T/direct.h5" video_uint8 >/dev/null 2>&1 && one_render "$T/direct.log" 2' \
  "sbatch slurm/render.sbatch (2 ranks): exit $rc, or the film differs: $(tail -n 3 "$T/direct.log" 2>/dev/null)"
echo "test_slurm: 2 ranks (slurm/render.sbatch directly): $((SECONDS - t0)) s"

t0=$SECONDS
rc=$(job "m4.mp4" 4 --launcher mpirun)
log=$(logof m4.mp4)
check '[[ $rc -eq 0 ]]' "4 ranks, mpirun: sbatch --wait exit $rc: $(tail -n 5 "$log" 2>/dev/null)"
check '[[ "$(probe "$T/m4.mp4")" == "21 64 64" ]]' "4 ranks, mpirun: ffprobe '$(probe "$T/m4.mp4")', want '21 64 64'"
check 'cmp -s "$T/m4.mp4" "$T/ref.mp4"' "4 ranks, mpirun: the MP4 differs from the single-process render"
check 'one_render "$log" 4' "4 ranks, mpirun: the log does not show one render by one 4-rank MPI world"
echo "test_slurm: 4 ranks (mpirun): $((SECONDS - t0)) s"

# the several-node script (shaped down to this node) and the scaling sweep
t0=$SECONDS
REELFARM_BIN=$bin REELFARM_SLURM_DIR=$src/slurm timeout 150 sbatch --wait --quiet --nodes 1 --ntasks-per-node 2 \
  --gpus-per-node 0 --time 10 --output "$T/nodes.log" "$src/slurm/render_nodes.sbatch" "$T/film.json" "$T/nodes.h5" \
  --quiet --progress-json >/dev/null 2>"$T/nodes.err"
rc=$?
check '[[ $rc -eq 0 ]] && h5diff "$T/ref.h5" "$T/nodes.h5" video_uint8 >/dev/null 2>&1 && one_render "$T/nodes.log" 2' \
  "sbatch slurm/render_nodes.sbatch (1 node x 2): exit $rc: $(cat "$T/nodes.err") $(tail -n 3 "$T/nodes.log" 2>/dev/null)"
REELFARM_BIN=$bin timeout 150 sbatch --wait --quiet --ntasks-per-node 2 --time 10 --output "$T/sweep.log" \
  "$src/slurm/sweep.sbatch" "$T/film.json" "$T/sweep" "1x1 1x2" "auto sp=2" >/dev/null 2>"$T/sweep.err"
rc=$?
rows=$(tail -n +2 "$T/sweep/sweep.tsv" 2>/dev/null | cut -f1,8,13 | tr '\t\n' ': ')
check '[[ $rc -eq 0 && "$rows" == "1x1-auto:0:first 1x2-auto:0:yes 1x2-sp=2:0:yes " ]]' \
  "sweep: exit $rc, rows '$rows' (want 1x1-auto first, 1x2-auto and 1x2-sp=2 equal to it): $(tail -n 5 "$T/sweep.log" 2>/dev/null)"
check 'grep -q "skip 1x1 sp=2" "$T/sweep.log" && grep -q "^sweep: point=1x2-sp=2 .* rc=0 wall_s=[0-9.]* render_s=[0-9.e+-]* frames=21 " "$T/sweep.log"' \
  "sweep log lines: $(grep '^sweep:' "$T/sweep.log" 2>/dev/null | head -5)"
echo "test_slurm: render_nodes.sbatch and sweep.sbatch: $((SECONDS - t0)) s"

# ---- 4. requeue and resume ----
# requeued NAME RANKS HOW: start the long film, interrupt it after 2 denoising rows, wait for the end
requeued() { # NAME RANKS usr1|scontrol [submit flags...]
  local name=$1 n=$2 how=$3 id log rc=
  shift 3
  sub "$T/long.json" --out "$T/$name" --ntasks-per-node "$n" --dry-run --script-out "$T/$name.sbatch" "$@" >/dev/null
  local t0=$SECONDS
  timeout 170 sbatch --wait --parsable "$T/$name.sbatch" >"$T/$name.id" 2>"$T/$name.sbatch.err" &
  local sb=$!
  bg_pids+=("$sb")
  for _ in $(seq 1 100); do [[ -s $T/$name.id ]] && break; sleep 0.1; done
  id=$(cut -d';' -f1 <"$T/$name.id")
  for _ in $(seq 1 600); do
    log=$(logof "$name")
    [[ -n $log && $(grep -c '"event":"row"' "$log") -ge 2 ]] && break
    sleep 0.1
  done
  if [[ $how == usr1 ]]; then scancel --signal=USR1 --batch "$id"; else scontrol requeue "$id"; fi
  wait "$sb"
  rc=$?
  log=$(logof "$name")
  check '[[ $rc -eq 0 ]]' "$name ($how, $n ranks): sbatch --wait exit $rc: $(tail -n 5 "$log" 2>/dev/null)"
  # the lead's own progress event of the stop must reach the log (its stderr line alone is not enough)
  check 'grep -q "\"event\":\"interrupted\"" "$log"' "$name ($how): no \"interrupted\" progress event from the lead in the log$(
    grep -q "progress saved in" "$log" && echo "; a rank did print 'interrupted ... progress saved'")$(
    grep -o "MPI_ABORT was invoked on rank [0-9]* in communicator MPI_COMM_WORLD with errorcode [0-9]*" <(tr '\n' ' ' <"$log" | tr -s ' ') |
      head -1 | sed 's/^/; /')"
  if [[ $how == usr1 ]]; then
    check 'grep -q "job=$id run=1 .*result=requeued" "$log"' "$name ($how): the script did not requeue the job"
  fi
  check 'grep -q "run 2\] resume from $T/$name.ckpt.h5" "$log"' "$name ($how): the second run did not resume from the checkpoint"
  # the stop came after 2 denoising rows: a checkpoint saved at the stop resumes past them (not from row 0)
  local resumed_at
  resumed_at=$(sed -n 's/.*"event":"start".*"rows_done":\([0-9]*\),.*"detail":"resume".*/\1/p' "$log" | head -1)
  check '[[ ${resumed_at:-0} -ge 2 ]]' "$name ($how): the second run resumed at row ${resumed_at:-?}, not from the checkpoint saved at the stop"
  check 'grep -q "job=$id run=2 ranks=$n nodes=1 result=done rc=0" "$log"' "$name ($how): the second run did not finish"
  check 'h5diff "$T/long_ref.h5" "$T/$name" video_uint8 >/dev/null 2>&1' "$name ($how, $n ranks): the resumed film differs from the uninterrupted render"
  check '[[ ! -e $T/$name.ckpt.h5 ]]' "$name ($how): checkpoint left behind"
  echo "test_slurm: requeue by $how, $n rank(s) $*: $((SECONDS - t0)) s"
}
requeued usr1.h5 2 usr1
requeued usr1_mpirun.h5 2 usr1 --launcher mpirun
requeued preempt.h5 1 scontrol

echo "test_slurm: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
