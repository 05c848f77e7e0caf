#!/usr/bin/env bash
# scripts/setup.sh - from a fresh machine to a result (the README's two commands).
#   scripts/setup.sh          install what is missing, build, run the main job on the built-in tiny model
#   scripts/setup.sh --test   the same, then run every test (what CI runs)
# Environment: BUILD_DIR (default build), JOBS (default: all cores), CMAKE_ARGS (extra configure flags).
set -euo pipefail
cd "$(dirname "$0")/.."

run_tests=0
case "${1:-}" in
  --test) run_tests=1 ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
esac

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

echo "== 1/4 dependencies"
scripts/install-deps.sh

echo "== 2/4 build ($BUILD_DIR)"
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"

echo "== 3/4 main job: a short demo film from the built-in tiny model"
demo="$BUILD_DIR/demo"
mkdir -p "$demo"
# No --model: the built-in tiny model (random weights, created on first use in ~/.cache/reelfarm), so the
# film is noise, but every stage runs: text encoder, three diffusion-forcing chunks, VAE, H.264.
"$BUILD_DIR/reelfarm" render --prompt "A lighthouse on a cliff at dawn, waves below" --out "$demo/film.mp4" --overwrite
"$BUILD_DIR/reelfarm" inspect "$demo/film.mp4"

if [[ $run_tests -eq 1 ]]; then
  echo "== 4/4 tests"
  # Open MPI as root on a small machine (see docs/architecture.md, "Running MPI").
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
else
  echo "== 4/4 tests skipped (run scripts/setup.sh --test)"
fi
