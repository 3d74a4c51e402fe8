#!/usr/bin/env bash
# Stops a server that tests/pg/start.sh started in DIR (fast shutdown) and removes DIR.
set -euo pipefail
dir=${1:?usage: stop.sh DIR}
[[ -d $dir ]] || exit 0
bindir=""
if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/pg_ctl" ]]; then
  bindir=$(pg_config --bindir)
else
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
as=()
[[ $(id -u) -eq 0 ]] && as=(runuser -u nobody --)
cd "$dir" # the server's user may not be allowed into the caller's directory
if [[ -f $dir/data/postmaster.pid ]]; then
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
fi
rm -rf "$dir"
