-- Apply end states decided durably in MySQL to the fast path. Idempotent: a hold is its member
-- "rid sku customer qty idem_key" in the expiry index, and only the call that removes it moves stock.
-- ARGV: prefix, epoch, then pairs: member, final ('confirmed' | 'released' | 'expired' | 'undo').
-- 'undo' drops a hold that never became durable and forgets its idempotency key, so that the
-- client's retry is decided afresh. Returns 'NOTREADY' or the number of holds moved.
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'NOTREADY' end
local base = P .. ':' .. E .. ':'
local xkey = base .. 'x'
local moved = 0
for i = 3, #ARGV, 2 do
  local member, final = ARGV[i], ARGV[i + 1]
  local rid, sku, cust, qs, idem = string.match(member, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
  if rid and redis.call('ZREM', xkey, member) == 1 then
    local q = tonumber(qs)
    redis.call('HINCRBY', base .. 's:' .. sku, 'h', -q)
    if final == 'confirmed' then
      redis.call('HINCRBY', base .. 's:' .. sku, 'so', q)
    else
      redis.call('HINCRBY', base .. 'c:' .. sku, cust, -q)
    end
    moved = moved + 1
  end
  if rid and final == 'undo' then
    local ikey = base .. 'i:' .. idem
    if redis.call('GET', ikey) == rid then redis.call('DEL', ikey) end
  end
end
return moved
