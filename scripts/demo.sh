#!/usr/bin/env bash
# Set up (scripts/bootstrap.sh) and run a local cluster with the demo; stops when it is done.
# Extra arguments go to `podium up` (e.g. scripts/demo.sh --shards 4; --keep leaves the cluster
# running afterwards, to look at the demo in the UI at the link it prints).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/podium up --demo "$@"
