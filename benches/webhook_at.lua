-- wrk script: whole Africa's Talking calls against `kuma serve` (benches/webhook-load.sh).
--
-- Each wrk thread has one connection and plays one caller after another, request
-- by request as Africa's Talking sends them: the call's first request, a silence
-- at the language menu (the GetDigits' Redirect), French, the poll's five answers,
-- goodbye, and the last request (isActive=0). Ten requests a call, each one
-- waiting for the previous reply (one connection per thread keeps them in order).
--
-- Every reply is checked: a 200 whose callback carries the next step (or, for the
-- goodbye and the end, no callback). Wrong replies are counted and printed at the
-- end: the figures only count if that count is 0.

local secret = os.getenv("KUMA_AT_PATH_SECRET") or ""
local path = "/voice/africastalking"
if secret ~= "" then path = path .. "/" .. secret end

-- { query step (nil = none), form fields beyond sessionId/isActive, next step expected }
local script = {
  { nil, "&isActive=1&direction=Inbound&destinationNumber=2000&callerNumber=", 1 },
  { 1, "&isActive=1", 2 },                 -- no key: the Redirect
  { 2, "&isActive=1&dtmfDigits=2", 3 },    -- French
  { 3, "&isActive=1&dtmfDigits=2", 4 },    -- the poll
  { 4, "&isActive=1&dtmfDigits=1", 5 },
  { 5, "&isActive=1&dtmfDigits=2", 6 },
  { 6, "&isActive=1&dtmfDigits=3", 7 },
  { 7, "&isActive=1&dtmfDigits=1", 8 },
  { 8, "&isActive=1&dtmfDigits=4", 9 },    -- the last answer; back at the menu
  { 9, "&isActive=1&dtmfDigits=0", nil },  -- goodbye
  { nil, "&isActive=0&durationInSeconds=61&amount=0.4&currencyCode=KES", nil },
}

local threads = {}
local counter = 0
-- Session ids must not repeat across runs on the same database: a finished
-- session answers every later request with a hang-up.
math.randomseed(os.time())
run = string.format("%d%06d", os.time(), math.random(0, 999999))

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  thread:set("run", run)
  table.insert(threads, thread)
end

function init(args)
  calls, pos, bad, done_calls = 0, 1, 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

local function session()
  return string.format("ATVId_bench_%s_%d_%d", run, id, calls)
end

function request()
  local s = script[pos]
  local url = path
  if s[1] then url = url .. "?step=" .. s[1] end
  local body = "sessionId=" .. session() .. s[2]
  if pos == 1 then
    -- A different (made-up) caller for every call.
    body = body .. string.format("%%2B2237%07d", (id * 1000003 + calls) % 10000000)
  end
  return wrk.format(nil, url, nil, body)
end

function response(status, headers, body)
  local s = script[pos]
  local want = s[3]
  local ok = status == 200
  if ok and want then
    ok = string.find(body, "step=" .. want .. "\"", 1, true) ~= nil
  elseif ok then
    ok = string.find(body, "step=", 1, true) == nil
  end
  if not ok then bad = bad + 1 end
  pos = pos + 1
  if pos > #script then
    pos = 1
    calls = calls + 1
    done_calls = done_calls + 1
  end
end

function done(summary, latency, requests)
  local total_bad, total_calls = 0, 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + t:get("bad")
    total_calls = total_calls + t:get("done_calls")
  end
  io.write(string.format("calls completed: %d, wrong replies: %d\n", total_calls, total_bad))
  io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("requests/s: %.0f\n", summary.requests / (summary.duration / 1e6)))
end
