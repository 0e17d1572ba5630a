-- Before committing a stock change: make the fast path at least as strict as old and new values
-- (on-hand can only go down here, a limit only tighten), so no crash window can oversell. An on-hand
-- below what Redis has held and sold (holds decided but not yet in MySQL included) is refused with
-- 'below:<held>:<sold>' and changes nothing.
-- Introducing a limit on a SKU that had none needs its per-customer counts, which are kept only for
-- SKUs with a limit: stop all decisions (drop 'ready') and answer 'rebuild' (the engine reconciles,
-- reading the committed limit and the counts from MySQL).
-- ARGV: prefix, epoch, sku, on_hand, limit (-1 = none)
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'not_ready' end
local stock = P .. ':' .. E .. ':stock:' .. ARGV[3]
local current = redis.call('HMGET', stock, 'on_hand', 'limit', 'held', 'sold')
if not current[1] then return 0 end
local on_hand, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local current_limit = tonumber(current[2])
local held, sold = tonumber(current[3]), tonumber(current[4])
if on_hand < held + sold then return 'below:' .. held .. ':' .. sold end
if limit >= 0 and current_limit < 0 then
  redis.call('DEL', P .. ':ready')
  return 'rebuild'
end
if on_hand < tonumber(current[1]) then redis.call('HSET', stock, 'on_hand', on_hand) end
if limit >= 0 and limit < current_limit then redis.call('HSET', stock, 'limit', limit) end
return 1
