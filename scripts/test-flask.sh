#!/usr/bin/env bash
# The reference Flask-JWT-Extended service for auth-api's interoperability test (PyPI, pinned), in .tools/flask,
# installed like the test database.
#
# Source this file, then:
#   test_flask_install   install Flask, Flask-JWT-Extended and pymongo into .tools/flask (once; quiet); sets and
#                        exports FLASK_PYTHON

FLASK_TOOLS_DIR="${TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}"
FLASK_PACKAGES=("Flask==3.1.2" "Flask-JWT-Extended==4.7.1" "pymongo==4.15.3")

test_flask_install() {
  local venv="$FLASK_TOOLS_DIR/flask"
  FLASK_PYTHON="$venv/bin/python"
  export FLASK_PYTHON
  if [ -x "$FLASK_PYTHON" ] && "$FLASK_PYTHON" -c 'import flask_jwt_extended, pymongo' 2>/dev/null \
    && [ "$("$venv/bin/pip" show Flask-JWT-Extended 2>/dev/null | sed -n 's/^Version: //p')" = "4.7.1" ]; then
    return 0
  fi
  echo "test-flask: installing ${FLASK_PACKAGES[*]} into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${FLASK_PACKAGES[@]}"
}
