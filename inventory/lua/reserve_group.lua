-- Decide a batch of GROUP reservations (a checkout's lines), each group all or nothing.
-- ARGV: prefix, epoch, bucket, bucket_ttl_s, groups. ``groups`` is one string, a line per group:
-- "customer expires_at group_key rid1 sku1 qty1 rid2 sku2 qty2 ...\n" (identifiers never contain blanks;
-- each SKU once per group). Line n's idempotency key is "<group_key>#<n>", as inventory/groups.py names it.
-- Returns 'not_ready' when this epoch's counters are not built, else one space-separated outcome per
-- group: 'held' (every line taken) | 'short:<line>:<available>' | 'over_limit:<line>:<has>:<limit>' |
-- 'unknown_sku:<line>' | 'repeat' (the group's first key is already decided: the engine reads the group
-- back from MySQL). A refused group takes nothing. Lines are numbered from 1.
-- The keys, counters and hold members are those of reserve_batch.lua, so confirming, releasing, expiring
-- and reconciling a group's lines is what it is for any reservation.
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
local holds = {}

local function stock_of(sku)
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
  return st
end

local function customer_of(sku, cust)
  local ck = sku .. ' ' .. cust
  local c = custs[ck]
  if c == nil then
    c = {tonumber(redis.call('HGET', base .. 'customers:' .. sku, cust) or '0'), 0}
    custs[ck] = c
  end
  return c
end

for line in string.gmatch(ARGV[5], '([^\n]+)\n') do
  local t = {}
  for token in string.gmatch(line, '%S+') do t[#t + 1] = token end
  local cust, exp, key = t[1], t[2], t[3]
  local n = (#t - 3) / 3
  local first = key .. '#1'
  local refusal
  if redis.call('HEXISTS', idempotency, first) == 1 or redis.call('HEXISTS', idempotency_before, first) == 1 then
    refusal = 'repeat'
  end
  local i = 1
  while not refusal and i <= n do
    local sku, q = t[3 + 3 * i - 1], tonumber(t[3 + 3 * i])
    local st = stock_of(sku)
    if not st then
      refusal = 'unknown_sku:' .. i
    elseif st[1] < q then
      refusal = 'short:' .. i .. ':' .. math.max(st[1], 0)
    elseif st[2] >= 0 then
      local c = customer_of(sku, cust)
      if c[1] + c[2] + q > st[2] then refusal = 'over_limit:' .. i .. ':' .. (c[1] + c[2]) .. ':' .. st[2] end
    end
    i = i + 1
  end
  if refusal then
    out[#out + 1] = refusal
  else
    for j = 1, n do
      local rid, sku, qs = t[3 + 3 * j - 2], t[3 + 3 * j - 1], t[3 + 3 * j]
      local q = tonumber(qs)
      local idem = key .. '#' .. j
      redis.call('HSET', idempotency, idem, rid)
      local st = stocks[sku]
      st[1] = st[1] - q
      st[3] = st[3] + q
      if st[2] >= 0 then
        local c = customer_of(sku, cust)
        c[2] = c[2] + q
      end
      holds[#holds + 1] = exp
      holds[#holds + 1] = rid .. ' ' .. sku .. ' ' .. cust .. ' ' .. qs .. ' ' .. idem
    end
    claimed = true
    out[#out + 1] = 'held'
  end
end
local CHUNK = 2000
for i = 1, #holds, CHUNK do
  redis.call('ZADD', expiry, unpack(holds, i, math.min(i + CHUNK - 1, #holds)))
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
