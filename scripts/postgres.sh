#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests.
#
#   eval "$(bash scripts/postgres.sh start)"   # sets DATABASE_URL and NETVIZ_PG_DIR
#   bash scripts/postgres.sh stop "$NETVIZ_PG_DIR"
#
# `start` makes a cluster in a new temporary directory, owned by an
# unprivileged user when run as root (initdb refuses to run as root), starts
# it on a free 127.0.0.1 port (and a unix socket in that directory), creates
# the database `netviz` and prints two `export` lines.  Messages go to stderr.
# It exits non-zero, saying why, when PostgreSQL's server binaries are missing
# and cannot be installed.
set -eu
cd "$(dirname "$0")/.."

say() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local dir
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    # Debian keeps the server binaries out of PATH, one directory per version.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

start() {
    local bin
    if ! bin=$(find_bin); then
        if [ "$(id -u)" -eq 0 ]; then
            say "PostgreSQL server binaries not found; installing the Debian package postgresql"
            bash scripts/system-packages.sh postgresql >&2 || true
        fi
        bin=$(find_bin) || { say "no pg_ctl/initdb (install the Debian package postgresql)"; exit 1; }
    fi
    local user=""
    if [ "$(id -u)" -eq 0 ]; then
        if id postgres >/dev/null 2>&1; then
            user=postgres
        else
            id netviz-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin netviz-pg
            user=netviz-pg
        fi
    fi
    as_user() {
        if [ -n "$user" ]; then runuser -u "$user" -- "$@"; else "$@"; fi
    }
    local dir port
    dir=$(mktemp -d "${TMPDIR:-/tmp}/netviz-pg.XXXXXX")
    chmod 700 "$dir"
    [ -n "$user" ] && chown "$user" "$dir"
    port=$(free_port)
    as_user "$bin/initdb" -D "$dir/data" -U netviz -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
        say "initdb failed:"; cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
    # Durability is pointless for a test database: fsync off makes it fast.
    as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { say "the server did not start:"; cat "$dir/server.log" >&2; rm -rf "$dir"; exit 1; }
    if [ -x "$bin/createdb" ]; then
        "$bin/createdb" -h 127.0.0.1 -p "$port" -U netviz netviz
    elif command -v createdb >/dev/null 2>&1; then
        createdb -h 127.0.0.1 -p "$port" -U netviz netviz
    else
        as_user "$bin/psql" -h 127.0.0.1 -p "$port" -U netviz -d postgres -c "CREATE DATABASE netviz" >/dev/null
    fi
    say "PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir"
    echo "export NETVIZ_PG_DIR=$dir"
    echo "export DATABASE_URL=postgres://netviz@127.0.0.1:$port/netviz"
}

stop() {
    local dir=${1:-${NETVIZ_PG_DIR:-}}
    if [ -z "$dir" ] || [ ! -d "$dir/data" ]; then
        say "nothing to stop (${dir:-no directory given})"
        return 0
    fi
    local bin owner
    bin=$(find_bin) || { say "pg_ctl not found; leaving $dir"; exit 1; }
    owner=$(stat -c %U "$dir/data")
    if [ "$(id -u)" -eq 0 ] && [ "$owner" != root ]; then
        runuser -u "$owner" -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    else
        "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    say "stopped and removed $dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
