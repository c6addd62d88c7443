#!/usr/bin/env bash
# Shows the feedback rate limit at work on loopback: one address floods with wrk, a second address
# (127.0.0.2, same machine) posts once during the flood and must still get 201.
# Usage: runner/bench/flood.sh http://127.0.0.1:8080   (server running with rate limiting on)
set -euo pipefail
base="${1:-http://127.0.0.1:8080}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp)"
wrk -t1 -c8 -d5s -s "$here/feedback.lua" "$base/api/v1/feedback" > "$out" 2>&1 &
flood=$!
sleep 2
other=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 -H 'Content-Type: application/json' \
  -d '{"title":"from another address"}' "$base/api/v1/feedback")
wait "$flood"
cat "$out"; rm -f "$out"
echo "second address during the flood: HTTP $other"
