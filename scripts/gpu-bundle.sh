#!/usr/bin/env bash
# scripts/gpu-bundle.sh - build reelfarm for the GPU machine here, and pack what it needs to run there.
#
# The GPU machine (docs/gpu.md) has CUDA 13, cmake, gcc and PyTorch, but none of the Debian libraries
# reelfarm links (HDF5, Open MPI, OpenBLAS, SentencePiece, cJSON, ZeroMQ) and no network, and at most 64 MiB
# travel to it with the working tree. So reelfarm is built here (nvcc 13 for sm_90, -DWITH_FFMPEG=OFF:
# with FFmpeg it would load 100 more libraries, 144 MiB) and its runtime libraries travel with it:
#
#   build-gpu/          the build: Release, CUDA on (sm_90), no FFmpeg, mpiexec = the bundle's
#   gpu-bundle/lib/     every shared library the binaries, mpirun and its plugins load, except glibc,
#                       libstdc++ and libgcc_s (the machine's are most likely newer) and the CUDA
#                       libraries (the machine's CUDA 13 has them; cuBLASLt alone is 517 MiB)
#   gpu-bundle/mpi/     Open MPI's mpirun (orterun), orted, plugins, help texts and settings, relocated
#   gpu-bundle/env.sh   to source there: library path, the machine's CUDA libraries, Open MPI's paths,
#                       build-gpu's test files pointed at wherever the checkout landed
#   gpu-bundle.tar.gz   build-gpu's programs and test files plus gpu-bundle/, compressed: the one path to
#                       carry (uncompressed they are about 86 MiB; gzip makes 30)
#
# Usage: scripts/gpu-bundle.sh [--jobs N] [--no-build] [--verify]
#   --jobs N     parallel build jobs (default 2)
#   --no-build   pack the existing build-gpu/ again
#   --verify     then check here, as far as a machine without a GPU can: in a private mount namespace
#                where the host's copies of every carried library and Open MPI's folders are hidden,
#                reelfarm --help, a tiny render to .h5, ctest -L cpu and -L gpu, and MPI tests through
#                the bundle's mpiexec
# Fails when nvcc is missing, a library cannot be resolved, or the carried size passes the budget.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-gpu
bundle=$root/gpu-bundle
archive=$root/gpu-bundle.tar.gz
budget=$((64 * 1024 * 1024)) # the device tool's limit on the working tree plus carried paths

# Sonames that are not carried. System: glibc's libraries, the dynamic loader, libstdc++ and libgcc_s.
# CUDA: the runtime, cuBLAS(Lt), NCCL and the driver, from the GPU machine's own CUDA 13.
system_re='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libmvec\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libutil\.so|libanl\.so|libnsl\.so|libstdc\+\+\.so|libgcc_s\.so)'
cuda_re='^(libcuda\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libnccl\.so|libnvidia-|libnvJitLink\.so|libnvrtc)'
# Open MPI plugins for fabrics a one-node run does not use; their libraries (UCX, libfabric, verbs, PSM)
# would add megabytes. Debian's own openmpi-mca-params.conf already excludes most of them.
mpi_skip_re='libucp|libuct|libucs|libucm|libfabric|libibverbs|librdmacm|libpsm|libinfinipath|libefa|libnl-'

jobs=2 do_build=1 do_verify=0
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --verify) do_verify=1; shift ;;
    --masked-checks) shift; masked_checks_mode=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-bundle: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "gpu-bundle: error: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# "soname path" for every library ldd resolves for the given files; dies on "not found".
resolve_libs() {
  local f
  for f in "$@"; do
    ldd "$f" 2>/dev/null | awk -v f="$f" '
      /=> not found/ { print "MISSING " $1 " " f; next }
      /=>/ && $3 ~ /^\// { print $1, $3 }'
  done | sort -u
}

