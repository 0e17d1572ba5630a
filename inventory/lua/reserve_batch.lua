-- Decide a batch of reservations atomically (one EVALSHA for many requests).
-- ARGV: prefix, epoch, idempotency_ttl_s, requests. ``requests`` is one string, a line per request:
-- "rid sku customer qty idem_key expires_at\n" (identifiers never contain blanks). Packing the batch
-- into one argument keeps the client's per-argument encoding cost out of the hot path.
-- Returns 'NOTREADY' when this epoch's counters are not built (Redis lost/flushed: reconcile first),
-- else one space-separated code per request: 'O' taken | 'S<available>' short | 'L<has>:<limit>' over
-- the limit | 'U' unknown sku | 'D<rid>' idempotency key already maps to rid.
-- Counters are read once per SKU (and customer) per batch, tracked in Lua tables and written back
-- once at the end: the script is atomic, so nothing can observe the intermediate state.
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'NOTREADY' end
local base = P .. ':' .. E .. ':'
local ttl = tonumber(ARGV[3])
local xkey = base .. 'x'
local out = {}
local n = 0
local stocks = {}  -- sku -> {available, limit, taken} or false when unknown
local custs = {}   -- "sku customer" -> {has (held + sold), taken}
-- The idempotency key costs one command per request: a request that would take stock claims its key
-- with SET NX (taken -> it is a retry, answer D and take nothing); one that would be refused looks it
-- up with GET (a retry of an earlier success is answered D, not with today's refusal).
for rid, sku, cust, qs, idem, exp in string.gmatch(ARGV[4], '(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)\n') do
  n = n + 1
  local q = tonumber(qs)
  local ikey = base .. 'i:' .. idem
  local st = stocks[sku]
  if st == nil then
    local v = redis.call('HMGET', base .. 's:' .. sku, 'oh', 'h', 'so', 'lim')
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
    refusal = 'U'
  elseif st[1] < q then
    refusal = 'S' .. math.max(st[1], 0)
  else
    local ck = sku .. ' ' .. cust
    c = custs[ck]
    if c == nil then
      c = {0, 0}
      if st[2] >= 0 then c[1] = tonumber(redis.call('HGET', base .. 'c:' .. sku, cust) or '0') end
      custs[ck] = c
    end
    if st[2] >= 0 and c[1] + c[2] + q > st[2] then refusal = 'L' .. (c[1] + c[2]) .. ':' .. st[2] end
  end
  if refusal then
    local prev = redis.call('GET', ikey)
    if prev then out[n] = 'D' .. prev else out[n] = refusal end
  elseif redis.call('SET', ikey, rid, 'NX', 'EX', ttl) then
    st[1] = st[1] - q
    st[3] = st[3] + q
    c[2] = c[2] + q
    -- The hold itself is its member in the expiry index: "rid sku customer qty idem_key".
    redis.call('ZADD', xkey, exp, rid .. ' ' .. sku .. ' ' .. cust .. ' ' .. qs .. ' ' .. idem)
    out[n] = 'O'
  else
    out[n] = 'D' .. redis.call('GET', ikey)
  end
end
for sku, st in pairs(stocks) do
  if st and st[3] > 0 then redis.call('HINCRBY', base .. 's:' .. sku, 'h', st[3]) end
end
for ck, c in pairs(custs) do
  if c[2] > 0 then
    local sp = string.find(ck, ' ', 1, true)
    redis.call('HINCRBY', base .. 'c:' .. string.sub(ck, 1, sp - 1), string.sub(ck, sp + 1), c[2])
  end
end
return table.concat(out, ' ')
