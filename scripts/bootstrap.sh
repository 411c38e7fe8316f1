#!/usr/bin/env bash
# Install what Podium needs on a fresh Debian/Ubuntu machine: redis-server, a JDK and Maven
# (Debian's packages), uv (pinned by hash, scripts/uv-requirements.txt) and, in .venv, exactly
# the versions in uv.lock: Podium and its development tools. Idempotent.
#
#   scripts/bootstrap.sh               what the cluster and the demo need
#   scripts/bootstrap.sh --browser     also Debian's Chromium, for the UI tests
#   scripts/bootstrap.sh --broker      also Debian's RabbitMQ, for AMQP events (docs/events.md)
#   scripts/bootstrap.sh --test-tools  Chromium, RabbitMQ and kustomize (KUSTOMIZE_VERSION, built
#                                      from the Go module proxy into .cache/tools) for the tests
set -euo pipefail
cd "$(dirname "$0")/.."

browser=0
broker=0
kustomize=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --broker) broker=1 ;;
    --test-tools) browser=1; broker=1; kustomize=1 ;;
    *) echo "bootstrap: unknown argument $arg" >&2; exit 2 ;;
  esac
done

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ "$browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
if [ "$broker" = 1 ] && [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  need_apt+=(rabbitmq-server)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} from Debian's packages" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The Debian package starts a system redis on 6379; Podium starts its own servers.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl stop redis-server || true
fi
# Likewise a system RabbitMQ: tests start brokers of their own (podium/launch/rabbitmq.py).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null
then
  systemctl stop rabbitmq-server || true
fi

PY=${PYTHON:-python3}
# uv, at the version and hashes of scripts/uv-requirements.txt, in a venv of its own.
UV=.cache/uv/bin/uv
uv_stamp=.cache/uv/.installed
if [ ! -x "$UV" ] || [ ! -f "$uv_stamp" ] || [ scripts/uv-requirements.txt -nt "$uv_stamp" ]; then
  rm -rf .cache/uv
  "$PY" -m venv .cache/uv
  .cache/uv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
    --require-hashes -r scripts/uv-requirements.txt
  touch "$uv_stamp"
fi

# .venv holds exactly what uv.lock lists (and nothing else): --frozen never re-resolves, so a
# new release on PyPI changes nothing here until scripts/lock.sh is run and its result committed.
export UV_PYTHON_DOWNLOADS=never
"$UV" sync --frozen --extra dev --python "$PY" --quiet

# kustomize builds the Kubernetes overlays in tests/test_deploy.py. `go install` at a fixed
# version checks every module against the Go checksum database.
KUSTOMIZE_VERSION=v5.7.1
if [ "$kustomize" = 1 ] && [ ! -x .cache/tools/kustomize-$KUSTOMIZE_VERSION/kustomize ]; then
  if command -v go >/dev/null 2>&1; then
    echo "bootstrap: building kustomize $KUSTOMIZE_VERSION (Go module proxy)" >&2
    GOBIN="$PWD/.cache/tools/kustomize-$KUSTOMIZE_VERSION" GOFLAGS=-mod=mod \
      go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  else
    echo "bootstrap: no Go toolchain; the kustomize builds in tests/test_deploy.py are skipped" >&2
  fi
fi
