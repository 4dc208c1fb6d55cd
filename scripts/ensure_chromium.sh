#!/usr/bin/env bash
# Browser tests use Debian's Chromium (never a downloaded browser build). Install it when we can.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: no chromium and no root apt-get here; browser tests will be skipped (apt-get install chromium)"
fi