# ---- the checks that run inside the private mount namespace (see --verify) ----
masked_checks() {
  local tmp; tmp=$(mktemp -d /tmp/reelfarm-gpu-verify.XXXXXX)
  local empty_file=$tmp/empty empty_dir=$tmp/emptydir n=0 p
  : >"$empty_file"; mkdir -p "$empty_dir"
  while read -r p; do
    if [ -d "$p" ]; then mount --bind "$empty_dir" "$p"; elif [ -e "$p" ]; then mount --bind "$empty_file" "$p"; fi
    n=$((n + 1))
  done <"$bundle/.masks"
  echo "== hidden here: $n host paths (every carried library's host copy, the FFmpeg libraries, Open MPI's folders)"
  # a clean environment, as on the GPU machine: no PATH beyond /usr/bin:/bin, no library path
  local clean=(env -i PATH=/usr/bin:/bin HOME="$tmp" TMPDIR=/tmp OMP_WAIT_POLICY=passive)
  local out rc
  out=$("${clean[@]}" "$build/reelfarm" --help 2>&1) && die "reelfarm ran without the bundle: the masks hide nothing"
  echo "without the bundle: ${out%%$'\n'*}"
  cd "$root"
  local env_sh=". gpu-bundle/env.sh"
  out=$("${clean[@]}" bash -c "$env_sh && build-gpu/reelfarm --help" 2>&1) || die "reelfarm --help with the bundle failed: $out"
  echo "with the bundle:    $(grep -m1 -i usage <<<"$out")"
  # where every object comes from, as the dynamic loader says
  out=$("${clean[@]}" bash -c "$env_sh && LD_DEBUG=libs build-gpu/reelfarm --help 2>&1 >/dev/null" 2>&1 |
    sed -n 's/.*calling init: //p' | sort -u)
  local from_bundle from_system other
  from_bundle=$(grep -c "^$bundle/lib/" <<<"$out" || true)
  from_system=$(grep -v "^$bundle/lib/" <<<"$out" | grep -cE '/(ld-linux-x86-64|libc|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt|libresolv)\.so' || true)
  other=$(grep -v "^$bundle/lib/" <<<"$out" | grep -vE '/(ld-linux-x86-64|libc|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt|libresolv)\.so' || true)
  echo "LD_DEBUG=libs, reelfarm --help: $from_bundle objects from gpu-bundle/lib, $from_system system (glibc, libstdc++, libgcc_s)"
  [ -z "$other" ] || { echo "$other" | sed 's/^/  elsewhere: /'; grep -qvE '/libcu|/libnccl|/libnvidia' <<<"$other" && die "objects loaded from outside the bundle"; }
  # a tiny render to .h5 (the built-in tiny model is made in $HOME/.cache on first use)
  out=$("${clean[@]}" bash -c "$env_sh && build-gpu/reelfarm render --prompt 'a lighthouse at dawn' --resolution 64x64 \
        --frames 9 --steps 2 --quiet --out $tmp/tiny.h5 && build-gpu/reelfarm inspect $tmp/tiny.h5" 2>&1) ||
    die "tiny render failed: $out"
  echo "tiny render: $(grep -m1 video_uint8 <<<"$out" | tr -s ' ')"
  out=$("${clean[@]}" bash -c "$env_sh && build-gpu/reelfarm render --prompt x --resolution 64x64 --frames 9 --steps 1 \
        --quiet --out $tmp/tiny.mp4" 2>&1) && rc=0 || rc=$?
  [ $rc -eq 1 ] || die "render to .mp4 without FFmpeg: exit $rc, expected 1: $out"
  echo "render to .mp4 (exit $rc): $(tail -n 1 <<<"$out")"
  # the tests: every cpu test, the gpu tests (skipped: no GPU here), and the MPI tests named in
  # REELFARM_VERIFY_MPI through the bundle's mpiexec
  local mpi_re=${REELFARM_VERIFY_MPI:-test_mpi_abort|test_dit_parallel|test_ckpt_parallel}
  local status=0
  "${clean[@]}" bash -c "$env_sh && ctest --test-dir build-gpu -L cpu -j1 --output-on-failure" || status=1
  "${clean[@]}" bash -c "$env_sh && ctest --test-dir build-gpu -L gpu -j1 --output-on-failure" || status=1
  "${clean[@]}" bash -c "$env_sh && ctest --test-dir build-gpu -L mpi -R '$mpi_re' -j1 --output-on-failure" || status=1
  rm -rf "$tmp"
  [ $status -eq 0 ] || die "some tests failed with only the bundle on the library path"
  echo "== verify: passed"
}
if [ "${masked_checks_mode:-0}" = 1 ]; then masked_checks; exit; fi

