#!/usr/bin/env bash
# scripts/install-deps.sh - install reelfarm's build and runtime dependencies from Debian's packages.
# Idempotent: packages already present are not downloaded again (a second run installs nothing).
# Usage: scripts/install-deps.sh [--with-reference]
#   --with-reference  also the Python reference tools (python3-torch, numpy, h5py, sentencepiece) used to
#                     regenerate golden files and for the PyTorch side of benchmarks; not needed
#                     to build or test.
# CUDA is not installed here: it is picked up from /usr/local/cuda when present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
  libzmq3-dev
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev ffmpeg
  libcjson-dev libjansson-dev
  libopenblas-dev
  libsentencepiece-dev sentencepiece
  slurm-wlm munge
  gnuplot-nox
)
if [[ "${1:-}" == "--with-reference" ]]; then
  packages+=(python3-torch python3-numpy python3-h5py python3-sentencepiece)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
