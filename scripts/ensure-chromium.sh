#!/bin/sh
# Make sure a Chromium for the TypeScript client's browser tests is installed:
# Debian's `chromium` package at /usr/bin/chromium (or $CHROMIUM). As root with
# apt-get (CI), install it when missing; otherwise say what is missing and fail.
# Never downloads a browser from anywhere else (no `npx playwright install`).
set -eu
BIN="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$BIN" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $BIN is missing; installing Debian's chromium with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >/dev/null
    if [ -x "$BIN" ]; then
        exit 0
    fi
    echo "ensure-chromium: apt-get install chromium finished but $BIN is still missing" >&2
    exit 1
fi
cat >&2 <<MSG
ensure-chromium: $BIN is missing, and it cannot be installed from here
(this needs root and apt-get). The TypeScript browser tests need it:
    sudo apt-get install chromium        # Debian / Ubuntu
or point CHROMIUM at an installed Chromium/Chrome binary:
    make test CHROMIUM=/path/to/chromium
MSG
exit 1
