#!/bin/sh
# Make sure the compiled engine can be built (make compiled: mypyc, setup.py): a C compiler
# (cc, or $CC) and the headers of the Python that runs the build (Python.h in its include
# folder). As root with apt-get (CI), install Debian's gcc and python3-dev when missing;
# otherwise say what is missing and fail. `pip install .` (pure Python) needs neither.
set -eu
PY="${1:-python3}"
CC_BIN="${CC:-cc}"
headers() {
    inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    [ -f "$inc/Python.h" ]
}
missing() {
    m=""
    command -v "$CC_BIN" >/dev/null 2>&1 || m="$m a C compiler ($CC_BIN)"
    headers || m="$m the Python headers (Python.h for $("$PY" -c 'import sys; print(sys.executable)'))"
    echo "$m"
}
what=$(missing)
[ -z "$what" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-cc: missing:$what; installing Debian's gcc and python3-dev with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq gcc python3-dev >/dev/null
    what=$(missing)
    [ -z "$what" ] && exit 0
    echo "ensure-cc: after apt-get install gcc python3-dev still missing:$what" >&2
    exit 1
fi
cat >&2 <<MSG
ensure-cc: missing:$what, and it cannot be installed from here (this needs root and
apt-get). The compiled engine (make compiled, make unit-compiled) needs them:
    sudo apt-get install gcc python3-dev     # Debian; for another Python, its own headers
The pure-Python package (pip install ., make unit) needs neither.
MSG
exit 1
