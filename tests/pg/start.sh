#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server for the tests and prints its connection URI.
#
#   uri=$(tests/pg/start.sh DIR)   # DIR: a new or empty directory (e.g. from mktemp -d)
#   tests/pg/stop.sh DIR           # stops it and removes DIR
#
# The server listens on a Unix socket in DIR only (listen_addresses=''), so the port is just the
# socket's name and servers of several test runs never collide; trust authentication, user
# postgres, database postgres. PostgreSQL refuses to run as root: as root (CI, containers) the
# server runs as the unprivileged user `nobody`, which owns DIR; otherwise as the caller.
# fsync stays on: the tests kill hubs, not the server, and the group commit's durability is
# what they exercise.
set -euo pipefail
dir=${1:?usage: start.sh DIR}
port=5432

bindir=""
if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; then
  bindir=$(pg_config --bindir)
else
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [[ -z $bindir || ! -x $bindir/initdb ]]; then
  echo "start.sh: no PostgreSQL server found (apt-get install postgresql)" >&2
  exit 1
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cd "$dir" # the server's user may not be allowed into the caller's directory
as=()
if [[ $(id -u) -eq 0 ]]; then
  chown nobody "$dir"
  chmod 700 "$dir"
  as=(runuser -u nobody --)
fi

"${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-k $dir -c listen_addresses='' -p $port -c max_connections=50 -c shared_buffers=16MB" start >/dev/null ||
  { cat "$dir/server.log" >&2; exit 1; }
echo "postgresql:///postgres?host=$dir&port=$port&user=postgres"
