-- wrk script: POST small feedback bodies to /api/v1/feedback.
-- Load figure (rate limiting off):
--   PADDOCK_RATE_LIMIT_ENABLED=false paddock serve --config paddock.toml &
--   wrk -t2 -c32 -d15s --latency -s runner/bench/feedback.lua http://127.0.0.1:8080/api/v1/feedback
-- Flood cut-off (rate limiting on): the same command reports mostly non-2xx (429) responses, while a
-- second client address still gets 201 (see runner/bench/flood.sh).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"Load test feedback","body":"The save button does nothing on the settings page.","tags":["ui"]}'

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f requests=%d rps=%.0f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
    summary.requests / (summary.duration / 1e6)))
end
