-- Compare-and-set stock states by revision, for a batch of SKUs, atomically.
-- KEYS[1] hash sku -> revision, KEYS[2] set of out-of-stock skus
-- ARGV: sku, in_stock (1|0), revision, repeated.
-- Returns, for every applied change, 2 * (its 1-based position) + (1 if its in_stock state flipped).
-- A revision not newer than the stored one is a duplicate or stale delivery and changes nothing.
-- A SKU seen for the first time was out of stock (no stock record): only 'in stock' flips it.
local applied = {}
for i = 1, #ARGV, 3 do
  local sku = ARGV[i]
  local revision = tonumber(ARGV[i + 2])
  local current = redis.call('HGET', KEYS[1], sku)
  if (not current) or tonumber(current) < revision then
    redis.call('HSET', KEYS[1], sku, ARGV[i + 2])
    local changed
    if ARGV[i + 1] == '1' then
      changed = redis.call('SREM', KEYS[2], sku)
      if not current then changed = 1 end
    else
      changed = redis.call('SADD', KEYS[2], sku)
      if not current then changed = 0 end
    end
    applied[#applied + 1] = 2 * ((i + 2) / 3) + changed
  end
end
return applied
