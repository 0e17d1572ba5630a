-- Count storefront activity once per event into hourly buckets, atomically.
-- ARGV[1] prefix, ARGV[2] oldest bucket still counted, ARGV[3] hours kept, ARGV[4] seconds per bucket,
-- then per hit: event id, product id, region, weight, bucket.
-- An event id is remembered (:seen:<id>) until its bucket leaves the window, so a redelivery counts
-- nothing; a bucket (:act:<region>:<bucket> zset, also under the region '') expires with the window.
-- Returns how many hits counted. It does not bump :gen: activity moves all the time, and a document
-- (whose trending falls back to it) follows it by its maximum age instead of a rebuild per batch.
local p, oldest, hours, width = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local counted = 0
for i = 5, #ARGV, 5 do
  local bucket = tonumber(ARGV[i + 4])
  local until_ts = (bucket + hours) * width
  if bucket >= oldest and redis.call('SET', p .. ':seen:' .. ARGV[i], '1', 'NX', 'EXAT', until_ts) then
    local regions = { ARGV[i + 2] }
    if ARGV[i + 2] ~= '' then regions[2] = '' end
    for _, region in ipairs(regions) do
      local key = p .. ':act:' .. region .. ':' .. ARGV[i + 4]
      redis.call('ZINCRBY', key, ARGV[i + 3], ARGV[i + 1])
      redis.call('EXPIREAT', key, until_ts)
    end
    counted = counted + 1
  end
end
return counted
