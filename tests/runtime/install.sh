#!/bin/bash
# Tier 4 prerequisites (idempotent): containerd 1.6 + runc from Debian, busybox-static for the
# local pause image, Debian's reference CNI plugins, iproute2; the CRI v1 gRPC stubs into the
# project venv. Usage: tests/runtime/install.sh [VENV]   (default: <repo>/.venv)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${1:-$REPO/.venv}
PKGS="containerd runc busybox-static containernetworking-plugins iproute2"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "apt-get install:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends $missing
  # the package enables a system containerd; tests start their own and do not need it
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now containerd >/dev/null 2>&1 || true
  fi
fi
REQ="container-runtime-interface-api>=2.0.1,<3"
"$VENV/bin/python" -c "import cri_api.v1.api_pb2_grpc, grpc" 2>/dev/null || \
  "$VENV/bin/pip" install -q --disable-pip-version-check "$REQ"
"$VENV/bin/python" -c "import cri_api.v1.api_pb2_grpc, grpc; print('cri_api ok')" >&2
