-- Store trending lists whose revision is newer than the stored one, atomically per batch.
-- KEYS[1] hash list key -> revision, KEYS[2] hash list key -> encoded list
-- ARGV: list key, revision, encoded list, repeated. Returns how many lists were written.
local written = 0
for i = 1, #ARGV, 3 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if (not current) or tonumber(current) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    written = written + 1
  end
end
return written
