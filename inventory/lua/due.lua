-- Holds whose expiry is at or before now: flat list member, expires_at (member = "rid sku customer qty
-- idem"). Read only: the sweeper records the expiry in MySQL first, then applies it with apply_final.
-- ARGV: prefix, epoch, now, limit
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'not_ready' end
return redis.call('ZRANGEBYSCORE', P .. ':' .. E .. ':expiry', '-inf', ARGV[3], 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[4]))
