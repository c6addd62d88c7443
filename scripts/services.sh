#!/usr/bin/env bash
# Installs and starts what Paddock's tests need on a Debian machine, idempotently.
# Source it: it exports PADDOCK_TEST_POSTGRES_URL (and DOCKER_HOST stays default).
# Every step is quick when the thing is already there.

paddock_state_dir="${PADDOCK_TEST_STATE:-/var/tmp/paddock-test}"
paddock_pg_port="${PADDOCK_TEST_PG_PORT:-54329}"

paddock_log() { printf '[services] %s\n' "$*" >&2; }

# paddock_need_packages PKG... : apt-get install the packages that are missing.
paddock_need_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  paddock_log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -f /var/lib/apt/periodic/paddock-updated ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    $sudo apt-get update -qq
    $sudo mkdir -p /var/lib/apt/periodic && $sudo touch /var/lib/apt/periodic/paddock-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# paddock_postgres: a throwaway PostgreSQL cluster on 127.0.0.1 for tests only
# (trust auth on loopback, never a production setting).
paddock_postgres() {
  paddock_need_packages postgresql postgresql-client
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bindir" ] || { paddock_log "no PostgreSQL binaries found"; return 1; }
  local data="$paddock_state_dir/pg"
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  mkdir -p "$paddock_state_dir"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data" && chown postgres "$data"
    runuser -u postgres -- "$bindir/initdb" -D "$data" -A trust -U postgres >/dev/null
  fi
  if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$paddock_pg_port"; then
    paddock_log "starting PostgreSQL on 127.0.0.1:$paddock_pg_port"
    mkdir -p "$paddock_state_dir/pgsock" && chown postgres "$paddock_state_dir/pgsock"
    touch "$paddock_state_dir/pg.log" && chown postgres "$paddock_state_dir/pg.log"
    runuser -u postgres -- "$bindir/pg_ctl" -D "$data" -l "$paddock_state_dir/pg.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $paddock_pg_port -k $paddock_state_dir/pgsock -c max_connections=300 -c fsync=off -c synchronous_commit=off" start >/dev/null
  fi
  export PADDOCK_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$paddock_pg_port/postgres"
}

# paddock_docker: the Docker engine from Debian's docker.io, started if it is not running.
paddock_docker() {
  command -v dockerd >/dev/null 2>&1 || paddock_need_packages docker.io
  if ! docker info >/dev/null 2>&1; then
    paddock_log "starting dockerd"
    mkdir -p "$paddock_state_dir"
    (setsid dockerd >"$paddock_state_dir/dockerd.log" 2>&1 &)
    local i
    for i in $(seq 1 60); do
      docker info >/dev/null 2>&1 && return 0
      sleep 1
    done
    paddock_log "dockerd did not start; see $paddock_state_dir/dockerd.log"
    return 1
  fi
}
