#!/usr/bin/env bash
# For the test suite only (the demo does not need a browser): Debian's chromium, which the web
# UI's browser tests (tests/test_web_ui.py) drive through Playwright; without it they are skipped.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium from Debian's packages (the web UI's browser tests use it)" >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
  else
    echo "warning: /usr/bin/chromium not found: the web UI's browser tests will be skipped;" \
      "install chromium (e.g. sudo apt-get install chromium)" >&2
  fi
fi

