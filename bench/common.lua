-- Shared by the wrk scripts: counts answers by class per thread and prints
-- one machine-readable RESULT line when the run is done.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  c5xx = 0
  c2xx = 0
  -- Each wrk thread has its own Lua state: seed each differently.
  math.randomseed(os.time() * 100 + (id or 0))
end

function response(status, headers, body)
  if status >= 500 then c5xx = c5xx + 1 elseif status < 300 then c2xx = c2xx + 1 end
end

function done(summary, latency, requests)
  local n5xx, n2xx = 0, 0
  for _, t in ipairs(threads) do
    n5xx = n5xx + t:get("c5xx")
    n2xx = n2xx + t:get("c2xx")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d socket_errors=%d status_5xx=%d status_2xx=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, n5xx, n2xx,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
