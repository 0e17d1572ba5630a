-- After committing a stock change: set the exact values, fenced by the stock revision so that a
-- slower, older update never overwrites a newer one. Creates the SKU with MySQL's counters.
-- ARGV: prefix, epoch, sku, on_hand, limit (-1 = none), revision, held, sold
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'NOTREADY' end
local skey = P .. ':' .. E .. ':s:' .. ARGV[3]
local rev = tonumber(ARGV[6])
local cur = redis.call('HGET', skey, 'rev')
if not cur then
  redis.call('HSET', skey, 'oh', ARGV[4], 'lim', ARGV[5], 'rev', rev, 'h', ARGV[7], 'so', ARGV[8])
  return 1
end
if rev > tonumber(cur) then
  redis.call('HSET', skey, 'oh', ARGV[4], 'lim', ARGV[5], 'rev', rev)
  return 1
end
return 0
