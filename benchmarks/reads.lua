-- wrk script of benchmarks/wrk.py (benchmarks.run's GET paths) and benchmarks/workers.py: authenticated FHIR reads drawn at random from a list of paths.
--
-- Environment: READS_PATHS names a file of request paths (one per line, already in the wanted mix),
-- READS_TOKEN is the bearer token sent with every request. When the run ends, one line starting with
-- "RESULT " carries the figures as JSON (wrk's own text report rounds latencies too coarsely).

local paths = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  for line in io.lines(os.getenv("READS_PATHS")) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("READS_TOKEN")
  wrk.headers["Accept"] = "application/fhir+json"
  -- Each thread its own sequence, so threads do not issue the same requests in step.
  math.randomseed(os.time() * 1000 + id)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
