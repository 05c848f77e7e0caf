#!/usr/bin/env bash
# scripts/make-goldens-text.sh - regenerate tests/golden/text_<case>.h5 with the independent text-encoder
# reference (tests/reference/umt5_ref.py; see tests/reference/README-text.md).
#
# Each golden file holds the token ids, the attention mask and the encoder output (`context`, computed in
# float64 from the spec, not from reelfarm's code) of one prompt, the prompt itself (attribute `prompt`,
# exactly as given, before cleaning) and attributes naming the tiny model it belongs to (model_args: the
# make-tiny-model flags) with a fingerprint of that model's text-encoder weights (text_weight_sum/_sumsq/
# _count) and the SHA-256 of its tokenizer/spiece.model. The tiny model is written by reelfarm's
# make-tiny-model (its values depend only on the seed), so the test regenerates it instead of committing it.
# Needs: a built reelfarm (REELFARM_BIN, default build/reelfarm) whose make-tiny-model writes text_encoder/
# and tokenizer/, and /usr/bin/python3 with torch, numpy, h5py and sentencepiece.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
REF=tests/reference/umt5_ref.py
BIN=${REELFARM_BIN:-build/reelfarm}
OUT=tests/golden
MODEL_ARGS="--seed 7"
[ -x "$BIN" ] || { echo "make-goldens-text: build reelfarm first (or set REELFARM_BIN)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$OUT"

"$PY" "$REF" selftest >"$tmp/selftest.log" 2>&1 || {
  cat "$tmp/selftest.log" >&2
  echo "make-goldens-text: the reference's selftest failed; no goldens written" >&2
  exit 1
}

model="$tmp/model"
# shellcheck disable=SC2086
"$BIN" make-tiny-model "$model" $MODEL_ARGS --no-example >/dev/null
for d in text_encoder tokenizer; do
  [ -d "$model/$d" ] || {
    echo "make-goldens-text: $BIN make-tiny-model wrote no $d/ (text encoder not supported yet?)" >&2
    exit 1
  }
done
read -r wsum wsumsq wcount < <("$PY" "$REF" fingerprint --model "$model")
spiece_sha=$(sha256sum "$model/tokenizer/spiece.model" | cut -d' ' -f1)

# Prompts go through files (bytes written verbatim, no trailing newline) so that neither the locale nor
# argument decoding can touch them.
p() { printf '%s' "$2" >"$tmp/$1.txt"; }
p ascii 'A slow cinematic shot of a red car driving through a rainy city at night.'
p cjk '一只猫在城市的街道上奔跑，电影镜头'
p emoji 'sunset over the ocean 🌅 waves 🌊, golden light ✨'
# two leading spaces, a tab, two newlines, HTML entities (one double-escaped), U+3000 (bytes e3 80 80),
# a trailing space
printf '  tabs\tand\n\nnewlines   &amp;amp; &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; \xe3\x80\x80 ideographic space ' \
  >"$tmp/whitespace_html.txt"
p long 'An extremely detailed, slow, sweeping cinematic drone shot that begins high above a fog-covered
pine forest at dawn, descends gently through the mist toward a winding mountain river, follows the water
past moss-covered boulders, a wooden footbridge and a small stone mill with a turning waterwheel, then
rises again to reveal a medieval village on the hillside where villagers in colourful wool clothing open
their shutters, a baker carries fresh bread across the cobbled square, children chase a red kite between
the market stalls, a black-and-white dog barks at a flock of geese, smoke curls from dozens of chimneys
into the pale pink sky, church bells ring in the distance, and the warm golden light of the rising sun
slowly spreads over the rooftops, the orchards and the snow-capped peaks beyond, photorealistic, 35 mm
film grain, shallow depth of field, natural colours, gentle camera movement, high dynamic range, 8K.'
p empty ''
"$PY" "$REF" default-negative-prompt >"$tmp/negative_default.txt"
"$PY" "$REF" default-negative-prompt --english >"$tmp/negative_default_en.txt"

# case name | extra encode flags
cases=(
  "ascii|"
  "cjk|"
  "emoji|"
  "whitespace_html|"
  "long|"
  "empty|"
  "negative_default|--negative-prompt-file $tmp/negative_default_en.txt"
)

for c in "${cases[@]}"; do
  IFS='|' read -r name eflags <<<"$c"
  rm -f "$OUT/text_$name.h5"
  # shellcheck disable=SC2086
  "$PY" "$REF" encode --model "$model" --prompt-file "$tmp/$name.txt" --out "$OUT/text_$name.h5" $eflags \
    --attr "case=$name" --attr "model_args=$MODEL_ARGS" --attr "text_weight_sum=$wsum" \
    --attr "text_weight_sumsq=$wsumsq" --attr "text_weight_count=$wcount" \
    --attr "tokenizer_sha256=$spiece_sha"
  echo "make-goldens-text: $OUT/text_$name.h5"
done

# the long case must actually exercise truncation
trunc=$("$PY" -c 'import h5py, sys; print(int(h5py.File(sys.argv[1], "r").attrs["truncated"]))' "$OUT/text_long.h5")
[ "$trunc" = 1 ] || { echo "make-goldens-text: text_long.h5 was not truncated; lengthen its prompt" >&2; exit 1; }
