-- wrk script of the benchmark (benches/feed.rs): every request carries the bearer token of
-- the next user in a file of tokens, one per line. Thread k of n takes tokens k, k+n, k+2n...
-- and starts over when they run out (noted as `wrapped`, which a run that must not repeat a
-- user refuses). Counts 2xx answers and, optionally, answers carrying a given header value;
-- done() prints one `wrk-result` line for the benchmark to parse.
--
--   wrk -t N -s bearer-rotation.lua URL -- TOKENS_FILE N METHOD [HEADER=VALUE]

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local all = {}
  for line in io.lines(args[1]) do
    all[#all + 1] = line
  end
  local thread_count = tonumber(args[2])
  tokens = {}
  for i = thread_index + 1, #all, thread_count do
    tokens[#tokens + 1] = "Bearer " .. all[i]
  end
  method = args[3]
  if args[4] then
    watched_header, watched_value = args[4]:match("^([^=]+)=(.*)$")
  end
  next_token, ok, watched, wrapped = 1, 0, 0, 0
end

function request()
  if next_token > #tokens then
    next_token, wrapped = 1, 1
  end
  local token = tokens[next_token]
  next_token = next_token + 1
  return wrk.format(method, nil, { Authorization = token })
end

function response(status, headers)
  if status >= 200 and status < 300 then
    ok = ok + 1
  end
  if watched_header and headers[watched_header] == watched_value then
    watched = watched + 1
  end
end

function done(summary, latency)
  local ok_total, watched_total, wrapped_any = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    watched_total = watched_total + thread:get("watched")
    wrapped_any = math.max(wrapped_any, thread:get("wrapped"))
  end
  io.write(string.format(
    "wrk-result requests=%d ok=%d watched=%d wrapped=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, ok_total, watched_total, wrapped_any, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max))
end
