-- wrk script for bench/gateway_bench.py (one scenario per wrk process).
--
-- Arguments after `--`: <requests file> <response budget per thread>.
-- The requests file is a Lua chunk returning a list of {method, path, headers, body}; each
-- thread prebuilds the raw requests once, cycles through them from its own offset, stops
-- after its budget of responses (wrk's -d bounds the time), counts responses per HTTP
-- status, and done() prints one machine-readable line that the Python driver parses.

local threads = {}
CDF_POINTS = {1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92, 94, 95, 96, 97, 98, 98.5,
              99, 99.1, 99.2, 99.3, 99.4, 99.5, 99.6, 99.7, 99.8, 99.9, 99.95, 99.99}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
  table.insert(threads, thread)
end

function init(args)
  local spec = dofile(args[1])
  budget = tonumber(args[2])
  prepared = {}
  for i, r in ipairs(spec) do
    prepared[i] = wrk.format(r[1], r[2], r[3], r[4])
  end
  -- Spread threads over the list so they do not ask for the same credential in lockstep.
  position = ((id - 1) * 7919) % #prepared
  answered = 0
  statuses = {}
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  if answered == budget then
    -- The driver answers this line with SIGINT: wrk alone would sleep out its --duration.
    io.write("BENCH_BUDGET\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, _)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, status .. ":" .. count)
  end
  -- The latency distribution at fixed percentiles, so the driver can pool interleaved rounds
  -- into one distribution (a percentile of the union, not the worst of the rounds).
  local cdf = {}
  for _, p in ipairs(CDF_POINTS) do
    table.insert(cdf, string.format("%g:%d", p, latency:percentile(p)))
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f "
      .. "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d statuses=%s cdf=%s\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.timeout, table.concat(parts, ","),
    table.concat(cdf, ",")))
end
