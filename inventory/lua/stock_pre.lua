-- Before committing a stock change: make the fast path at least as strict as old and new values
-- (on-hand can only go down here, a limit only tighten), so no crash window can oversell.
-- Introducing a limit on a SKU that had none needs its per-customer counts, which are kept only for
-- SKUs with a limit: stop all decisions (drop 'ready') and answer 'rebuild' (the engine reconciles,
-- reading the committed limit and the counts from MySQL).
-- ARGV: prefix, epoch, sku, on_hand, limit (-1 = none)
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'not_ready' end
local stock = P .. ':' .. E .. ':stock:' .. ARGV[3]
local current = redis.call('HMGET', stock, 'on_hand', 'limit')
if not current[1] then return 0 end
local on_hand, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local current_limit = tonumber(current[2])
if limit >= 0 and current_limit < 0 then
  redis.call('DEL', P .. ':ready')
  return 'rebuild'
end
if on_hand < tonumber(current[1]) then redis.call('HSET', stock, 'on_hand', on_hand) end
if limit >= 0 and limit < current_limit then redis.call('HSET', stock, 'limit', limit) end
return 1
