#!/usr/bin/env bash
# The local Redis for the auth API's rate-limit tests: Debian's redis-server, started like the test database.
#
# Source this file, then:
#   test_redis_start    start redis-server on a free loopback port, no persistence, in a fresh temp directory;
#                       sets TEST_REDIS_URL, TEST_REDIS_PID, TEST_REDIS_DIR
#   test_redis_stop     stop it (by PID) and remove its directory; callers set `trap ... EXIT`
# redis-server must be installed (`apt-get install redis-server`; .ci/run does it).

test_redis_start() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "test-redis: redis-server is not installed (apt-get install redis-server), or set REDIS_TEST_URL" >&2
    return 1
  fi
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
  TEST_REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/jtc-test-redis.XXXXXX")"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$TEST_REDIS_DIR" \
    >"$TEST_REDIS_DIR/server.log" 2>&1 &
  TEST_REDIS_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      TEST_REDIS_URL="redis://127.0.0.1:$port/0"
      export TEST_REDIS_URL TEST_REDIS_PID TEST_REDIS_DIR
      echo "test-redis: $(redis-server --version | cut -d' ' -f1-3) pid $TEST_REDIS_PID on port $port" >&2
      return 0
    fi
    if ! kill -0 "$TEST_REDIS_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "test-redis: redis-server did not start; its log:" >&2
  cat "$TEST_REDIS_DIR/server.log" >&2
  return 1
}

test_redis_stop() {
  if [ -n "${TEST_REDIS_PID:-}" ] && kill -0 "$TEST_REDIS_PID" 2>/dev/null; then
    kill -TERM "$TEST_REDIS_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$TEST_REDIS_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$TEST_REDIS_PID" 2>/dev/null || true
    wait "$TEST_REDIS_PID" 2>/dev/null || true
  fi
  if [ -n "${TEST_REDIS_DIR:-}" ] && [ -d "$TEST_REDIS_DIR" ]; then
    rm -rf "$TEST_REDIS_DIR"
  fi
  TEST_REDIS_PID=""
  TEST_REDIS_DIR=""
}
