#!/usr/bin/env bash
# The local MongoDB-compatible test server: SecantusDB (PyPI, pinned), in .tools/mongo.
#
# Source this file, then:
#   test_db_install              install SecantusDB into .tools/mongo (once; quiet)
#   test_db_start [--auth]       start it on a free port with a fresh temp directory; sets TEST_DB_URI, TEST_DB_PID,
#                                TEST_DB_DIR, TEST_DB_PORT
#   test_db_stop                 stop it (by PID) and remove its directory; callers set `trap ... EXIT` so that
#                                this runs however they exit
# Run directly (`scripts/test-db.sh`) it starts a server, prints its URI and waits until Ctrl-C.

# shellcheck source=scripts/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

SECANTUS_VERSION="0.7.0b3"
TOOLS_DIR="${TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}"
SECANTUS_BIN="$TOOLS_DIR/mongo/bin/secantusd-py"

test_db_install() {
  # No `pip show | grep -q`: grep's early exit would make the pipeline fail under pipefail.
  if [ -x "$SECANTUS_BIN" ] \
    && [ "$("$TOOLS_DIR/mongo/bin/pip" show SecantusDB 2>/dev/null | sed -n 's/^Version: //p')" = "$SECANTUS_VERSION" ]; then
    return 0
  fi
  echo "test-db: installing SecantusDB==$SECANTUS_VERSION into $TOOLS_DIR/mongo" >&2
  python3 -m venv "$TOOLS_DIR/mongo"
  "$TOOLS_DIR/mongo/bin/pip" install -q --disable-pip-version-check "SecantusDB==$SECANTUS_VERSION"
}

test_db_start() {
  test_db_install
  TEST_DB_PORT="$(proc_free_port)"
  TEST_DB_DIR="$(mktemp -d "${TMPDIR:-/tmp}/jtc-test-db.XXXXXX")"
  "$SECANTUS_BIN" --host 127.0.0.1 --port "$TEST_DB_PORT" --storage-path "$TEST_DB_DIR/data" "$@" \
    >"$TEST_DB_DIR/server.log" 2>&1 &
  TEST_DB_PID=$!
  if proc_wait_port "$TEST_DB_PID" "$TEST_DB_PORT"; then
    TEST_DB_URI="mongodb://127.0.0.1:$TEST_DB_PORT/?directConnection=true"
    export TEST_DB_URI TEST_DB_PID TEST_DB_DIR TEST_DB_PORT
    echo "test-db: SecantusDB $SECANTUS_VERSION pid $TEST_DB_PID on port $TEST_DB_PORT" >&2
    return 0
  fi
  echo "test-db: SecantusDB did not start; its log:" >&2
  cat "$TEST_DB_DIR/server.log" >&2
  return 1
}

test_db_stop() {
  proc_stop "${TEST_DB_PID:-}"
  if [ -n "${TEST_DB_DIR:-}" ] && [ -d "$TEST_DB_DIR" ]; then
    rm -rf "$TEST_DB_DIR"
  fi
  TEST_DB_PID=""
  TEST_DB_DIR=""
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  trap test_db_stop EXIT
  trap 'exit 130' INT TERM
  test_db_start "$@"
  echo "$TEST_DB_URI"
  wait "$TEST_DB_PID"
fi
