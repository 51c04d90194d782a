#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests (or reuses the one this script started
# before) and hands out its URL as TG_TEST_POSTGRES_URL:
#
#   source scripts/pgtest.sh      # exports TG_TEST_POSTGRES_URL in this shell
#   bash scripts/pgtest.sh        # prints "export TG_TEST_POSTGRES_URL=..."
#   bash scripts/pgtest.sh stop   # stops the cluster and removes its directory
#
# The cluster is for tests only: trust authentication on loopback and the socket, durability off
# (fsync, synchronous_commit, full_page_writes), data in a temporary directory. PostgreSQL refuses
# to run as root, so as root the server runs as the "postgres" system user; otherwise as the
# current user. The state of a running cluster is kept in /tmp/tg-pgtest.env, so that a second
# call (another shell, another helper, CI re-running) reuses it instead of starting another.
#
# Settings (environment): TG_PGTEST_PORT (first port tried, default 55432; the next free one is
# taken when it is busy), TG_PGTEST_ENV (state file, default /tmp/tg-pgtest.env).

_tg_pgtest() (
  set -euo pipefail

  local envfile="${TG_PGTEST_ENV:-/tmp/tg-pgtest.env}"
  local lockfile="${envfile%.env}.lock"
  local role=tokenguard db=tokenguard_test

  log() { echo "pgtest: $*" >&2; }
  die() { log "$*"; exit 1; }

  # The newest installed major version: Debian installs each one under its own directory.
  local bin=""
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n); do
    [ -x "$d/initdb" ] && bin="$d"
  done
  [ -n "$bin" ] || die "no PostgreSQL found (/usr/lib/postgresql/*/bin/initdb); install Debian's postgresql"

  # as_server runs a command as the user the server runs as.
  local server_user
  server_user="$(id -un)"
  if [ "$(id -u)" -eq 0 ]; then
    server_user=postgres
    id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user to run the server as"
  fi
  as_server() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
  }
  # pg_ctl leaves the server running: it must not inherit the lock's descriptor, or the lock is
  # held for the server's lifetime and the next call waits forever.
  pgctl() { as_server "$bin/pg_ctl" "$@" 9>&-; }

  # state KEY: a value from the state file. The file is parsed, never sourced: it lives in /tmp.
  state() { sed -n "s/^$1=//p" "$envfile" 2>/dev/null | head -n1; }

  url_for() { echo "postgres://$role@127.0.0.1:$1/$db?sslmode=disable"; }

  # usable PORT: our database answers on the port, as our role.
  usable() {
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$1" -U "$role" -d "$db" >/dev/null 2>&1 &&
      "$bin/psql" -X -q -At -h 127.0.0.1 -p "$1" -U "$role" -d "$db" -c 'SELECT 1' >/dev/null 2>&1
  }

  port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

  # Two callers at once (parallel test runs) must not both start a cluster.
  # Opened for reading: flock needs no write access, so a user other than the lock file's
  # creator can still take it.
  [ -e "$lockfile" ] || : >>"$lockfile"
  exec 9<"$lockfile"
  flock 9

  local dir port
  dir="$(state TG_PGTEST_DIR)"
  port="$(state TG_PGTEST_PORT)"

  if [ "${1:-}" = stop ]; then
    if [ -n "$dir" ] && [ -d "$dir/data" ]; then
      pgctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
      # Only a directory this script made: the state file could name anything.
      case "$dir" in /tmp/tg-pgtest-*) rm -rf -- "$dir" ;; esac
      log "stopped and removed $dir"
    fi
    rm -f -- "$envfile"
    return 0
  fi

  if [ -n "$port" ] && usable "$port"; then
    url_for "$port"
    return 0
  fi

  # A cluster of ours that is no longer running (machine rebooted, server killed): start it again
  # on its port if that is still free, else start over.
  if [ -n "$dir" ] && [ -f "$dir/data/PG_VERSION" ] && [ -n "$port" ] && ! port_busy "$port"; then
    log "restarting the cluster in $dir"
    rm -f -- "$dir/data/postmaster.pid"
    if pgctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null &&
      usable "$port"; then
      url_for "$port"
      return 0
    fi
    log "restart failed (see $dir/server.log); starting a new cluster"
  fi
  if [ -n "$dir" ] && [ -d "$dir" ]; then
    pgctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    case "$dir" in /tmp/tg-pgtest-*) rm -rf -- "$dir" ;; esac
  fi
  rm -f -- "$envfile"

  port="${TG_PGTEST_PORT:-55432}"
  case "$port" in '' | *[!0-9]*) die "TG_PGTEST_PORT=$port is not a port number" ;; esac
  local tries=0
  while port_busy "$port"; do
    port=$((port + 1))
    tries=$((tries + 1))
    [ "$tries" -lt 100 ] || die "no free port from ${TG_PGTEST_PORT:-55432} on"
  done

  dir="$(mktemp -d /tmp/tg-pgtest-XXXXXX)"
  # A cluster that did not come up whole is removed, so failed attempts leave nothing behind.
  local ok=""
  trap '[ -n "$ok" ] || { pgctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf -- "$dir"; }' EXIT
  chown "$server_user" "$dir"
  chmod 700 "$dir"

  # C collation: text compares and sorts by bytes, as SQLite's default BINARY collation does, so
  # ORDER BY on text gives the same order on both backends. Trust auth: a throwaway test cluster.
  as_server "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$dir/initdb.log" 2>&1 || die "initdb failed: $(cat "$dir/initdb.log")"

  # In postgresql.conf rather than on the command line, so a restart (above) keeps them.
  as_server tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF

# scripts/pgtest.sh: a throwaway cluster for the tests.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
# The tests open many pools, and a three-replica end-to-end test runs among them.
max_connections = 300
# Durability buys nothing in a cluster deleted after the tests, and costs them time.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

  pgctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    die "the server did not start: $(tail -n 20 "$dir/server.log" 2>/dev/null)"

  # SUPERUSER so that tests can CREATE DATABASE and CREATE SCHEMA of their own.
  "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE $role LOGIN SUPERUSER" -c "CREATE DATABASE $db OWNER $role" >/dev/null ||
    die "creating role $role and database $db failed"

  usable "$port" || die "the new cluster does not answer on 127.0.0.1:$port"

  local tmp
  tmp="$(mktemp "$envfile.XXXXXX")"
  {
    echo "TG_TEST_POSTGRES_URL=$(url_for "$port")"
    echo "TG_PGTEST_DIR=$dir"
    echo "TG_PGTEST_PORT=$port"
    echo "TG_PGTEST_BIN=$bin"
  } >"$tmp"
  chmod 644 "$tmp"
  mv -f -- "$tmp" "$envfile"
  ok=1
  log "started PostgreSQL $("$bin/postgres" --version | awk '{print $3}') in $dir on 127.0.0.1:$port"
  url_for "$port"
)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: export into the caller's shell, and never exit it.
  if _tg_pgtest_url="$(_tg_pgtest "$@")"; then
    if [ -n "$_tg_pgtest_url" ]; then export TG_TEST_POSTGRES_URL="$_tg_pgtest_url"; fi
    unset _tg_pgtest_url
    unset -f _tg_pgtest
  else
    unset _tg_pgtest_url
    unset -f _tg_pgtest
    return 1
  fi
else
  url="$(_tg_pgtest "$@")" || exit 1
  if [ -n "$url" ]; then echo "export TG_TEST_POSTGRES_URL=$url"; fi
fi
