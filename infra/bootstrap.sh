#!/usr/bin/env bash
# Installs whatever is missing (Python venv, Debian servers, Cassandra) and then runs one action.
# Idempotent: a second run installs nothing and goes straight to the action.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_venv() {
  local extras=$1 stamp="$VENV/.installed-$1"
  if [ ! -x "$PY" ]; then
    say "creating virtualenv in .venv"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing Python packages ($extras)"
    "$PY" -m pip install -q -e ".[$extras]"
    touch "$stamp"
  fi
}

ensure_system_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  { command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ]; } || missing+=(mariadb-server)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  ./infra/local/install-cassandra.sh
}

action=${1:-run}; shift || true
case "$action" in
  run)
    ensure_venv "loadtest"
    exec "$VENV/bin/emporium" demo "$@"
    ;;
  test)
    ensure_system_packages
    ensure_venv "dev,loadtest,analytics"
    say "running the test suite (the local cluster stack is started by the tests)"
    exec "$VENV/bin/pytest" "$@"
    ;;
  lint)
    ensure_venv "dev,loadtest,analytics"
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/mypy" emporium ingest search inventory read_models analytics infra loadtest
    ;;
  bench)
    ensure_system_packages
    ensure_venv "dev,loadtest,analytics"
    exec "$VENV/bin/python" -m loadtest.bench "$@"
    ;;
  *) echo "usage: $0 run|test|lint|bench" >&2; exit 2 ;;
esac
