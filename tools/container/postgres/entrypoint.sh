#!/bin/sh
# First start: initdb as the postgres user with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB
# (password auth when a password is set, trust otherwise). Then run the server in the foreground
# on PGPORT (default 5432), so it can share the host network with another PostgreSQL.
# initdb skips fsync: the image is for tests and throwaway servers, not for data to keep.
# Extra arguments go to the server, e.g. `-c fsync=off`.
set -eu
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
PGPORT=${PGPORT:-5432}
export PGPORT
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

if [ "${1:-}" = postgres ]; then shift; fi  # `postgres -c ...` as the official image accepts

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  install -d -o postgres -g postgres -m 700 "$PGDATA"
  auth=trust
  pwfile=$(mktemp)
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    auth=scram-sha-256
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  fi
  chown postgres "$pwfile"
  if [ "$auth" = trust ]; then
    as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" -A trust -E UTF8 --no-locale --no-sync >/dev/null
  else
    as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -A "$auth" \
      -E UTF8 --no-locale --no-sync >/dev/null
  fi
  rm -f "$pwfile"
  # Socket connections inside the container stay trusted; TCP from anywhere uses $auth.
  printf 'local all all trust\nhost all all 0.0.0.0/0 %s\nhost all all ::/0 %s\n' \
    "$auth" "$auth" >"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" |
      as_postgres postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB, auth $auth)"
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
  postgres -D "$PGDATA" -p "$PGPORT" -c listen_addresses='*' -k /tmp "$@"
