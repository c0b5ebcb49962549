#!/usr/bin/env bash
# Builds the real Go goomerang v0.3.0 peer (refserver, refclient) for `make interop`,
# once: skipped when DIR/bin holds both binaries built from the same sources.
#
#   scripts/goref.sh [DIR]    DIR defaults to .goref (git-ignored); prints DIR/bin on success
#
# The sources and the build script live in the shared tools folder beside the
# repository (GOREF_SRC, default ../shared/tools/goref). The build needs Debian's Go
# packages: as root, the shared build.sh apt-installs what is missing; as another
# user this script names the missing packages and fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$ROOT/.goref}
SRC=${GOREF_SRC:-$ROOT/../shared/tools/goref}
PKGS="golang-go golang-github-gorilla-websocket-dev golang-google-protobuf-dev
  golang-github-prometheus-client-golang-dev golang-github-google-uuid-dev
  golang-github-hashicorp-go-multierror-dev golang-github-sirupsen-logrus-dev"

fail() { echo "goref: $*" >&2; exit 1; }

[ -f "$SRC/build.sh" ] || fail "no $SRC/build.sh: set GOREF_SRC to the shared tools/goref folder"
# The stamp names the sources the binaries were built from: a change rebuilds them.
sources=$(cd "$SRC" && cat build.sh goomerang-v0.3.0.tar.gz src/*/*.go | sha256sum | cut -d' ' -f1)
if [ -x "$DIR/bin/refserver" ] && [ -x "$DIR/bin/refclient" ] \
  && [ "$(cat "$DIR/bin/.sources" 2>/dev/null)" = "$sources" ]; then
  echo "goref: up to date in $DIR/bin" >&2
  echo "$DIR/bin"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  command -v dpkg >/dev/null || fail "needs Debian's Go packages (no dpkg here): $PKGS"
  missing=$(for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  [ -z "$missing" ] || fail "not root, and these Debian packages are missing: " \
    "$(echo $missing); install them (apt-get install $(echo $missing)) or run as root"
fi
echo "goref: building refserver and refclient into $DIR/bin (about 1 min)" >&2
bash "$SRC/build.sh" "$DIR" >&2 || fail "the build failed (see above)"
echo "$sources" >"$DIR/bin/.sources"
echo "$DIR/bin"
