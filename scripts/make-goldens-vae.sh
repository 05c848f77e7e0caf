#!/usr/bin/env bash
# scripts/make-goldens-vae.sh - regenerate tests/golden/vae_<case>.h5 with the independent Wan 2.1 VAE
# reference (tests/reference/wan_vae_ref.py; see tests/reference/README-vae.md).
#
# Each golden file holds the input of one encode or decode case (`video` or `latents`, copied in), the
# reference's output (computed in float64 from the spec, not from reelfarm's code, by the upstream-style
# chunked path), for some cases every module's output (`probe.<diffusers module name>`), and attributes naming
# the tiny model it belongs to (model_args: the make-tiny-model flags) with a fingerprint of that model's VAE
# weights (model_weight_sum/_sumsq/_count). The tiny model is written by reelfarm's make-tiny-model (its
# values depend only on the seed), so the test regenerates it instead of committing it.
# Needs: a built reelfarm (REELFARM_BIN, default build/reelfarm) whose make-tiny-model writes vae/ (Diffusers
# AutoencoderKLWan naming), and /usr/bin/python3 with torch, numpy and h5py.
#
# Environment (for testing this script before reelfarm writes a VAE; such goldens do NOT belong to
# reelfarm's tiny model and are marked model_args="(MODEL_DIR override)"):
#   MODEL_DIR=DIR        use DIR (with DIR/vae) for the float32-stored cases instead of make-tiny-model
#   MODEL_DIR_BF16=DIR   the same for the bf16-stored case (skipped when MODEL_DIR is set without it)
#   GOLDEN_OUT=DIR       where to write (default tests/golden)
#   SKIP_SELFTEST=1      do not run the reference's selftest first
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
REF=tests/reference/wan_vae_ref.py
BIN=${REELFARM_BIN:-build/reelfarm}
OUT=${GOLDEN_OUT:-tests/golden}
MODEL_ARGS="--seed 7"
MODEL_ARGS_BF16="--seed 7 --dtype bf16"
if [ -z "${MODEL_DIR:-}" ]; then
  [ -x "$BIN" ] || { echo "make-goldens-vae: build reelfarm first (or set REELFARM_BIN)" >&2; exit 1; }
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$OUT"

if [ "${SKIP_SELFTEST:-0}" != 1 ]; then
  "$PY" "$REF" selftest >"$tmp/selftest.log" 2>&1 || {
    cat "$tmp/selftest.log" >&2
    echo "make-goldens-vae: the reference's selftest failed; no goldens written" >&2
    exit 1
  }
fi

# model_for FLAGS -> prints the model directory for those make-tiny-model flags (created once)
model_for() {
  local flags=$1 dir
  if [ -n "${MODEL_DIR:-}" ]; then
    if [ "$flags" = "$MODEL_ARGS_BF16" ]; then
      [ -n "${MODEL_DIR_BF16:-}" ] || return 1
      dir=$MODEL_DIR_BF16
    else
      dir=$MODEL_DIR
    fi
  else
    dir="$tmp/model_$(tr -c 'a-z0-9' _ <<<"$flags")"
    if [ ! -d "$dir" ]; then
      # shellcheck disable=SC2086
      "$BIN" make-tiny-model "$dir" $flags --no-example >/dev/null
    fi
  fi
  [ -f "$dir/vae/config.json" ] || {
    echo "make-goldens-vae: $dir has no vae/config.json (make-tiny-model does not write the VAE yet?)" >&2
    exit 1
  }
  printf '%s\n' "$dir"
}

# name | operation | make-tiny-model flags | make-input flags | extra flags
# Sizes keep each file at a few hundred KB for a base_dim 8 tiny VAE: the probe cases are spatially small
# (probes of the full-resolution decoder stages dominate), the larger shapes are separate cases without probes.
cases=(
  "decode_f1|decode|$MODEL_ARGS|--frames 1 --height 2 --width 3 --seed 1|"
  "decode_f3|decode|$MODEL_ARGS|--frames 3 --height 4 --width 6 --seed 2|"
  "decode_f3_probes|decode|$MODEL_ARGS|--frames 3 --height 2 --width 2 --seed 3|--probes"
  "decode_f5|decode|$MODEL_ARGS|--frames 5 --height 2 --width 4 --seed 4|"
  "encode_t1|encode|$MODEL_ARGS|--frames 1 --height 16 --width 24 --seed 5|"
  "encode_t9|encode|$MODEL_ARGS|--frames 9 --height 32 --width 48 --seed 6|"
  "encode_t9_probes|encode|$MODEL_ARGS|--frames 9 --height 16 --width 16 --seed 7|--probes"
  "encode_t11|encode|$MODEL_ARGS|--frames 11 --height 16 --width 16 --seed 8|"
  "decode_bf16|decode|$MODEL_ARGS_BF16|--frames 3 --height 2 --width 3 --seed 9|"
)

for c in "${cases[@]}"; do
  IFS='|' read -r name op mflags iflags eflags <<<"$c"
  if ! model=$(model_for "$mflags"); then
    echo "make-goldens-vae: skipping $name (MODEL_DIR set without MODEL_DIR_BF16)" >&2
    continue
  fi
  margs=$mflags
  [ -n "${MODEL_DIR:-}" ] && margs="(MODEL_DIR override)"
  kind=latents
  [ "$op" = encode ] && kind=video
  # shellcheck disable=SC2086
  "$PY" "$REF" make-input --kind "$kind" --model "$model" --out "$tmp/$name.in.h5" $iflags >/dev/null
  read -r wsum wsumsq wcount < <("$PY" "$REF" fingerprint --model "$model")
  rm -f "$OUT/vae_$name.h5"
  # shellcheck disable=SC2086
  "$PY" "$REF" "$op" --model "$model" --in "$tmp/$name.in.h5" --out "$OUT/vae_$name.h5" --copy-inputs $eflags \
    --attr "case=$name" --attr "model_args=$margs" --attr "model_weight_sum=$wsum" \
    --attr "model_weight_sumsq=$wsumsq" --attr "model_weight_count=$wcount" >/dev/null
  echo "make-goldens-vae: $OUT/vae_$name.h5 ($(du -k "$OUT/vae_$name.h5" | cut -f1) KiB)"
done
