#!/usr/bin/env bash
# Builds Paddock's images without any container registry: from Debian packages (debootstrap +
# `docker import`) or FROM scratch with static binaries built here.
#
#   sandbox-images/build.sh                 # base, agent, proxy and test
#   sandbox-images/build.sh test proxy      # some of them
#   sandbox-images/build.sh tools           # the agent-tool images: claude-code, codex, aider,
#                                           # mini-swe-agent (each also by name); `all` = every one
#   sandbox-images/build.sh --extra-ca FILE ...   # same as PADDOCK_EXTRA_CA=FILE
#
# The agent-tool images download their tool (pinned in its Dockerfile) from npm or PyPI during
# `docker build`; every other step runs with --network=none.
#
# Options (environment):
#   PADDOCK_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   PADDOCK_DEBIAN_SUITE   Debian suite (default bookworm)
#   PADDOCK_EXTRA_CA       PEM bundle trusted at build time and inside the images
#                          (for a corporate TLS-intercepting proxy in front of the mirror and
#                          the npm/PyPI registries: pip --cert and npm --cafile get it too)
#   PADDOCK_IMAGE_PREFIX   image name prefix (default paddock)
#   PADDOCK_FORCE=1        rebuild even when the inputs are unchanged
#   CARGO_TARGET_DIR       cargo's target directory (default: the workspace's target/)
#
# Every image carries the label org.paddock.inputs: a hash of everything that went into it.
# An image whose label matches the current inputs is not rebuilt.
set -euo pipefail

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --extra-ca) [ $# -ge 2 ] || { echo "--extra-ca needs a FILE" >&2; exit 2; }; PADDOCK_EXTRA_CA="$2"; shift 2 ;;
    --extra-ca=*) PADDOCK_EXTRA_CA="${1#--extra-ca=}"; shift ;;
    --force) PADDOCK_FORCE=1; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
mirror="${PADDOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${PADDOCK_DEBIAN_SUITE:-bookworm}"
prefix="${PADDOCK_IMAGE_PREFIX:-paddock}"
extra_ca="${PADDOCK_EXTRA_CA:-}"
force="${PADDOCK_FORCE:-0}"
target="x86_64-unknown-linux-gnu"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin_dir="$target_dir/$target/release"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
# Bump when the base recipe below changes in a way the other inputs do not capture.
base_recipe=1
base_packages="bash,coreutils,git,ca-certificates,python3,python3-venv,procps,less,findutils,grep,sed,tar,gzip,xz-utils,curl,openssh-client"

