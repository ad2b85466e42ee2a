#!/usr/bin/env bash
# Headless Chromium and chromedriver for auth-api's browser test (tests/auth/browser.rs), set up the way the
# Pushgateway is: Debian's `chromium` and `chromium-driver` when installed, else installed with apt-get when running
# as root, else one line naming the packages. The test starts chromedriver itself, by PID, and ends its session.
#
# Source this file, then:
#   test_chromium_install   sets and exports CHROMIUM and CHROMEDRIVER

test_chromium_install() {
  CHROMIUM="$(command -v chromium || true)"
  CHROMEDRIVER="$(command -v chromedriver || true)"
  if { [ -z "$CHROMIUM" ] || [ -z "$CHROMEDRIVER" ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-chromium: installing Debian's chromium and chromium-driver" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || true
    CHROMIUM="$(command -v chromium || true)"
    CHROMEDRIVER="$(command -v chromedriver || true)"
  fi
  if [ -z "$CHROMIUM" ] || [ -z "$CHROMEDRIVER" ]; then
    echo "test-chromium: chromium and chromedriver are not installed: apt-get install chromium chromium-driver (as root), for auth-api's browser test" >&2
    return 1
  fi
  export CHROMIUM CHROMEDRIVER
}
