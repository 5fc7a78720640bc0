#!/usr/bin/env bash
# Starts any of the local services kiln's tests use (PostgreSQL, Redis, MariaDB) that are
# down, then fails loudly if one still cannot be reached. Safe to run repeatedly.
set -euo pipefail

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379 MARIADB_PORT=3306

say() { printf 'services: %s\n' "$*" >&2; }

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then say "$name is up"; return 0; fi
    sleep 0.5
  done
  say "ERROR: $name is not reachable"; return 1
}

pg_up() { pg_isready -h "$PG_HOST" -p "$PG_PORT" -q >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
mariadb_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P "$MARIADB_PORT" -u root status >/dev/null 2>&1; }

if ! pg_up; then
  say "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
if ! redis_up; then
  say "starting Redis"
  command -v redis-server >/dev/null && redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no || true
fi
if ! mariadb_up; then
  say "starting MariaDB"
  if [ -x /usr/sbin/mariadbd ]; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  fi
fi

failed=0
wait_for PostgreSQL pg_up || failed=1
wait_for Redis redis_up || failed=1
wait_for MariaDB mariadb_up || failed=1
if [ "$failed" -ne 0 ]; then
  say "ERROR: a required service is down; see above"
  exit 1
fi
