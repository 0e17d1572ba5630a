-- After committing a stock change: set the exact values, fenced by the stock revision so that a
-- slower, older update never overwrites a newer one. Creates the SKU with MySQL's counters.
-- A limit appearing on a SKU that had none (stock_pre did not see it) answers 'rebuild' as there.
-- ARGV: prefix, epoch, sku, on_hand, limit (-1 = none), revision, held, sold
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'not_ready' end
local stock = P .. ':' .. E .. ':stock:' .. ARGV[3]
local revision = tonumber(ARGV[6])
local current = redis.call('HMGET', stock, 'revision', 'limit')
if not current[1] then
  redis.call('HSET', stock, 'on_hand', ARGV[4], 'limit', ARGV[5], 'revision', revision, 'held', ARGV[7],
    'sold', ARGV[8])
  return 1
end
if revision > tonumber(current[1]) then
  if tonumber(ARGV[5]) >= 0 and tonumber(current[2]) < 0 then
    redis.call('DEL', P .. ':ready')
    return 'rebuild'
  end
  redis.call('HSET', stock, 'on_hand', ARGV[4], 'limit', ARGV[5], 'revision', revision)
  return 1
end
return 0
