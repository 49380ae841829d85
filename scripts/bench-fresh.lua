-- wrk script: every request is the first touch of a counter never used before (scenario p with
-- wrk as the client instead of the harness's node populate client, which saturates first).
--
-- Environment: WRK_PATH_TEMPLATE (path with {name}, POST; default /objects/Counter/{name}/increment),
-- WRK_NAME_PREFIX (default fresh-). done() prints one line starting with FRESHRESULT.

local template = os.getenv("WRK_PATH_TEMPLATE") or "/objects/Counter/{name}/increment"
local prefix = os.getenv("WRK_NAME_PREFIX") or "fresh-"

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local n = 0
function request()
  n = n + 1
  local name = prefix .. tostring(thread_no) .. "-" .. tostring(n)
  return wrk.format("POST", (template:gsub("{name}", name)), nil, "")
end

function done(summary, latency, requests)
  io.write(string.format(
    "FRESHRESULT requests=%d duration_s=%.3f per_s=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
      + summary.errors.status))
end
