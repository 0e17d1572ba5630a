-- Keep each SKU's newest in-stock flag, compare-and-set by revision, atomically.
-- ARGV[1] prefix, then per SKU: sku, in_stock (1|0), revision. Key :stock hash sku -> "revision:flag".
-- Returns how many flipped (a first-seen SKU was not in stock); bumps :gen when any did.
local p = ARGV[1]
local flipped = 0
for i = 2, #ARGV, 3 do
  local current = redis.call('HGET', p .. ':stock', ARGV[i])
  local revision, was = -1, '0'
  if current then
    local sep = string.find(current, ':', 1, true)
    revision, was = tonumber(string.sub(current, 1, sep - 1)), string.sub(current, sep + 1)
  end
  if revision < tonumber(ARGV[i + 2]) then
    redis.call('HSET', p .. ':stock', ARGV[i], ARGV[i + 2] .. ':' .. ARGV[i + 1])
    if was ~= ARGV[i + 1] then flipped = flipped + 1 end
  end
end
if flipped > 0 then redis.call('INCR', p .. ':gen') end
return flipped
