#!/usr/bin/env bash
# Third-party Data API servers for tests/api/third_party.rs, from a package registry, pinned, into .tools/data-api
# (installed like the test database). The test starts and stops each one itself, by PID.
#   npm: mongodb-local-data-api, run by Node.js (Debian's nodejs and npm are installed when missing and running as
#   root; otherwise one line names them).
#
# Source this file, then:
#   test_data_api_install   install them (once; quiet); sets and exports THIRD_PARTY_DATA_API (the npm package's
#                           directory; its bin.js is the server) and NODE_BIN

DATA_API_TOOLS_DIR="${TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}/data-api"
DATA_API_NPM_PACKAGE="mongodb-local-data-api"
DATA_API_NPM_VERSION="1.0.1"

test_data_api_install() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "test-data-api: installing Debian's nodejs and npm" >&2
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } || true
    fi
  fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "test-data-api: Node.js is not installed: apt-get install nodejs npm (as root), for the third-party Data API test" >&2
    return 1
  fi
  NODE_BIN="$(command -v node)"
  THIRD_PARTY_DATA_API="$DATA_API_TOOLS_DIR/node_modules/$DATA_API_NPM_PACKAGE"
  export NODE_BIN THIRD_PARTY_DATA_API
  local installed=""
  if [ -f "$THIRD_PARTY_DATA_API/package.json" ]; then
    installed="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$THIRD_PARTY_DATA_API/package.json" | head -n 1)"
  fi
  if [ "$installed" = "$DATA_API_NPM_VERSION" ]; then
    return 0
  fi
  echo "test-data-api: installing $DATA_API_NPM_PACKAGE@$DATA_API_NPM_VERSION (npm) into $DATA_API_TOOLS_DIR" >&2
  mkdir -p "$DATA_API_TOOLS_DIR"
  npm install --prefix "$DATA_API_TOOLS_DIR" --no-audit --no-fund --silent "$DATA_API_NPM_PACKAGE@$DATA_API_NPM_VERSION" >&2
}
