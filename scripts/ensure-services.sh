#!/usr/bin/env bash
# Make sure the servers the tests need answer before they run (used by `make test` and .ci/run):
#   Redis       127.0.0.1:6379
#   PostgreSQL  127.0.0.1:5432, user postgres, trust auth, database `test`
# and the browser the inspector's tests drive: Debian's Chromium at /usr/bin/chromium.
# Installs them with apt-get when missing, starts them when stopped (the commands of
# ../shared/DESIGN.md), then waits until both answer. Fails (exit 1) if they never do.
set -euo pipefail

REDIS_PORT="${REDIS_PORT:-6379}"
PG_PORT="${PG_PORT:-5432}"
WAIT_SECONDS="${WAIT_SECONDS:-60}"

say() { echo "ensure-services: $*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        say "need root to run: $*" >&2
        return 1
    fi
}

redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }
pg_test_db_up() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; }
pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

wait_for() {  # wait_for <what> <check command...>
    local what="$1"
    shift
    local waited=0
    until "$@"; do
        if [ "$waited" -ge "$WAIT_SECONDS" ]; then
            say "$what does not answer after ${WAIT_SECONDS}s" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# -- install what is missing ----------------------------------------------------------------
packages=()
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || packages+=(redis-server)
fresh_postgres=0
if [ -z "$(pg_version)" ] || ! command -v pg_isready >/dev/null 2>&1; then
    packages+=(postgresql)
    fresh_postgres=1
fi
[ -x /usr/bin/chromium ] || packages+=(chromium)  # the inspector's browser tests
if [ "${#packages[@]}" -gt 0 ]; then
    say "installing ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# -- Redis ----------------------------------------------------------------------------------
if ! redis_up; then
    say "starting redis on 127.0.0.1:$REDIS_PORT"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

# -- PostgreSQL -----------------------------------------------------------------------------
if ! pg_up; then
    say "starting postgresql $(pg_version)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start || true
fi

wait_for redis redis_up
wait_for postgresql pg_up

if ! pg_test_db_up; then
    if [ "$fresh_postgres" -eq 1 ]; then
        # A fresh install asks for passwords over TCP: trust loopback, as the tests expect.
        hba="/etc/postgresql/$(pg_version)/main/pg_hba.conf"
        say "trusting loopback connections in $hba"
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main reload
        sleep 1
    fi
    if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc \
        "select 1 from pg_database where datname = 'test'" 2>/dev/null | grep -q 1; then
        say "creating database test"
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc 'CREATE DATABASE test' || true
    fi
fi
wait_for "postgresql database test" pg_test_db_up
say "redis and postgresql are up"
