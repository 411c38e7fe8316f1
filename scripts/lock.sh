#!/usr/bin/env bash
# Upgrade every lock to the newest versions its ranges allow, show what changed, and run every
# check against the new versions:
#   uv.lock                               Podium and its dev tools (ranges in pyproject.toml)
#   benchmarks/peers/requirements/*.txt   the benchmark peers' venvs (ranges in *.in)
#   scripts/uv-requirements.txt           uv itself
# Commit the changed files only when the checks pass. Extra arguments go to scripts/test.sh.
#   scripts/lock.sh              upgrade everything
#   scripts/lock.sh --no-upgrade re-lock after editing pyproject.toml, keeping other versions
set -euo pipefail
cd "$(dirname "$0")/.."

upgrade=(--upgrade)
if [ "${1:-}" = "--no-upgrade" ]; then upgrade=(); shift; fi

scripts/bootstrap.sh  # uv itself, at its locked version
UV=.cache/uv/bin/uv
export UV_PYTHON_DOWNLOADS=never
peers=benchmarks/peers/requirements
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
cp uv.lock scripts/uv-requirements.txt "$before"/
mkdir -p "$before/peers" && cp "$peers"/*.txt "$before/peers"/

"$UV" lock "${upgrade[@]}" --python "${PYTHON:-python3}"
for source in "$peers"/*.in; do
  "$UV" pip compile "$source" "${upgrade[@]}" --universal --python-version 3.11 \
    --generate-hashes --quiet --custom-compile-command scripts/lock.sh -o "${source%.in}.txt"
done
header=$(sed -n '/^# /p' scripts/uv-requirements.txt)
echo uv | "$UV" pip compile - "${upgrade[@]}" --generate-hashes --no-header --quiet -o /dev/stdout \
  | { printf '%s\n' "$header"; cat; } > "$before/uv-requirements.new"
mv "$before/uv-requirements.new" scripts/uv-requirements.txt

.cache/uv/bin/python scripts/lock_diff.py "$before" .
scripts/test.sh "$@"
