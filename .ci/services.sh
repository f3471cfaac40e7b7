#!/usr/bin/env bash
# Throwaway PostgreSQL 15 and Redis on loopback, for tests, CI and benchmarks. No system
# service, nothing outside DIR: initdb into DIR/pg, random free ports, trust auth on
# 127.0.0.1 only. The database user owns its database and has CREATEDB, which
# pytest-django needs for its test_<name> database.
#
#   eval "$(.ci/services.sh start DIR)"   # prints `export DATABASE_URL=… FLIGHTREC_QUEUE_URL=…`
#   .ci/services.sh stop DIR
#
# PG_FSYNC=off (what CI uses) trades crash safety of the *database server* for speed;
# the data is thrown away afterwards. Killing flightrec's own processes (the durability
# test) does not depend on it. Benchmarks run with the default, fsync on.
set -euo pipefail

cmd=${1:?usage: services.sh start|stop DIR}
dir=${2:?usage: services.sh start|stop DIR}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_FSYNC=${PG_FSYNC:-on}
DB_NAME=flightrec
DB_USER=flightrec

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# PostgreSQL refuses to run as root: run its binaries as an unprivileged account.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

pick_os_user() {
  PG_OS_USER=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    if getent passwd postgres >/dev/null; then
      PG_OS_USER=postgres
    else
      getent passwd flightrec-ci >/dev/null ||
        useradd --system --no-create-home --shell /usr/sbin/nologin flightrec-ci
      PG_OS_USER=flightrec-ci
    fi
  fi
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  pick_os_user
  mkdir -p "$dir/pg"
  if [ "$(id -u)" -eq 0 ]; then
    chown "$PG_OS_USER" "$dir/pg"
    chmod o+x "$dir" # the account must reach DIR/pg, e.g. under a mktemp -d directory
  fi
  local pg_port redis_port
  pg_port=$(free_port)
  redis_port=$(free_port)

  as_pg "$PGBIN/initdb" -D "$dir/pg/data" -U "$DB_USER" --auth=trust -E UTF8 \
    --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$dir/pg/data" -l "$dir/pg/postgres.log" \
    -o "-h 127.0.0.1 -p $pg_port -k $dir/pg -c fsync=$PG_FSYNC -c max_connections=200 \
        -c shared_buffers=256MB" >/dev/null ||
    { cat "$dir/pg/postgres.log" >&2; exit 1; }
  as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$pg_port" -U "$DB_USER" "$DB_NAME"

  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for _ in $(seq 50); do
    [ -s "$dir/redis.pid" ] && break
    sleep 0.1
  done

  cat >"$dir/env" <<EOF
export DATABASE_URL=postgres://$DB_USER@127.0.0.1:$pg_port/$DB_NAME
export FLIGHTREC_QUEUE_URL=redis://127.0.0.1:$redis_port/0
EOF
  echo "$PG_OS_USER" >"$dir/pg_os_user"
  cat "$dir/env"
}

stop() {
  [ -d "$dir" ] || return 0
  if [ -f "$dir/pg_os_user" ]; then
    PG_OS_USER=$(cat "$dir/pg_os_user")
    [ -f "$dir/pg/data/postmaster.pid" ] &&
      as_pg "$PGBIN/pg_ctl" stop -D "$dir/pg/data" -m fast >/dev/null || true
  fi
  if [ -s "$dir/redis.pid" ]; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -f "$dir/redis.pid"
  fi
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) echo "usage: services.sh start|stop DIR" >&2; exit 2 ;;
esac
