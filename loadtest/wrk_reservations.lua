-- wrk script for the HTTP inventory bench (loadtest/bench_reservations_http.py).
--
--   wrk -t T -c C -d D --latency -s loadtest/wrk_reservations.lua URL -- MODE SKU TAG KEY
--
-- MODE "reserve": every request is POST /v1/reservations for one unit of SKU with a unique
-- Idempotency-Key (TAG-thread-n) and its own customer id, so that neither idempotent replays nor a
-- per-customer limit shape the result, sent with the storefront key KEY (X-Api-Key). MODE "healthz": a static GET of URL (/healthz). Both modes
-- count statuses in response() and print one machine-readable line (WRK_RESULT {json}) with totals,
-- status mix and latency percentiles in microseconds.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "healthz"
  sku = args[2] or "SKU"
  tag = args[3] or "wrk"
  n = 0
  statuses = {}
  headers = { ["Content-Type"] = "application/json", ["X-Api-Key"] = args[4] or "" }
  if mode ~= "reserve" then
    request = nil -- a static GET of the URL's path, built once by wrk
  end
end

function request()
  n = n + 1
  headers["Idempotency-Key"] = tag .. "-" .. id .. "-" .. n
  local body = '{"sku":"' .. sku .. '","quantity":1,"customer_id":"c' .. id .. "-" .. n .. '"}'
  return wrk.format("POST", "/v1/reservations", headers, body)
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local mix = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for code, count in pairs(counts) do
      mix[code] = (mix[code] or 0) + count
    end
  end
  local parts = {}
  for code, count in pairs(mix) do
    table.insert(parts, string.format('"%d":%d', code, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")
  ))
end
