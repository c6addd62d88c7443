#!/usr/bin/env bash
# Regenerates the lock files of the agent-tool images after a version bump in their Dockerfile
# (`ARG TOOL_VERSION`). Every package the image installs ends up pinned by hash:
#   images/claude-code, images/codex     package.json + package-lock.json (sha512 integrity)
#   images/aider, images/mini-swe-agent  requirements.lock (pip --require-hashes)
#
#   sandbox-images/lock.sh                # every tool
#   sandbox-images/lock.sh codex aider    # some
#
# Needs npm (for the npm tools) and python3 with venv (pip-tools is installed into a temporary
# virtualenv). Reaches the npm registry and PyPI; PADDOCK_EXTRA_CA is trusted as for build.sh.
# Python locks resolve for this host's CPython 3.11 on Linux x86_64, which is what the images run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
extra_ca="${PADDOCK_EXTRA_CA:-}"
log() { printf '[lock] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

tool_version() {
  sed -n 's/^ARG TOOL_VERSION=//p' "$here/images/$1/Dockerfile" | head -n 1
}

lock_npm() {
  local name="$1" package="$2"
  local version; version="$(tool_version "$name")"
  [ -n "$version" ] || die "images/$name/Dockerfile has no ARG TOOL_VERSION"
  command -v npm >/dev/null || die "npm is not installed"
  local dir="$tmp/$name"
  mkdir -p "$dir"
  printf '{\n  "name": "paddock-%s",\n  "private": true\n}\n' "$name" >"$dir/package.json"
  local ca=()
  [ -z "$extra_ca" ] || ca=(--cafile "$extra_ca")
  (cd "$dir" && npm install --package-lock-only --save-exact --no-audit --no-fund \
    "${ca[@]}" "$package@$version" >&2)
  cp "$dir/package.json" "$dir/package-lock.json" "$here/images/$name/"
  log "images/$name: $package@$version locked"
}

lock_pip() {
  local name="$1" package="$2"
  local version; version="$(tool_version "$name")"
  [ -n "$version" ] || die "images/$name/Dockerfile has no ARG TOOL_VERSION"
  if [ ! -x "$tmp/venv/bin/pip-compile" ]; then
    # The images run Debian bookworm's CPython 3.11: a lock resolved for another version can
    # miss dependencies that only 3.11 needs (the images install with --no-deps).
    python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
      || die "python3 is $(python3 -V 2>&1); the locks must be resolved with CPython 3.11"
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install --quiet ${extra_ca:+--cert "$extra_ca"} pip-tools >&2
  fi
  local dir="$tmp/$name"
  mkdir -p "$dir"
  printf '%s==%s\n' "$package" "$version" >"$dir/requirements.in"
  (cd "$dir" && "$tmp/venv/bin/pip-compile" --quiet --generate-hashes \
    --strip-extras --no-header --no-emit-find-links --no-emit-index-url \
    ${extra_ca:+--cert "$extra_ca"} --output-file requirements.lock requirements.in >&2)
  cp "$dir/requirements.lock" "$here/images/$name/requirements.lock"
  log "images/$name: $package==$version locked"
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(claude-code codex aider mini-swe-agent)
for w in "${wanted[@]}"; do
  case "$w" in
    claude-code) lock_npm claude-code @anthropic-ai/claude-code ;;
    codex) lock_npm codex @openai/codex ;;
    aider) lock_pip aider aider-chat ;;
    mini-swe-agent) lock_pip mini-swe-agent mini-swe-agent ;;
    *) die "unknown tool $w (claude-code, codex, aider, mini-swe-agent)" ;;
  esac
done
