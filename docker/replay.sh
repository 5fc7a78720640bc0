#!/usr/bin/env bash
# Runs docker-compose.yaml's kiln services as local processes against the local PostgreSQL
# and Redis (there is no Docker engine here), then checks health and clean shutdown.
# See docker/replay.py for what is replayed. Usage: docker/replay.sh [path/to/kiln]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then export KILN_BIN="$1"; fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  python3 -m pip install --quiet pyyaml
fi
exec python3 docker/replay.py
