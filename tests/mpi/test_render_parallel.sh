#!/usr/bin/env bash
# tests/mpi/test_render_parallel.sh REELFARM MPIEXEC - `reelfarm render` under mpirun with 2 and 4 ranks
# (oversubscribed) on the built-in tiny model, every layout against the single-rank film (issue
# "distributed"): sequence and CFG parallel renders give identical frames and latents, tensor parallel
# ones final latents within relative L2 1e-5; a render interrupted on 4 ranks resumes on 2 and then on 1
# with the single-rank result; bad layouts are refused before any work.
set -u
bin=$1 mpiexec=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive REELFARM_LOG_LEVEL=warn
tmp=$(mktemp -d /tmp/reelfarm-render-par.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME=$tmp/cache
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# relative L2 distance of dataset $3 in two HDF5 files (9 significant digits)
rel_l2() {
  h5dump -y -w 0 -m %.9g -d "$3" -o "$tmp/a.txt" "$1" >/dev/null && h5dump -y -w 0 -m %.9g -d "$3" -o "$tmp/b.txt" "$2" >/dev/null &&
    paste -d' ' <(tr -s ', \n' '\n' <"$tmp/a.txt" | grep -v '^$') <(tr -s ', \n' '\n' <"$tmp/b.txt" | grep -v '^$') |
    awk '{d = $1 - $2; num += d * d; den += $2 * $2; n++} END {if (n == 0) print "nan"; else printf "%.3g\n", sqrt(num / den)}'
}

base=(render --prompt "a lighthouse on a cliff at dawn" --frames 29 --steps 4 --quiet)
async=(--ar-step 2 --causal-block-size 1 --causal-attention)
"$bin" "${base[@]}" --out "$tmp/one.h5" --save-latents "$tmp/one_lat.h5" 2>"$tmp/one.log" ||
  { cat "$tmp/one.log"; bad "single-rank reference render"; exit 1; }
"$bin" "${base[@]}" "${async[@]}" --out "$tmp/one_async.h5" --save-latents "$tmp/one_async_lat.h5" 2>>"$tmp/one.log" ||
  { cat "$tmp/one.log"; bad "single-rank async reference render"; exit 1; }

# layout NP NAME EXACT|TOL REF extra flags...
layout() {
  local np=$1 name=$2 mode=$3 ref=$4
  shift 4
  local t0=$SECONDS
  if ! timeout 180 "$mpiexec" -n "$np" "$bin" "${base[@]}" "$@" --out "$tmp/$name.h5" --save-latents "$tmp/${name}_lat.h5" \
    >"$tmp/$name.log" 2>&1; then
    tail -5 "$tmp/$name.log"
    bad "$np ranks $name: the render failed"
    return
  fi
  if [ "$mode" = exact ]; then
    if h5diff "$tmp/$ref.h5" "$tmp/$name.h5" video_uint8 >/dev/null && h5diff "$tmp/${ref}_lat.h5" "$tmp/${name}_lat.h5" latents >/dev/null; then
      ok "$np ranks $name ($*): frames and latents identical to one rank ($((SECONDS - t0)) s)"
    else
      bad "$np ranks $name ($*): differs from one rank (latents rel L2 $(rel_l2 "$tmp/${ref}_lat.h5" "$tmp/${name}_lat.h5" latents))"
    fi
  else
    local r
    r=$(rel_l2 "$tmp/${ref}_lat.h5" "$tmp/${name}_lat.h5" latents)
    if awk -v r="$r" 'BEGIN {exit !(r <= 1e-5)}'; then
      ok "$np ranks $name ($*): final latents rel L2 $r <= 1e-5 ($((SECONDS - t0)) s)"
    else
      bad "$np ranks $name ($*): final latents rel L2 $r > 1e-5"
    fi
  fi
}

layout 2 sp2 exact one --sp 2
layout 2 ring2 exact one --sp 2 --ulysses 1
layout 2 cfg2 exact one --cfg-parallel
layout 2 tp2 tol one --tp 2
layout 2 sp2_causal exact one_async --sp 2 "${async[@]}"
layout 4 sp4 exact one --sp 4
layout 4 ring4 exact one --sp 4 --ulysses 1
layout 4 sp4_causal exact one_async --sp 4 "${async[@]}"
layout 4 cfg2_sp2 exact one --cfg-parallel --sp 2
layout 4 sp2_tp2 tol one --sp 2 --tp 2
layout 4 cfg2_tp2 tol one --cfg-parallel --tp 2
layout 4 auto exact one # no flags: CFG x SP chosen from the rank count

# resume across layouts (8 rows in 2 chunks): stopped by SIGTERM on the lead at row 3 on 4 ranks (cfg 2 x
# sp 2), again 3 rows later on 2 ranks (ring 2), finished on 1 rank; the film equals the uninterrupted one
lead_term() { # N: the lead raises SIGTERM at its N-th denoising row
  printf 'if [ "${OMPI_COMM_WORLD_RANK:-0}" = 0 ]; then export REELFARM_TEST_INTERRUPT=row:%s:TERM; fi; exec "$@"' "$1"
}
ck=$tmp/resume.h5.ckpt.h5
timeout 180 "$mpiexec" -n 4 bash -c "$(lead_term 3)" _ "$bin" "${base[@]}" --out "$tmp/resume.h5" --cfg-parallel --sp 2 \
  >"$tmp/r4.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ -f "$ck" ] && grep -q "reelfarm render --resume" "$tmp/r4.log"; then
  ok "4 ranks (cfg 2 x sp 2) stopped by SIGTERM: exit $rc, checkpoint written, resume command printed"
else
  tail -5 "$tmp/r4.log"; bad "4-rank SIGTERM: exit $rc, checkpoint $( [ -f "$ck" ] && echo present || echo missing)"
fi
timeout 180 "$mpiexec" -n 2 bash -c "$(lead_term 3)" _ env REELFARM_LOG_LEVEL=info "$bin" render --resume "$ck" --quiet --sp 2 --ulysses 1 \
  >"$tmp/r2.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ -f "$ck" ] && grep -q "resuming .* at chunk 1/2 row 3" "$tmp/r2.log"; then
  ok "resumed on 2 ranks (ring 2) at chunk 1/2 row 3 and stopped again: exit $rc"
else
  tail -5 "$tmp/r2.log"; bad "2-rank resume stop: exit $rc"
fi
if "$bin" render --resume "$ck" --quiet >"$tmp/r1.log" 2>&1 && h5diff "$tmp/one.h5" "$tmp/resume.h5" video_uint8 >/dev/null; then
  ok "finished on 1 rank: the film equals the uninterrupted single-rank film bit for bit"
else
  tail -5 "$tmp/r1.log"
  bad "resume across layouts: film differs (frames rel L2 $(rel_l2 "$tmp/one.h5" "$tmp/resume.h5" video_uint8 2>/dev/null))"
fi

# the encoder rank (latent overlap): 2 computing ranks + 1 encoder rank, the MP4 byte for byte the single-rank
# one; stopped on the lead mid-render and resumed on 1 rank without an encoder rank: the same MP4 again
lat=(--frames 45 --overlap-mode latent)
"$bin" "${base[@]}" "${lat[@]}" --out "$tmp/one_lat.mp4" 2>>"$tmp/one.log"
if timeout 180 "$mpiexec" -n 3 "$bin" "${base[@]}" "${lat[@]}" --out "$tmp/enc.mp4" --sp 2 --encoder-rank >"$tmp/enc.log" 2>&1 &&
  cmp -s "$tmp/one_lat.mp4" "$tmp/enc.mp4"; then
  ok "3 ranks (sp 2 + encoder rank): MP4 byte-identical to one rank"
else
  tail -5 "$tmp/enc.log"; bad "encoder rank: render failed or MP4 differs"
fi
ck=$tmp/enc2.mp4.ckpt.h5
timeout 180 "$mpiexec" -n 3 bash -c "$(lead_term 7)" _ "$bin" "${base[@]}" "${lat[@]}" --out "$tmp/enc2.mp4" --sp 2 \
  --encoder-rank --checkpoint-every 2 >"$tmp/enc2.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ -f "$ck" ] && [ ! -e "$tmp/enc2.mp4" ] && "$bin" render --resume "$ck" --quiet >>"$tmp/enc2.log" 2>&1 &&
  cmp -s "$tmp/one_lat.mp4" "$tmp/enc2.mp4"; then
  ok "encoder-rank render stopped at row 7 (exit $rc), resumed on 1 rank: MP4 byte-identical"
else
  tail -5 "$tmp/enc2.log"; bad "encoder-rank stop and resume (exit $rc)"
fi
out=$(timeout 60 "$mpiexec" -n 2 "$bin" "${base[@]}" --out "$tmp/bad.h5" --encoder-rank 2>&1)
if grep -q "error: --encoder-rank needs --overlap-mode latent" <<<"$out" && [ ! -e "$tmp/bad.h5" ]; then
  ok "--encoder-rank with pixel overlap refused"
else
  echo "$out" | tail -3; bad "--encoder-rank with pixel overlap not refused"
fi

# bad layouts: refused before any work, one error line naming the flag
out=$(timeout 60 "$mpiexec" -n 2 "$bin" "${base[@]}" --out "$tmp/bad.h5" --tp 3 2>&1)
if grep -q "error: --tp 3: does not divide the model's 2 attention heads" <<<"$out" && [ ! -e "$tmp/bad.h5" ]; then
  ok "--tp 3 refused: $(grep -o 'error: --tp 3[^(]*' <<<"$out" | head -1)"
else
  echo "$out" | tail -3; bad "--tp 3 not refused as expected"
fi
out=$(timeout 60 "$mpiexec" -n 2 "$bin" "${base[@]}" --out "$tmp/bad.h5" --sp 4 2>&1)
if grep -q "error: layout cfg 1 x sp 4 x tp 1 = 4 ranks, but the job has 2" <<<"$out" && [ ! -e "$tmp/bad.h5" ]; then
  ok "--sp 4 on 2 ranks refused"
else
  echo "$out" | tail -3; bad "--sp 4 on 2 ranks not refused as expected"
fi
out=$(timeout 60 "$mpiexec" -n 4 "$bin" "${base[@]}" --resolution 16x16 --frames 1 --out "$tmp/bad.h5" --sp 4 2>&1)
if grep -q "error: sequence parallel degree 4 exceeds the 1 tokens of chunk 0" <<<"$out" && [ ! -e "$tmp/bad.h5" ]; then
  ok "more sequence-parallel ranks than tokens refused: $(grep -o 'sequence parallel degree[^;]*' <<<"$out" | head -1)"
else
  echo "$out" | tail -3; bad "sp 4 on a 16x16 video not refused as expected"
fi

echo "test_render_parallel: $pass passed, $fail failed"
[ $fail -eq 0 ]
