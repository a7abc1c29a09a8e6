#!/usr/bin/env bash
# Downloads the wheels that launch/study_gpu.sh installs on a stock JAX GPU image (the pins of
# launch/gpu_wheels.txt, for CPython 3.12 on x86-64 Linux) into WHEELS (default .whl, git-ignored,
# emptied first so that it holds one version of each), on a machine where pip can reach the package
# index; bring that folder to the GPU machine with the repository. A pin published only as source is
# built into a wheel here, which must then be pure Python.
#   bash launch/gpu_wheels.sh          # PYTHON (default python3) runs pip
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
wheels="${WHEELS:-.whl}"
platforms=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64
  manylinux2014_x86_64 manylinux1_x86_64)
mkdir -p "$wheels"
rm -f "$wheels"/*.whl
grep -v '^\s*\(#\|$\)' launch/gpu_wheels.txt | while read -r pin; do
  if ! "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]/#/--platform=}" -d "$wheels" "$pin" 2>/dev/null; then
    built="$(mktemp -d)"
    "$python" -m pip wheel -q --no-deps --no-binary=:all: -w "$built" "$pin"
    if ! compgen -G "$built/*-none-any.whl" >/dev/null; then
      echo "error: $pin has no wheel for CPython 3.12 on x86-64 Linux and is not pure Python." >&2
      exit 1
    fi
    mv "$built"/*.whl "$wheels"/ && rmdir "$built"
  fi
done
echo "$(ls "$wheels"/*.whl | wc -l) wheels, $(du -sh "$wheels" | cut -f1), in $wheels"
