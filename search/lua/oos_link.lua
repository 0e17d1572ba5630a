-- Maintain the product <-> sku directory for a batch of catalog facts, atomically.
-- KEYS[1] hash product_id -> sku, KEYS[2] hash sku -> JSON array of product ids
-- ARGV: product_id, sku ('' = product removed), repeated.
local function members(sku)
  local raw = redis.call('HGET', KEYS[2], sku)
  if raw then return cjson.decode(raw) end
  return {}
end

local function store(sku, list)
  if #list == 0 then
    redis.call('HDEL', KEYS[2], sku)
  else
    redis.call('HSET', KEYS[2], sku, cjson.encode(list))
  end
end

for i = 1, #ARGV, 2 do
  local product = ARGV[i]
  local sku = ARGV[i + 1]
  local old = redis.call('HGET', KEYS[1], product)
  if old and old ~= sku then
    local kept = {}
    for _, p in ipairs(members(old)) do
      if p ~= product then kept[#kept + 1] = p end
    end
    store(old, kept)
  end
  if sku == '' then
    redis.call('HDEL', KEYS[1], product)
  else
    redis.call('HSET', KEYS[1], product, sku)
    local list = members(sku)
    local present = false
    for _, p in ipairs(list) do
      if p == product then present = true end
    end
    if not present then
      list[#list + 1] = product
      table.sort(list)
      store(sku, list)
    end
  end
end
return #ARGV / 2
