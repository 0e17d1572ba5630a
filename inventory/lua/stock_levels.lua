-- Read several SKUs' counters in one call (a cart's availability): ARGV prefix, epoch, sku1, sku2, ...
-- Returns 'not_ready' when this epoch's counters are not built, else a flat list: on_hand, held, sold,
-- limit per SKU, in order (-1 for every field of a SKU with no stock record). Read-only.
local P, E = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':ready') ~= E then return 'not_ready' end
local base = P .. ':' .. E .. ':stock:'
local out = {}
for i = 3, #ARGV do
  local v = redis.call('HMGET', base .. ARGV[i], 'on_hand', 'held', 'sold', 'limit')
  if v[1] then
    out[#out + 1] = tonumber(v[1]); out[#out + 1] = tonumber(v[2])
    out[#out + 1] = tonumber(v[3]); out[#out + 1] = tonumber(v[4])
  else
    out[#out + 1] = -1; out[#out + 1] = -1; out[#out + 1] = -1; out[#out + 1] = -1
  end
end
return out
