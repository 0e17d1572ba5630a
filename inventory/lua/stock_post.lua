-- After committing a stock change: set the exact values, fenced by the stock revision so that a
-- slower, older update never overwrites a newer one. Creates the SKU with MySQL's counters.
-- A limit appearing on a SKU that had none (stock_pre did not see it) answers 'REBUILD' as there.
-- ARGV: prefix, epoch, sku, on_hand, limit (-1 = none), revision, held, sold
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'NOTREADY' end
local skey = P .. ':' .. E .. ':s:' .. ARGV[3]
local rev = tonumber(ARGV[6])
local cur = redis.call('HMGET', skey, 'rev', 'lim')
if not cur[1] then
  redis.call('HSET', skey, 'oh', ARGV[4], 'lim', ARGV[5], 'rev', rev, 'h', ARGV[7], 'so', ARGV[8])
  return 1
end
if rev > tonumber(cur[1]) then
  if tonumber(ARGV[5]) >= 0 and tonumber(cur[2]) < 0 then
    redis.call('DEL', P .. ':ready')
    return 'REBUILD'
  end
  redis.call('HSET', skey, 'oh', ARGV[4], 'lim', ARGV[5], 'rev', rev)
  return 1
end
return 0