# ---- 1. Open MPI, relocated into gpu-bundle/mpi (first: build-gpu's tests run its mpiexec) ----
command -v ompi_info >/dev/null || die "ompi_info not found: install Open MPI (scripts/install-deps.sh)"
ompi_path() { ompi_info --path "$1" | awk '{print $2}'; }
mpi_bindir=$(ompi_path bindir) mpi_pkglibdir=$(ompi_path pkglibdir) mpi_pkgdatadir=$(ompi_path pkgdatadir)
mpi_sysconfdir=$(ompi_path sysconfdir)
orterun=$(readlink -f "$(command -v mpirun)")
[ "$(basename "$orterun")" = orterun ] || die "mpirun is $orterun, expected Open MPI 4's orterun"
rm -rf "$bundle"
mkdir -p "$bundle/lib" "$bundle/mpi/bin" "$bundle/mpi/lib/openmpi3" "$bundle/mpi/share" "$bundle/mpi/etc"
cp "$orterun" "$bundle/mpi/bin/orterun"
cp "$mpi_bindir/orted" "$bundle/mpi/bin/orted"
cp -r "$mpi_pkgdatadir" "$bundle/mpi/share/openmpi"
cp "$mpi_sysconfdir"/openmpi-mca-params.conf "$mpi_sysconfdir"/openmpi-default-hostfile "$bundle/mpi/etc/"
pmix_prefix=$(dirname "$(dirname "$(readlink -f "$(ldconfig -p | awk '$1 == "libpmix.so.2" {print $NF; exit}')")")")
[ -d "$pmix_prefix/share/pmix" ] && cp -r "$pmix_prefix/share/pmix" "$bundle/mpi/share/pmix"
mpi_plugins=() mpi_skipped=()
for f in "$mpi_pkglibdir"/*.so; do
  if ldd "$f" | grep -E "$mpi_skip_re" >/dev/null; then mpi_skipped+=("$(basename "$f" .so)"); continue; fi
  cp "$f" "$bundle/mpi/lib/openmpi3/"
  mpi_plugins+=("$bundle/mpi/lib/openmpi3/$(basename "$f")")
done
# mpiexec/mpirun: the bundle's orterun with the bundle's settings, whether env.sh was sourced or not
cat >"$bundle/mpi/bin/mpiexec" <<'EOF'
#!/bin/sh
# gpu-bundle/mpi/bin/mpiexec - Open MPI's mpirun (orterun) from this bundle, with gpu-bundle/env.sh's
# settings (written by scripts/gpu-bundle.sh).
REELFARM_GPU_BUNDLE=$(cd "$(dirname "$0")/../.." && pwd)
REELFARM_GPU_BUNDLE_QUIET=1
. "$REELFARM_GPU_BUNDLE/env.sh"
exec "$REELFARM_GPU_BUNDLE/mpi/bin/orterun" "$@"
EOF
chmod +x "$bundle/mpi/bin/mpiexec"
ln -s mpiexec "$bundle/mpi/bin/mpirun"

# ---- 2. configure and build ----
if [ $do_build = 1 ]; then
  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || die "nvcc not found: the GPU build needs CUDA 13"
  echo "== configure $build (Release, CUDA sm_90, -DWITH_FFMPEG=OFF)"
  log=$(cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DWITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DWITH_FFMPEG=OFF -DMPIEXEC_EXECUTABLE="$bundle/mpi/bin/mpiexec" 2>&1) || { echo "$log"; die "configure failed"; }
  grep -q "reelfarm: CUDA backend ON" <<<"$log" || { echo "$log"; die "configure did not turn the CUDA backend on"; }
  grep "reelfarm:" <<<"$log"
  echo "== build ($jobs jobs)"
  blog=$build/gpu-bundle-build.log
  if ! OMP_WAIT_POLICY=passive cmake --build "$build" -j "$jobs" >"$blog" 2>&1; then
    tail -n 40 "$blog" >&2
    die "build failed (log: $blog)"
  fi
  echo "built; warning lines: $(grep -ci warning "$blog" || true) (log: $blog)"
fi
[ -x "$build/reelfarm" ] || die "$build/reelfarm missing: build first (without --no-build)"

# ---- 3. the runtime closure ----
# the programs: reelfarm and every build-gpu program the CTest files name (not stale ones of older builds)
programs=()
while IFS= read -r f; do [ -x "$f" ] && is_elf "$f" && programs+=("$f"); done < <(
  { echo "$build/reelfarm"; find "$build" -name CTestTestfile.cmake -not -path '*/CMakeFiles/*' \
      -exec grep -oh "$build/[A-Za-z0-9_./+-]*" {} +; } | sort -u)
elves=("${programs[@]}" "$bundle/mpi/bin/orterun" "$bundle/mpi/bin/orted" "${mpi_plugins[@]}")
libs=$(resolve_libs "${elves[@]}")
missing=$(grep '^MISSING' <<<"$libs" || true)
[ -z "$missing" ] || { echo "$missing" >&2; die "libraries not found here"; }
cuda_libs=$(awk '{print $1}' <<<"$libs" | { grep -E "$cuda_re" || true; } | sort -u | tr '\n' ' ')
cuda_libs=${cuda_libs% }
: >"$bundle/.masks"
while read -r soname path; do
  [[ $soname =~ $system_re || $soname =~ $cuda_re ]] && continue
  [ -e "$bundle/lib/$soname" ] || cp -L "$path" "$bundle/lib/$soname"
  readlink -f "$path" >>"$bundle/.masks"
done <<<"$libs"
# what the --verify run hides besides: the FFmpeg libraries (not linked at all) and Open MPI's folders
for l in libavcodec libavformat libavutil libswscale libswresample; do
  ldconfig -p | awk -v l="$l" 'index($1, l ".so") == 1 {print $NF}' | xargs -r readlink -f >>"$bundle/.masks"
done
printf '%s\n' "$mpi_pkglibdir" "$mpi_pkgdatadir" "$mpi_sysconfdir" "$pmix_prefix" "$orterun" "$mpi_bindir/orted" \
  >>"$bundle/.masks"
sort -u -o "$bundle/.masks" "$bundle/.masks"

# every dependency of every carried object must now resolve inside the bundle, to the system set, or to CUDA
audit=$(LD_LIBRARY_PATH=$bundle/lib resolve_libs "${elves[@]}" "$bundle"/lib/*)
declare -A in_bundle=() in_system=() in_cuda=()
bad=
while read -r soname path; do
  if [[ $path == "$bundle/lib/"* ]]; then in_bundle[$soname]=1
  elif [[ $soname =~ $system_re ]]; then in_system[$soname]=1
  elif [[ $soname =~ $cuda_re ]]; then in_cuda[$soname]=1
  else bad+="$soname => $path"$'\n'; fi
done < <(grep -v '^MISSING' <<<"$audit" | sort -u)
n_in=${#in_bundle[@]} n_sys=${#in_system[@]} n_cuda=${#in_cuda[@]}
[ -z "$bad" ] || { printf '%s' "$bad" >&2; die "these resolve outside the bundle"; }
grep -q '^MISSING' <<<"$audit" && { grep '^MISSING' <<<"$audit" >&2; die "unresolved with the bundle alone"; }
echo "== ldd with LD_LIBRARY_PATH=gpu-bundle/lib: ${#elves[@]} programs and plugins + $(ls "$bundle/lib" | wc -l) libraries;" \
  "every dependency resolves in gpu-bundle/lib ($n_in distinct), to the system set ($n_sys: glibc, libstdc++," \
  "libgcc_s) or to CUDA ($n_cuda, from the GPU machine: $cuda_libs)"

# newest symbol versions the carried code needs from the machine's glibc and libstdc++
need_glibc=$(for f in "${elves[@]}" "$bundle"/lib/*; do objdump -T "$f" 2>/dev/null; done | grep -o 'GLIBC_2\.[0-9.]*' | sort -uV | tail -1)
need_glibcxx=$(for f in "${elves[@]}" "$bundle"/lib/*; do objdump -T "$f" 2>/dev/null; done | grep -o 'GLIBCXX_3\.[0-9.]*' | sort -uV | tail -1)

# ---- 4. env.sh ----
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit+changes"
sed -e "s|@BUILT_AT@|$root|g" -e "s|@CUDA_LIBS@|$cuda_libs|g" -e "s|@GLIBC@|${need_glibc#GLIBC_}|g" \
    -e "s|@GLIBCXX@|${need_glibcxx#GLIBCXX_}|g" -e "s|@STAMP@|$(date -u +%Y-%m-%dT%H:%MZ), $commit|g" >"$bundle/env.sh" <<'EOF'
# gpu-bundle/env.sh - written by scripts/gpu-bundle.sh (@STAMP@). On the GPU machine, from the repository
# root (bash):   source gpu-bundle/env.sh && ctest --test-dir build-gpu -L gpu
# Sets the library path (this bundle's libraries, then the machine's CUDA libraries, wherever its CUDA 13
# keeps them), Open MPI's paths (its relocated copy in gpu-bundle/mpi), and points build-gpu's test files at
# this checkout if it is not where it was built. Only this shell is changed: run PyTorch in another one (or
# before sourcing) so that it keeps its own libraries. REELFARM_GPU_BUNDLE_QUIET=1: no report lines.
if [ -n "${BASH_SOURCE:-}" ]; then _rf_b=$(cd "$(dirname "${BASH_SOURCE:-}")" && pwd)
elif [ -n "${REELFARM_GPU_BUNDLE:-}" ]; then _rf_b=$REELFARM_GPU_BUNDLE
else _rf_b=$PWD/gpu-bundle; fi
export REELFARM_GPU_BUNDLE="$_rf_b"
_rf_root=$(cd "$_rf_b/.." && pwd)
_rf_say() { [ -n "${REELFARM_GPU_BUNDLE_QUIET:-}" ] || echo "gpu-bundle: $*" >&2; }
_rf_ldc=$(command -v ldconfig || echo /sbin/ldconfig)

# CUDA libraries (not carried): the toolkit's folders, the loader's cache, then pip's nvidia wheels
_rf_dirs='' _rf_report=''
for _rf_lib in @CUDA_LIBS@ libcuda.so.1; do
  _rf_at=
  for _rf_d in ${CUDA_HOME:+$CUDA_HOME/lib64} /usr/local/cuda/lib64 /usr/local/cuda/lib \
      /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    if [ -e "$_rf_d/$_rf_lib" ]; then _rf_at=$_rf_d; break; fi
  done
  if [ -z "$_rf_at" ] && "$_rf_ldc" -p 2>/dev/null | grep "^[[:space:]]*$_rf_lib " >/dev/null; then _rf_at=ldconfig; fi
  if [ -z "$_rf_at" ] && command -v python3 >/dev/null; then
    _rf_at=$(python3 -c 'import glob, os, sys
for p in sys.path:
    for f in glob.glob(os.path.join(p, "nvidia", "**", sys.argv[1]), recursive=True):
        print(os.path.dirname(f)); sys.exit(0)' "$_rf_lib" 2>/dev/null)
  fi
  case $_rf_at in
    "") _rf_report="$_rf_report $_rf_lib:NOT-FOUND" ;;
    ldconfig) _rf_report="$_rf_report $_rf_lib:system" ;;
    *) _rf_report="$_rf_report $_rf_lib:$_rf_at"
       case ":$_rf_dirs:" in *":$_rf_at:"*) ;; *) _rf_dirs=${_rf_dirs:+$_rf_dirs:}$_rf_at ;; esac ;;
  esac
done
case ":${LD_LIBRARY_PATH:-}:" in
  *":$_rf_b/lib:"*) ;;
  *) export LD_LIBRARY_PATH="$_rf_b/lib${_rf_dirs:+:$_rf_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
case ":$PATH:" in *":$_rf_b/mpi/bin:"*) ;; *) export PATH="$_rf_b/mpi/bin:$PATH" ;; esac

# Open MPI 4 (orterun) and PMIx, relocated; the machine runs commands as root
export OPAL_PREFIX="$_rf_b/mpi" OPAL_EXEC_PREFIX="$_rf_b/mpi" OPAL_BINDIR="$_rf_b/mpi/bin" \
  OPAL_LIBDIR="$_rf_b/lib" OPAL_PKGLIBDIR="$_rf_b/mpi/lib/openmpi3" OPAL_DATAROOTDIR="$_rf_b/mpi/share" \
  OPAL_DATADIR="$_rf_b/mpi/share" OPAL_PKGDATADIR="$_rf_b/mpi/share/openmpi" OPAL_SYSCONFDIR="$_rf_b/mpi/etc"
export PMIX_PREFIX="$_rf_b/mpi" PMIX_PKGDATADIR="$_rf_b/mpi/share/pmix"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# build-gpu's CTest files name absolute paths (sources, programs, the bundle's mpiexec): move them along
# with the checkout (from where they point now, recorded in build-gpu/.checkout_root, to here)
if [ -f "$_rf_root/build-gpu/CTestTestfile.cmake" ]; then
  _rf_was=$(cat "$_rf_root/build-gpu/.checkout_root" 2>/dev/null || echo "@BUILT_AT@")
  if [ "$_rf_was" != "$_rf_root" ]; then
    find "$_rf_root/build-gpu" -name CTestTestfile.cmake -exec sed -i "s|$_rf_was|$_rf_root|g" {} + &&
      echo "$_rf_root" >"$_rf_root/build-gpu/.checkout_root" &&
      _rf_say "build-gpu's test files now point at $_rf_root (were $_rf_was)"
  fi
fi

# the machine's glibc and libstdc++ must be at least as new as what the carried code was linked against
_rf_v=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
if [ -n "$_rf_v" ] && [ "$(printf '%s\n%s\n' "@GLIBC@" "$_rf_v" | sort -V | head -n 1)" != "@GLIBC@" ]; then
  _rf_say "WARNING: glibc $_rf_v here; the bundle needs @GLIBC@ or newer"
fi
_rf_cxx=$("$_rf_ldc" -p 2>/dev/null | awk '$1 == "libstdc++.so.6" {print $NF; exit}')
if [ -n "$_rf_cxx" ] && ! grep -q "GLIBCXX_@GLIBCXX@" "$_rf_cxx" 2>/dev/null; then
  _rf_say "WARNING: $_rf_cxx lacks GLIBCXX_@GLIBCXX@, which the bundle needs"
fi
case $_rf_report in
  *libcuda.so.1:NOT-FOUND*) _rf_say "WARNING: no NVIDIA driver library (libcuda.so.1) found: the gpu tests will skip" ;;
esac
case ${_rf_report%% libcuda.so.1:*} in
  *NOT-FOUND*) _rf_say "WARNING: CUDA libraries not found: reelfarm will not start:$_rf_report" ;;
esac
_rf_say "libraries from $_rf_b/lib; CUDA:$_rf_report; mpiexec: $_rf_b/mpi/bin/mpiexec"
unset _rf_b _rf_root _rf_dirs _rf_report _rf_lib _rf_at _rf_d _rf_was _rf_v _rf_cxx _rf_ldc
EOF
echo "$root" >"$build/.checkout_root"

# ---- 5. manifest, sizes, the archive ----
{
  echo "# gpu-bundle/MANIFEST - scripts/gpu-bundle.sh, $(date -u +%Y-%m-%dT%H:%MZ), commit $commit"
  echo "# needs on the GPU machine: glibc >= ${need_glibc#GLIBC_}, libstdc++ with ${need_glibcxx}, CUDA libraries: $cuda_libs"
  echo "# libraries (soname, bytes, Debian package):"
  for f in "$bundle"/lib/*; do
    src=$(awk -v s="$(basename "$f")" '$1 == s {print $2; exit}' <<<"$libs")
    pkg=
    for p in "$src" "$(readlink -f "$src")" "${src#/usr}" "$(readlink -f "$src" | sed 's|^/usr||')"; do
      pkg=$(dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1) && break
    done
    printf '%-34s %10d  %s\n' "$(basename "$f")" "$(stat -c %s "$f")" "${pkg:-?}"
  done
  echo "# Open MPI plugins carried: ${#mpi_plugins[@]}; left out (fabrics): ${mpi_skipped[*]}"
} >"$bundle/MANIFEST"

list=$(mktemp)
trap 'rm -f "$list"' EXIT
{
  (cd "$root" && find build-gpu -name CTestTestfile.cmake -not -path '*/CMakeFiles/*')
  echo build-gpu/.checkout_root
  for f in "${programs[@]}"; do echo "${f#"$root"/}"; done
  echo gpu-bundle
} >"$list"
tar -C "$root" --exclude=gpu-bundle/.masks -czf "$archive" -T "$list"

lib_bytes=$(du -sb "$bundle/lib" | cut -f1)
mpi_bytes=$(du -sb "$bundle/mpi" | cut -f1)
prog_bytes=$(awk '{s += $1} END {print s + 0}' < <(stat -c %s "${programs[@]}"))
archive_bytes=$(stat -c %s "$archive")
tree_bytes=$(cd "$root" && git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null |
  awk '{s += $1} END {print s + 0}')
[ -d "$root/shared" ] && tree_bytes=$((tree_bytes + $(du -sb "$root/shared" | cut -f1)))
total=$((archive_bytes + tree_bytes))
echo "== gpu-bundle/lib: $(ls "$bundle/lib" | wc -l) libraries, $(mib "$lib_bytes"); gpu-bundle/mpi: $(mib "$mpi_bytes")" \
  "(${#mpi_plugins[@]} plugins, ${#mpi_skipped[@]} fabric plugins left out); build-gpu programs: ${#programs[@]}, $(mib "$prog_bytes")"
echo "== carry gpu-bundle.tar.gz: $(mib "$archive_bytes"); with the working tree ($(mib "$tree_bytes")):" \
  "$(mib "$total") of the $(mib "$budget") budget"
[ "$total" -le "$budget" ] || die "over the carry budget by $(mib $((total - budget)))"
echo "== on the GPU machine (device run, carry [\"gpu-bundle.tar.gz\"]):"
echo "   tar xzf gpu-bundle.tar.gz && (source gpu-bundle/env.sh && ctest --test-dir build-gpu -L gpu --output-on-failure)"
echo "   (source gpu-bundle/env.sh && build-gpu/reelfarm bench --backend cuda --model-size 1.3b --resolution 540p --frames 5)"

if [ $do_verify = 1 ]; then
  [ "$(id -u)" = 0 ] || die "--verify needs root (it bind-mounts over the host's libraries in a private namespace)"
  echo "== verify (a private mount namespace; nothing outside it changes)"
  unshare --mount --propagation private "$0" --masked-checks
fi
