#!/usr/bin/env bash
# Prints `DATABASE_URL=...` for a PostgreSQL the tests can use, in this order: $DATABASE_URL if set
# and reachable, the local server on 127.0.0.1:5432, or a throwaway cluster (initdb + pg_ctl) in
# $CARGO_TARGET_DIR/pg on a free port, which stays up for later runs.
set -euo pipefail

reachable() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

if [[ -n "${DATABASE_URL:-}" ]]; then
    if reachable "$DATABASE_URL"; then echo "DATABASE_URL=$DATABASE_URL"; exit 0; fi
    echo "DATABASE_URL is set but unreachable: $DATABASE_URL" >&2
    exit 1
fi

# SIPBRIDGE_PG_THROWAWAY=1 skips the local server (to exercise the throwaway path).
if [[ -z "${SIPBRIDGE_PG_THROWAWAY:-}" ]]; then
    for url in "postgres://postgres@127.0.0.1:5432/postgres" "postgres://$(id -un)@127.0.0.1:5432/postgres"; do
        if reachable "$url"; then echo "DATABASE_URL=$url"; exit 0; fi
    done
fi

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [[ -z "$bin" ]]; then
    echo "no PostgreSQL server binaries found: install the postgresql package" >&2
    exit 1
fi
root="${CARGO_TARGET_DIR:-$HOME/.cache/sipbridge-target}/pg"
data="$root/data"
port_file="$root/port"
mkdir -p "$root"
if [[ -f "$port_file" ]]; then
    port="$(cat "$port_file")"
    url="postgres://postgres@127.0.0.1:$port/postgres"
    if reachable "$url"; then echo "DATABASE_URL=$url"; exit 0; fi
fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
run_as=()
if [[ "$(id -u)" == "0" ]]; then
    # initdb refuses to run as root; the cluster belongs to the postgres system user.
    chown -R postgres "$root"
    run_as=(runuser -u postgres --)
fi
if [[ ! -f "$data/PG_VERSION" ]]; then
    "${run_as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
fi
"${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$root/log" -w -o "-p $port -k $root -c listen_addresses=127.0.0.1" start >/dev/null
echo "$port" > "$port_file"
echo "DATABASE_URL=postgres://postgres@127.0.0.1:$port/postgres"
