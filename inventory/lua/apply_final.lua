-- Apply end states decided durably in MySQL to the fast path. Idempotent: a hold is its member
-- "rid sku customer qty idem_key" in the expiry index, and only the call that removes it moves stock.
-- ARGV: prefix, epoch, idempotency bucket (now), then pairs: member, end ('confirmed' | 'released' |
-- 'expired' | 'undo'). 'undo' drops a hold that never became durable and forgets its idempotency key
-- (current or previous bucket), so that the client's retry is decided afresh. Per-customer counts
-- exist only for SKUs with a limit (see reserve_batch). Returns 'not_ready' or the number of holds moved.
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'not_ready' end
local base = P .. ':' .. E .. ':'
local expiry = base .. 'expiry'
local bucket = tonumber(ARGV[3])
local limited = {}  -- sku -> true when it has a per-customer limit
local moved = 0
for i = 4, #ARGV, 2 do
  local member, ending = ARGV[i], ARGV[i + 1]
  local rid, sku, cust, qs, idem = string.match(member, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
  if rid and redis.call('ZREM', expiry, member) == 1 then
    local q = tonumber(qs)
    local stock = base .. 'stock:' .. sku
    redis.call('HINCRBY', stock, 'held', -q)
    if ending == 'confirmed' then
      redis.call('HINCRBY', stock, 'sold', q)
    else
      local has_limit = limited[sku]
      if has_limit == nil then
        has_limit = tonumber(redis.call('HGET', stock, 'limit') or '-1') >= 0
        limited[sku] = has_limit
      end
      if has_limit then redis.call('HINCRBY', base .. 'customers:' .. sku, cust, -q) end
    end
    moved = moved + 1
  end
  if rid and ending == 'undo' then
    for b = bucket - 1, bucket do
      local idempotency = base .. 'idempotency:' .. b
      if redis.call('HGET', idempotency, idem) == rid then redis.call('HDEL', idempotency, idem) end
    end
  end
end
return moved
