-- wrk script for scripts/bench: POST one JSON body with one token header.
-- Set by the environment: BENCH_BODY (the JSON body), BENCH_AUTH (Authorization value).
-- No response() hook: it would make wrk parse every body in Lua and take CPU from the
-- server on this 2-core machine. Statuses are checked through summary.errors.status
-- (non-2xx answers): all of them for refusals, none for accepted deploys.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")

function done(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"mean_us":%.2f,"stdev_us":%.2f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
