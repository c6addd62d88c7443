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

# paddock_sshd: a throwaway OpenSSH git server on 127.0.0.1 for Paddock's git tests.
# Source this file (after services.sh's helpers) and call paddock_sshd. Idempotent and quick
# when already running. Needs root (it creates the `git` user and runs sshd).
#
# Exports:
#   PADDOCK_TEST_SSH_HOST        127.0.0.1
#   PADDOCK_TEST_SSH_PORT        port sshd listens on (22022 unless PADDOCK_TEST_SSH_PORT was set)
#   PADDOCK_TEST_SSH_USER        git (login shell git-shell: only push/fetch, no commands)
#   PADDOCK_TEST_SSH_HOST_KEY    path of the server's public host key (pin it in tests)
#   PADDOCK_TEST_SSH_DEPLOY_KEY  path of the test deploy key (private; public key authorised)
#   PADDOCK_TEST_SSH_REPOS       directory of bare repositories (owned by git; tests create
#                                repositories there and chown them to git)

paddock_sshd() {
  local state="${PADDOCK_TEST_STATE:-/var/tmp/paddock-test}"
  local dir="$state/sshd"
  local port="${PADDOCK_TEST_SSH_PORT:-22022}"
  local log
  log() { printf '[sshd] %s\n' "$*" >&2; }

  if [ "$(id -u)" -ne 0 ]; then
    log "needs root (creates the git user and starts sshd)"
    return 1
  fi
  if [ ! -x /usr/sbin/sshd ]; then
    if declare -F paddock_need_packages >/dev/null; then
      paddock_need_packages openssh-server
    else
      log "installing openssh-server"
      [ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ] || apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
    fi
  fi
  # Debian's package may start its own sshd on port 22; ours is separate and loopback-only.
  local shell
  shell="$(command -v git-shell || true)"
  if [ -z "$shell" ]; then
    if declare -F paddock_need_packages >/dev/null; then paddock_need_packages git; else
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git >/dev/null; fi
    shell="$(command -v git-shell)"
  fi

  mkdir -p "$dir/home/.ssh" "$dir/repos" /run/sshd
  chmod 755 "$state" "$dir"
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C paddock-test-host -f "$dir/host_ed25519"
  [ -f "$dir/deploy_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C paddock-test-deploy -f "$dir/deploy_ed25519"

  grep -qxF "$shell" /etc/shells 2>/dev/null || echo "$shell" >>/etc/shells
  if ! id git >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$dir/home" --shell "$shell" git
  fi
  # Home, shell, and an unlocked account without a password (sshd refuses locked accounts).
  usermod --home "$dir/home" --shell "$shell" --password '*' git

  # The deploy key may only run git-shell's commands: no forwarding, no pty.
  printf 'no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty %s\n' \
    "$(cat "$dir/deploy_ed25519.pub")" >"$dir/home/.ssh/authorized_keys"
  # Test repositories are created by root and chowned to git; server-side git trusts them.
  printf '[safe]\n\tdirectory = *\n' >"$dir/home/.gitconfig"
  chmod 700 "$dir/home/.ssh"
  chmod 600 "$dir/home/.ssh/authorized_keys"
  chown -R git:git "$dir/home" "$dir/repos"

  cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/home/.ssh/authorized_keys
AllowUsers git
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PermitTunnel no
LogLevel VERBOSE
EOF

  local running=""
  if [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null \
    && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    running=yes
  fi
  if [ -z "$running" ]; then
    log "starting sshd on 127.0.0.1:$port"
    /usr/sbin/sshd -t -f "$dir/sshd_config" || { log "sshd config rejected"; return 1; }
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" || { log "sshd did not start; see $dir/sshd.log"; return 1; }
    local i
    for i in $(seq 1 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { log "sshd not listening; see $dir/sshd.log"; return 1; }
  fi

  export PADDOCK_TEST_SSH_HOST=127.0.0.1
  export PADDOCK_TEST_SSH_PORT="$port"
  export PADDOCK_TEST_SSH_USER=git
  export PADDOCK_TEST_SSH_HOST_KEY="$dir/host_ed25519.pub"
  export PADDOCK_TEST_SSH_DEPLOY_KEY="$dir/deploy_ed25519"
  export PADDOCK_TEST_SSH_REPOS="$dir/repos"
}
