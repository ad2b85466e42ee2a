#!/usr/bin/env bash
# The local Redis for the auth API's rate-limit tests: Debian's redis-server, started like the test database.
#
# Source this file, then:
#   test_redis_start    start redis-server on a free loopback port, no persistence, in a fresh temp directory;
#                       sets TEST_REDIS_URL, TEST_REDIS_PID, TEST_REDIS_DIR
#   test_redis_stop     stop it (by PID) and remove its directory; callers set `trap ... EXIT`
# redis-server must be installed (`apt-get install redis-server`; .ci/run does it).

# shellcheck source=scripts/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

test_redis_start() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "test-redis: redis-server is not installed (apt-get install redis-server), or set REDIS_TEST_URL" >&2
    return 1
  fi
  local port
  port="$(proc_free_port)"
  TEST_REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/jtc-test-redis.XXXXXX")"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$TEST_REDIS_DIR" \
    >"$TEST_REDIS_DIR/server.log" 2>&1 &
  TEST_REDIS_PID=$!
  if proc_wait_port "$TEST_REDIS_PID" "$port"; then
    TEST_REDIS_URL="redis://127.0.0.1:$port/0"
    export TEST_REDIS_URL TEST_REDIS_PID TEST_REDIS_DIR
    echo "test-redis: $(redis-server --version | cut -d' ' -f1-3) pid $TEST_REDIS_PID on port $port" >&2
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
