-- Before committing a stock change: make the fast path at least as strict as old and new values
-- (on-hand can only go down here, a limit only tighten), so no crash window can oversell.
-- Introducing a limit on a SKU that had none needs its per-customer counts, which are kept only for
-- SKUs with a limit: stop all decisions (drop 'ready') and answer 'REBUILD' (the engine reconciles,
-- reading the committed limit and the counts from MySQL).
-- ARGV: prefix, epoch, sku, on_hand, limit (-1 = none)
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'NOTREADY' end
local skey = P .. ':' .. E .. ':s:' .. ARGV[3]
local st = redis.call('HMGET', skey, 'oh', 'lim')
if not st[1] then return 0 end
local oh, lim = tonumber(ARGV[4]), tonumber(ARGV[5])
local cur = tonumber(st[2])
if lim >= 0 and cur < 0 then
  redis.call('DEL', P .. ':ready')
  return 'REBUILD'
end
if oh < tonumber(st[1]) then redis.call('HSET', skey, 'oh', oh) end
if lim >= 0 and lim < cur then redis.call('HSET', skey, 'lim', lim) end
return 1