log() { printf '[images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported"
command -v docker >/dev/null || die "docker is not installed (scripts/services.sh: paddock_docker)"
docker info >/dev/null 2>&1 || die "docker daemon unreachable"
if [ -n "$extra_ca" ]; then
  [ -f "$extra_ca" ] || die "PADDOCK_EXTRA_CA=$extra_ca is not a file"
  grep -q "BEGIN CERTIFICATE" "$extra_ca" || die "PADDOCK_EXTRA_CA=$extra_ca holds no PEM certificate"
fi

sha() { sha256sum | cut -d' ' -f1; }
file_hash() { sha256sum "$@" | sha; }
extra_ca_hash() { if [ -n "$extra_ca" ]; then file_hash "$extra_ca"; else echo none; fi; }

# current_inputs IMAGE: the inputs label of IMAGE, empty when it does not exist.
current_inputs() {
  docker image inspect --format '{{ index .Config.Labels "org.paddock.inputs" }}' "$1" 2>/dev/null || true
}

# up_to_date IMAGE HASH: whether IMAGE exists with these inputs (and no rebuild is forced).
up_to_date() {
  [ "$force" != 1 ] && [ "$(current_inputs "$1")" = "$2" ]
}

# image_id IMAGE: the id of IMAGE, empty when it does not exist.
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# retire OLD IMAGE: after IMAGE was rebuilt, remove the image it replaced, so rebuilds do not pile
# up untagged images on the box. An old image still tagged elsewhere or used by a container stays.
retire() {
  local old="$1" image="$2"
  [ -n "$old" ] && [ "$old" != "$(image_id "$image")" ] || return 0
  docker image rm "$old" >/dev/null 2>&1 || true
}

labels() {
  printf -- '--label\norg.paddock.inputs=%s\n--label\norg.paddock.version=%s\n--label\norg.paddock.image=%s\n' "$1" "$version" "$2"
}

# Static binaries: no loader, no libc to trust, runs in FROM scratch and busybox images.
build_static() {
  log "building static binaries: $*"
  local args=()
  local p
  for p in "$@"; do args+=(-p "$p"); done
  # No debug info: the binaries are stripped into the images anyway, and it halves the build's
  # disk footprint.
  (cd "$root" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo build --release --target "$target" "${args[@]}" >&2)
}

# stage DIR FILE...: a fresh build context with the given files, binaries stripped.
stage() {
  local dir="$1"; shift
  rm -rf "$dir" && mkdir -p "$dir"
  local f
  for f in "$@"; do cp "$f" "$dir/"; done
}

passwd_files() {
  local dir="$1"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nagent:x:10001:10001:agent:/home/agent:/bin/sh\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$dir/passwd"
  printf 'root:x:0:\nagent:x:10001:\nnonroot:x:65532:\n' >"$dir/group"
}

work="$(mktemp -d /var/tmp/paddock-images.XXXXXX)"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

base_image="$prefix/base:$suite"
base_inputs() {
  printf '%s\n' "$base_recipe" "$suite" "$mirror" "$base_packages" "$(extra_ca_hash)" | sha
}

build_base() {
  local inputs; inputs="$(base_inputs)"
  if up_to_date "$base_image" "$inputs"; then log "$base_image is up to date"; return; fi
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  local rootfs="$work/rootfs"
  log "debootstrap $suite from $mirror"
  debootstrap --variant=minbase --include="$base_packages" "$suite" "$rootfs" "$mirror" >&2
  if [ -n "$extra_ca" ]; then
    install -m 0644 "$extra_ca" "$rootfs/usr/local/share/ca-certificates/paddock-extra.crt"
    chroot "$rootfs" update-ca-certificates >&2
  fi
  # Nothing the image does not need at run time: package caches, logs, machine identity.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/etc/machine-id
  log "importing $base_image"
  local old; old="$(image_id "$base_image")"
  tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change "LABEL org.paddock.inputs=$inputs" \
    --change "LABEL org.paddock.version=$version" \
    --change "LABEL org.paddock.image=base" \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    - "$base_image" >/dev/null
  rm -rf "$rootfs"
  retire "$old" "$base_image"
}

build_agent() {
  build_base
  build_static paddock-init
  local ctx="$work/agent"
  stage "$ctx" "$here/images/agent/Dockerfile" "$bin_dir/paddock-init"
  strip "$ctx/paddock-init"
  local base_id; base_id="$(docker image inspect --format '{{.Id}}' "$base_image")"
  local inputs
  inputs="$(printf '%s\n' "$base_id" "$(cd "$ctx" && file_hash Dockerfile paddock-init)" | sha)"
  local image="$prefix/agent:latest"
  if up_to_date "$image" "$inputs"; then log "$image is up to date"; return; fi
  log "building $image"
  mapfile -t lab < <(labels "$inputs" agent)
  local old; old="$(image_id "$image")"
  docker build --pull=false --network=none --build-arg "BASE_IMAGE=$base_image" "${lab[@]}" \
    -t "$image" -t "$prefix/agent:$version" "$ctx" >&2
  retire "$old" "$image"
}

build_proxy() {
  build_static paddock-egress
  local ctx="$work/proxy"
  stage "$ctx" "$here/images/proxy/Dockerfile" "$bin_dir/paddock-egress"
  strip "$ctx/paddock-egress"
  passwd_files "$ctx"
  # The host's Debian CA bundle (plus the extra CA) for upstream TLS.
  cat /etc/ssl/certs/ca-certificates.crt >"$ctx/ca-certificates.crt"
  [ -z "$extra_ca" ] || cat "$extra_ca" >>"$ctx/ca-certificates.crt"
  local inputs; inputs="$(cd "$ctx" && file_hash Dockerfile paddock-egress ca-certificates.crt passwd group)"
  local image="$prefix/egress:latest"
  if up_to_date "$image" "$inputs"; then log "$image is up to date"; return; fi
  log "building $image"
  mapfile -t lab < <(labels "$inputs" egress)
  local old; old="$(image_id "$image")"
  docker build --pull=false --network=none "${lab[@]}" -t "$image" -t "$prefix/egress:$version" "$ctx" >&2
  retire "$old" "$image"
}

build_test() {
  build_static paddock-init
  local ctx="$work/test"
  stage "$ctx" "$here/images/test/Dockerfile" "$bin_dir/paddock-init" "$bin_dir/paddock-redteam"
  strip "$ctx/paddock-init" "$ctx/paddock-redteam"
  passwd_files "$ctx"
  # busybox-static from the Debian archive (apt, not a container registry).
  # Into a directory apt's unprivileged download user may write (apt drops to `_apt`).
  local debs="$work/debs"
  chmod 0711 "$work"
  install -d -m 0755 "$debs"
  chown _apt "$debs" 2>/dev/null || true
  (cd "$debs" && apt-get download busybox-static >&2)
  dpkg-deb -x "$debs"/busybox-static_*.deb "$work/busybox-root"
  cp "$work/busybox-root/bin/busybox" "$ctx/busybox"
  local inputs
  inputs="$(cd "$ctx" && file_hash Dockerfile busybox paddock-init paddock-redteam passwd group)"
  local image="$prefix/test:latest"
  if up_to_date "$image" "$inputs"; then log "$image is up to date"; return; fi
  log "building $image"
  mapfile -t lab < <(labels "$inputs" test)
  local old; old="$(image_id "$image")"
  docker build --pull=false --network=none "${lab[@]}" -t "$image" -t "$prefix/test:$version" "$ctx" >&2
  retire "$old" "$image"
}

# build_tool NAME: an agent-tool image on top of the agent image. Its directory holds the
# Dockerfile (the tool's version) and the lock file that pins every package by hash
# (package-lock.json for npm, requirements.lock for pip); the inputs are the agent image, every
# file of that directory and the extra CA.
build_tool() {
  local name="$1"
  build_agent
  local ctx="$work/$name"
  local files=()
  local f
  for f in "$here/images/$name"/*; do [ -f "$f" ] && files+=("$f"); done
  stage "$ctx" "${files[@]}"
  if [ -n "$extra_ca" ]; then cp "$extra_ca" "$ctx/extra-ca.pem"; else : >"$ctx/extra-ca.pem"; fi
  local agent_id; agent_id="$(docker image inspect --format '{{.Id}}' "$prefix/agent:latest")"
  local inputs
  inputs="$(printf '%s\n' "$agent_id" "$(cd "$ctx" && LC_ALL=C ls | sha)" \
    "$(cd "$ctx" && LC_ALL=C ls | while read -r f; do sha256sum "$f"; done | sha)" | sha)"
  local image="$prefix/$name:latest"
  if up_to_date "$image" "$inputs"; then log "$image is up to date"; return; fi
  local tool_version
  tool_version="$(sed -n 's/^ARG TOOL_VERSION=//p' "$ctx/Dockerfile" | head -n 1)"
  log "building $image ($name $tool_version, from npm/PyPI)"
  mapfile -t lab < <(labels "$inputs" "$name")
  local started=$SECONDS
  local old; old="$(image_id "$image")"
  docker build --pull=false --build-arg "AGENT_IMAGE=$prefix/agent:latest" "${lab[@]}" \
    --label "org.paddock.tool-version=$tool_version" \
    -t "$image" -t "$prefix/$name:$tool_version" "$ctx" >&2
  retire "$old" "$image"
  log "$image built in $((SECONDS - started)) s ($(docker image inspect --format '{{.Size}}' "$image") bytes)"
}

tools=(claude-code codex aider mini-swe-agent)
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(base agent proxy test)
for w in "${wanted[@]}"; do
  case "$w" in
    base) build_base ;;
    agent) build_agent ;;
    proxy) build_proxy ;;
    test) build_test ;;
    claude-code|codex|aider|mini-swe-agent) build_tool "$w" ;;
    tools) for t in "${tools[@]}"; do build_tool "$t"; done ;;
    all) build_base; build_agent; build_proxy; build_test
         for t in "${tools[@]}"; do build_tool "$t"; done ;;
    *) die "unknown image $w (base, agent, proxy, test, ${tools[*]}, tools, all)" ;;
  esac
done
log "done: ${wanted[*]}"
