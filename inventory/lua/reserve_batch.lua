-- Decide a batch of reservations atomically (one EVALSHA for many requests).
-- ARGV: prefix, epoch, bucket, bucket_ttl_s, requests, now. ``requests`` is one string, a line per request:
-- "rid sku customer qty idem_key expires_at[ windows]\n" (identifiers never contain blanks). Packing the
-- batch into one argument keeps the client's per-argument encoding cost out of the hot path.
-- ``windows`` (optional) are the request's rate-limit windows, "kind|cost|limit|seconds|key;..." with
-- kind f (fixed window: a counter with an expiry) or m (moving window: a list of timestamps, one per
-- unit), exactly as the ``limits`` library keeps them under ``key`` (its own key: the limiter reads the
-- same windows). They are counted first, in order, up to the first full one, whatever the stock says:
-- an ask counts granted or not. A full one answers 'limited:<index>:<reset_at>'.
-- Returns 'not_ready' when this epoch's counters are not built (Redis lost/flushed: reconcile first),
-- else one space-separated outcome per request: 'held' (stock taken) | 'short:<available>' |
-- 'over_limit:<customer has>:<limit>' | 'unknown_sku' | 'repeat:<rid>' (the idempotency key already
-- maps to rid) | 'limited:<window index>:<reset_at>'.
-- Counters are read once per SKU (and customer) per batch, tracked in Lua tables and written back
-- once at the end: the script is atomic, so nothing can observe the intermediate state.
-- Idempotency keys are fields of one hash per time bucket (``idempotency:<bucket>``, key -> rid; the
-- engine numbers buckets floor(now / idempotency_ttl)) and are looked up in the current and the
-- previous bucket, so each is remembered for at least the TTL. A hash field is far cheaper for Redis
-- than a key of its own with an expiry (the engine UNLINKs old buckets; their TTL is only the fallback).
-- Per-customer counts (``customers:<sku>``) are kept only for SKUs that have a limit; introducing a
-- limit rebuilds them from MySQL (stock_pre/stock_post answer 'rebuild').
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'not_ready' end
local base = P .. ':' .. E .. ':'
local idempotency = base .. 'idempotency:' .. ARGV[3]
local idempotency_before = base .. 'idempotency:' .. (tonumber(ARGV[3]) - 1)
local expiry = base .. 'expiry'
local out = {}
local claimed = false
local stocks = {}  -- sku -> {available, limit, taken} or false when unknown
local custs = {}   -- "sku customer" -> {has (held + sold), taken}, only for SKUs with a limit
-- A request that would take stock claims its key (HGET in the previous bucket, HSETNX in the current
-- one; already there -> it is a retry, answer 'repeat' and take nothing); one that would be refused
-- looks it up (a retry of an earlier success is answered 'repeat', not with today's refusal).
-- The batch's lookups in the previous bucket (which nothing here writes) are one HMGET, and its new
-- holds one ZADD: fewer, larger redis.calls.
local reqs = {}
for rid, sku, cust, qs, idem, exp, wins in string.gmatch(ARGV[5], '(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) ?(%S*)\n') do
  reqs[#reqs + 1] = {rid, sku, cust, qs, idem, exp, wins}
end
local now = tonumber(ARGV[6])
-- The ``limits`` scripts' incr_expire and acquire_moving_window; nil when the window has room (now
-- counted), else the time it has room again. A fixed window (one per caller: every request of a batch
-- may name the same) is read once and written once per batch (``fixed``: key -> {count, existed,
-- seconds, added}), as incr_expire would leave it: incremented by every ask, an expiry set if new.
local fixed = {}
local function fixed_window(key, cost, limit, seconds)
  local w = fixed[key]
  if w == nil then
    local current = redis.call('GET', key)
    w = {tonumber(current) or 0, current ~= false, seconds, 0}
    fixed[key] = w
  end
  w[1] = w[1] + cost
  w[4] = w[4] + cost
  if w[1] <= limit then return nil end
  if not w[2] then return now + seconds end
  return now + math.max(redis.call('TTL', key), 0)
end
local function moving_window(key, cost, limit, seconds)
  if cost > limit then return now + seconds end
  local entry = redis.call('LINDEX', key, limit - cost)
  if entry and tonumber(entry) >= now - seconds then return tonumber(entry) + seconds end
  local entries = {}
  for i = 1, cost do entries[i] = ARGV[6] end
  local length = 0
  for i = 1, #entries, 5000 do
    length = redis.call('LPUSH', key, unpack(entries, i, math.min(i + 4999, #entries)))
  end
  -- the list keeps at most ``limit`` entries: trimmed only when longer (a trim that removes nothing is a
  -- redis.call, and one per reservation)
  if length > limit then redis.call('LTRIM', key, 0, limit - 1) end
  redis.call('EXPIRE', key, seconds)
  return nil
end
local function limited(wins)
  local index = 0
  for kind, cost, limit, seconds, key in string.gmatch(wins, '([fm])|(%d+)|(%d+)|(%d+)|([^;]+)') do
    index = index + 1
    local count = kind == 'f' and fixed_window or moving_window
    local reset_at = count(key, tonumber(cost), tonumber(limit), tonumber(seconds))
    if reset_at then return 'limited:' .. index .. ':' .. reset_at end
  end
  return nil
end
local CHUNK = 2000  -- arguments per call stay far below Lua's C stack limit
local olds = {}
for i = 1, #reqs, CHUNK do
  local keys = {}
  for j = i, math.min(i + CHUNK - 1, #reqs) do keys[#keys + 1] = reqs[j][5] end
  local got = redis.call('HMGET', idempotency_before, unpack(keys))
  for j = 1, #keys do olds[i + j - 1] = got[j] end
end
local holds = {}
-- One request past its windows: refuse it, or take the stock and claim its idempotency key.
local function decide(n, rid, sku, cust, qs, idem, exp)
  local q = tonumber(qs)
  local st = stocks[sku]
  if st == nil then
    local v = redis.call('HMGET', base .. 'stock:' .. sku, 'on_hand', 'held', 'sold', 'limit')
    if v[1] then
      st = {tonumber(v[1]) - tonumber(v[2]) - tonumber(v[3]), tonumber(v[4]), 0}
    else
      st = false
    end
    stocks[sku] = st
  end
  local refusal
  local c
  if not st then
    refusal = 'unknown_sku'
  elseif st[1] < q then
    refusal = 'short:' .. math.max(st[1], 0)
  elseif st[2] >= 0 then
    local ck = sku .. ' ' .. cust
    c = custs[ck]
    if c == nil then
      c = {tonumber(redis.call('HGET', base .. 'customers:' .. sku, cust) or '0'), 0}
      custs[ck] = c
    end
    if c[1] + c[2] + q > st[2] then refusal = 'over_limit:' .. (c[1] + c[2]) .. ':' .. st[2] end
  end
  local prev = olds[n]
  if refusal then
    prev = redis.call('HGET', idempotency, idem) or prev
    if prev then out[n] = 'repeat:' .. prev else out[n] = refusal end
  elseif not prev and redis.call('HSETNX', idempotency, idem, rid) == 1 then
    claimed = true
    st[1] = st[1] - q
    st[3] = st[3] + q
    if c then c[2] = c[2] + q end
    -- The hold itself is its member in the expiry index: "rid sku customer qty idem_key".
    holds[#holds + 1] = exp
    holds[#holds + 1] = rid .. ' ' .. sku .. ' ' .. cust .. ' ' .. qs .. ' ' .. idem
    out[n] = 'held'
  else
    out[n] = 'repeat:' .. (prev or redis.call('HGET', idempotency, idem))
  end
end
for n = 1, #reqs do
  local rid, sku, cust, qs, idem, exp, wins = unpack(reqs[n])
  local window_refusal = wins ~= '' and limited(wins)
  if window_refusal then
    out[n] = window_refusal
  else
    decide(n, rid, sku, cust, qs, idem, exp)
  end
end
for i = 1, #holds, CHUNK do
  redis.call('ZADD', expiry, unpack(holds, i, math.min(i + CHUNK - 1, #holds)))
end
for key, w in pairs(fixed) do
  redis.call('INCRBY', key, w[4])
  if not w[2] then redis.call('EXPIRE', key, w[3]) end
end
if claimed then redis.call('EXPIRE', idempotency, ARGV[4]) end
for sku, st in pairs(stocks) do
  if st and st[3] > 0 then redis.call('HINCRBY', base .. 'stock:' .. sku, 'held', st[3]) end
end
for ck, c in pairs(custs) do
  if c[2] > 0 then
    local sp = string.find(ck, ' ', 1, true)
    redis.call('HINCRBY', base .. 'customers:' .. string.sub(ck, 1, sp - 1), string.sub(ck, sp + 1), c[2])
  end
end
return table.concat(out, ' ')
