#!/usr/bin/env bash
# Installs Debian's Chromium for the end-to-end browser tests, if it is not there yet.
# Playwright drives this system browser (no browser download of its own).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here; install Chromium yourself (browser tests are skipped without it)" >&2
  exit 0
fi
echo "install_browser: installing Debian's chromium (once)…" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
