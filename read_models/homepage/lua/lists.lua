-- Store ranked lists, compare-and-set by revision, atomically.
-- ARGV[1] prefix, then per list: name, revision, value (opaque), shared (1: a document depends on it).
-- Keys: :lrev hash name -> revision, :lists hash name -> value, :gen (bumped when a shared list applied).
-- Returns how many lists applied.
local p = ARGV[1]
local applied, shared = 0, 0
for i = 2, #ARGV, 4 do
  local current = redis.call('HGET', p .. ':lrev', ARGV[i])
  if (not current) or tonumber(current) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', p .. ':lrev', ARGV[i], ARGV[i + 1])
    redis.call('HSET', p .. ':lists', ARGV[i], ARGV[i + 2])
    applied = applied + 1
    if ARGV[i + 3] == '1' then shared = shared + 1 end
  end
end
if shared > 0 then redis.call('INCR', p .. ':gen') end
return applied
