#!/usr/bin/env bash
# Build the mt5-strategy image without any package index inside the build:
# the mt5-gate wheel and its dependencies' wheels are prepared on the host in wheels/
# (matching the base image's Python), then the Dockerfile installs them with --no-index.
# The extra [rpyc] (--bridge mt5linux) brings the rpyc and plumbum wheels (pure Python).
#
# Usage: scripts/build_image.sh [TAG]        (default tag: localhost/mt5-strategy:local)
# Env:   BASE_IMAGE (default localhost/mt5-base:bookworm, see scripts/setup_containers.sh)
#        ENGINE     (podman or docker; default podman)
#        PYTHON     (host Python with pip; default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-localhost/mt5-strategy:local}
BASE_IMAGE=${BASE_IMAGE:-localhost/mt5-base:bookworm}
ENGINE=${ENGINE:-podman}
PYTHON=${PYTHON:-python3}
arch=$(uname -m)

pyver=$("$ENGINE" run --rm --entrypoint python3 "$BASE_IMAGE" \
          -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
echo "[build_image] base $BASE_IMAGE has Python $pyver" >&2

find wheels -name '*.whl' -delete
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps -w wheels .
"$PYTHON" -m pip download --quiet --disable-pip-version-check -d wheels \
    --only-binary=:all: --python-version "$pyver" --implementation cp \
    --platform "manylinux_2_28_$arch" --platform "manylinux2014_$arch" \
    --platform "manylinux_2_17_$arch" "$(echo wheels/mt5_gate-*.whl)[rpyc]"
format=()
[ "$ENGINE" = podman ] && format=(--format docker)  # OCI format would drop HEALTHCHECK
"$ENGINE" build --quiet "${format[@]}" --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$TAG" . >/dev/null
echo "[build_image] built $TAG" >&2
