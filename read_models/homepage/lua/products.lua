-- Apply catalog changes to the homepage ingredients, compare-and-set by revision, atomically.
-- KEYS: none declared; every key is ARGV[1] (a hash-tagged prefix, one slot) plus a suffix.
-- ARGV[1] prefix, then per product: id, revision, removed (1|0), entry (opaque), leading category,
-- first seen (epoch s), discount (0..1), rating ('' when none).
-- Keys: :rev hash id -> revision (kept after removal: a stale upsert must not resurrect it),
-- :p hash id -> entry, :cat hash id -> leading category, :new zset (first seen), :deals zset
-- (discount), :rated:<category> zset (rating), :cats zset category -> rated products in it, :gen.
-- Returns how many changes applied; bumps :gen when any did.
local p = ARGV[1]
local applied = 0

local function unrate(id, category)
  if category and category ~= '' then
    local rated = p .. ':rated:' .. category
    redis.call('ZREM', rated, id)
    local left = redis.call('ZCARD', rated)
    if left == 0 then redis.call('ZREM', p .. ':cats', category)
    else redis.call('ZADD', p .. ':cats', left, category) end
  end
end

for i = 2, #ARGV, 8 do
  local id, revision = ARGV[i], tonumber(ARGV[i + 1])
  local current = redis.call('HGET', p .. ':rev', id)
  if (not current) or tonumber(current) < revision then
    redis.call('HSET', p .. ':rev', id, ARGV[i + 1])
    unrate(id, redis.call('HGET', p .. ':cat', id))
    if ARGV[i + 2] == '1' then
      redis.call('HDEL', p .. ':p', id)
      redis.call('HDEL', p .. ':cat', id)
      redis.call('ZREM', p .. ':new', id)
      redis.call('ZREM', p .. ':deals', id)
    else
      local category = ARGV[i + 4]
      redis.call('HSET', p .. ':p', id, ARGV[i + 3])
      redis.call('HSET', p .. ':cat', id, category)
      redis.call('ZADD', p .. ':new', 'NX', ARGV[i + 5], id)
      if tonumber(ARGV[i + 6]) > 0 then redis.call('ZADD', p .. ':deals', ARGV[i + 6], id)
      else redis.call('ZREM', p .. ':deals', id) end
      if category ~= '' and ARGV[i + 7] ~= '' then
        local rated = p .. ':rated:' .. category
        redis.call('ZADD', rated, ARGV[i + 7], id)
        redis.call('ZADD', p .. ':cats', redis.call('ZCARD', rated), category)
      end
    end
    applied = applied + 1
  end
end
if applied > 0 then redis.call('INCR', p .. ':gen') end
return applied
