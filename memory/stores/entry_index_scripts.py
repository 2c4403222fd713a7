"""The Lua scripts the entry index (:mod:`memory.stores.entry_index`) runs in Redis: each a step
that must be one (a reader never sees half of it) or one round trip."""

# Adds vectors to the chat's sum and their number to its counts, in one step (a reader never
# sees one without the other). KEYS: sum, meta. ARGV: the vectors' sum as packed little-endian
# doubles, how many vectors, how many of them are English passages, how many are bare ones.
ADD_TO_SUM = """
local current = redis.call('GET', KEYS[1])
if current then
  local parts = {}
  for i = 1, #ARGV[1], 8 do
    parts[#parts + 1] = struct.pack('<d', struct.unpack('<d', current, i) + struct.unpack('<d', ARGV[1], i))
  end
  redis.call('SET', KEYS[1], table.concat(parts))
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('HINCRBY', KEYS[2], 'english', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'bare', ARGV[4])
return redis.call('HINCRBY', KEYS[2], 'vectors', ARGV[2])
"""


# The vectors of some entries, concatenated (a vector not written reads as zeros), in one round
# trip; their ids too if asked ({ids, vectors}). KEYS: number → id hash, then the chat's vector
# strings in order. ARGV: bytes per vector, vectors per string, 1 to read the ids, then the entry
# numbers. (One script rather than a pipeline: redis-py checks a pipeline's scripts with an extra
# round trip every time.)
GATHER_VECTORS = """
local size, per_key = tonumber(ARGV[1]), tonumber(ARGV[2])
local parts = {}
for i = 4, #ARGV do
  local number = tonumber(ARGV[i])
  local held_in = math.floor(number / per_key)
  local start = (number - held_in * per_key) * size
  local part = redis.call('GETRANGE', KEYS[held_in + 2], start, start + size - 1)
  if #part < size then part = part .. string.rep('\\0', size - #part) end
  parts[#parts + 1] = part
end
if ARGV[3] == '0' then return table.concat(parts) end
return {redis.call('HMGET', KEYS[1], unpack(ARGV, 4)), table.concat(parts)}
"""
