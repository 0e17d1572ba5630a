-- Apply end states decided durably in MySQL to the fast path. Idempotent: a hold is its member
-- "rid sku customer qty idem_key" in the expiry index, and only the call that removes it moves stock.
-- ARGV: prefix, epoch, idempotency bucket (now), then pairs: member, final ('confirmed' | 'released' |
-- 'expired' | 'undo'). 'undo' drops a hold that never became durable and forgets its idempotency key
-- (current or previous bucket), so that the client's retry is decided afresh. Per-customer counts
-- exist only for SKUs with a limit (see reserve_batch). Returns 'NOTREADY' or the number of holds moved.
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'NOTREADY' end
local base = P .. ':' .. E .. ':'
local xkey = base .. 'x'
local bucket = tonumber(ARGV[3])
local limited = {}  -- sku -> true when it has a per-customer limit
local moved = 0
for i = 4, #ARGV, 2 do
  local member, final = ARGV[i], ARGV[i + 1]
  local rid, sku, cust, qs, idem = string.match(member, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
  if rid and redis.call('ZREM', xkey, member) == 1 then
    local q = tonumber(qs)
    local skey = base .. 's:' .. sku
    redis.call('HINCRBY', skey, 'h', -q)
    if final == 'confirmed' then
      redis.call('HINCRBY', skey, 'so', q)
    else
      local lim = limited[sku]
      if lim == nil then
        lim = tonumber(redis.call('HGET', skey, 'lim') or '-1') >= 0
        limited[sku] = lim
      end
      if lim then redis.call('HINCRBY', base .. 'c:' .. sku, cust, -q) end
    end
    moved = moved + 1
  end
  if rid and final == 'undo' then
    for b = bucket - 1, bucket do
      local ikey = base .. 'i:' .. b
      if redis.call('HGET', ikey, idem) == rid then redis.call('HDEL', ikey, idem) end
    end
  end
end
return moved
