#!/usr/bin/env bash
# The local Prometheus Pushgateway for the alerting tests: Debian's prometheus-pushgateway, started like the test
# database. It ships on no registry the project uses but Debian's, so:
#   the one on PATH (or /usr/bin), else `apt-get install prometheus-pushgateway` when running as root, else one
#   line naming the package.
#
# Source this file, then:
#   test_pushgateway_start   start it on a free loopback port, no persistence, in a fresh temp directory; sets
#                            TEST_PUSHGATEWAY_URL, TEST_PUSHGATEWAY_PID, TEST_PUSHGATEWAY_DIR
#   test_pushgateway_stop    stop it (by PID) and remove its directory; callers set `trap ... EXIT`

# shellcheck source=scripts/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

test_pushgateway_install() {
  PUSHGATEWAY_BIN="$(command -v prometheus-pushgateway || true)"
  if [ -z "$PUSHGATEWAY_BIN" ] && [ -x /usr/bin/prometheus-pushgateway ]; then
    PUSHGATEWAY_BIN=/usr/bin/prometheus-pushgateway
  fi
  if [ -z "$PUSHGATEWAY_BIN" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-pushgateway: installing Debian's prometheus-pushgateway" >&2
    # The package's service must not start on its own: only this script starts it, by PID. An existing policy
    # is left as it is.
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-pushgateway >/dev/null; } || true
    if [ -n "$policy" ]; then rm -f "$policy"; fi
    PUSHGATEWAY_BIN="$(command -v prometheus-pushgateway || true)"
  fi
  if [ -z "$PUSHGATEWAY_BIN" ]; then
    echo "test-pushgateway: prometheus-pushgateway is not installed: apt-get install prometheus-pushgateway (as root), or set PUSHGATEWAY_TEST_URL" >&2
    return 1
  fi
}

test_pushgateway_start() {
  test_pushgateway_install || return 1
  local port
  port="$(proc_free_port)"
  TEST_PUSHGATEWAY_DIR="$(mktemp -d "${TMPDIR:-/tmp}/jtc-test-pushgateway.XXXXXX")"
  "$PUSHGATEWAY_BIN" --web.listen-address="127.0.0.1:$port" >"$TEST_PUSHGATEWAY_DIR/server.log" 2>&1 &
  TEST_PUSHGATEWAY_PID=$!
  if proc_wait_port "$TEST_PUSHGATEWAY_PID" "$port"; then
    TEST_PUSHGATEWAY_URL="http://127.0.0.1:$port"
    export TEST_PUSHGATEWAY_URL TEST_PUSHGATEWAY_PID TEST_PUSHGATEWAY_DIR
    echo "test-pushgateway: $("$PUSHGATEWAY_BIN" --version 2>&1 | head -n 1) pid $TEST_PUSHGATEWAY_PID on port $port" >&2
    return 0
  fi
  echo "test-pushgateway: prometheus-pushgateway did not start; its log:" >&2
  cat "$TEST_PUSHGATEWAY_DIR/server.log" >&2
  return 1
}

test_pushgateway_stop() {
  proc_stop "${TEST_PUSHGATEWAY_PID:-}" 50
  if [ -n "${TEST_PUSHGATEWAY_DIR:-}" ] && [ -d "$TEST_PUSHGATEWAY_DIR" ]; then
    rm -rf "$TEST_PUSHGATEWAY_DIR"
  fi
  TEST_PUSHGATEWAY_PID=""
  TEST_PUSHGATEWAY_DIR=""
}
