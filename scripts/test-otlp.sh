#!/usr/bin/env bash
# The OTLP receiver for the trace tests (tests/traces): PyPI's oteltap (an embeddable OTLP/HTTP protobuf receiver
# that prints every span it decodes as one JSON line), pinned, into .tools/otlp (installed like the test database).
# Each test starts and stops its own receiver, by PID (jtc_test_support::otlp).
#
# Source this file, then:
#   test_otlp_install   install it (once; quiet); sets and exports OTLP_RECEIVER_PYTHON (the venv's python, which
#                       runs `python -m oteltap --port PORT`)

OTLP_TOOLS_DIR="${TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}/otlp"
OTELTAP_VERSION="1.0.0"

test_otlp_install() {
  OTLP_RECEIVER_PYTHON="$OTLP_TOOLS_DIR/bin/python"
  export OTLP_RECEIVER_PYTHON
  if [ -x "$OTLP_RECEIVER_PYTHON" ] \
    && [ "$("$OTLP_TOOLS_DIR/bin/pip" show oteltap 2>/dev/null | sed -n 's/^Version: //p')" = "$OTELTAP_VERSION" ]; then
    return 0
  fi
  echo "test-otlp: installing oteltap==$OTELTAP_VERSION into $OTLP_TOOLS_DIR" >&2
  python3 -m venv "$OTLP_TOOLS_DIR"
  "$OTLP_TOOLS_DIR/bin/pip" install -q --disable-pip-version-check "oteltap==$OTELTAP_VERSION"
}
