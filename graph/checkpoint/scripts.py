"""The checkpointer's Lua scripts, and the keys they work on.

One thread's keys, all carrying the thread id as a Redis Cluster hash tag so that they
share a slot and one script can span them (``<ns>`` is the percent-quoted checkpoint
namespace, ``""`` for the root graph):

    <prefix>:{<thread>}:checkpoints            ZSET, score 0, members ``<ns>:<checkpoint id>``:
                                              lexicographic order is time order within a namespace
    <prefix>:{<thread>}:checkpoint:<ns>:<id>   HASH: the checkpoint without its channel values,
                                              its metadata, parent id, source and run id, the
                                              ``values`` it refers to (their blob fields, space
                                              separated), and one ``write:<task id>:<idx>``
                                              field per pending write
    <prefix>:{<thread>}:blobs                  HASH ``<ns>:<channel>:<version>`` → channel value

As in the Postgres saver, a channel value is stored once per version, so a checkpoint
that leaves a channel unchanged costs nothing for it. The thread id, namespaces, channel
names and versions are percent-quoted (no ``{``, ``}``, ``:`` or space left), so every
key, member and field splits back unambiguously, whatever the ids contain. Values are
``self.serde`` output, stored as bytes.

Retention: a turn is one run of the graph, started by a root checkpoint whose metadata
``source`` is ``"input"``. When a turn starts, the checkpoints older than the start of
the ``keep_turns``-th most recent turn are dropped with their pending writes, and so are
the channel values no remaining checkpoint refers to. ``keep_turns=None`` keeps all.

``put``, ``put_writes`` and ``get_tuple`` are one script each (a turn start's pruning runs
inside its ``put``). A script finds a checkpoint's hash from the thread's other keys; all
of them share the thread's slot.
"""

# A checkpoint's ``values`` field lists the blob fields of its channel values, space separated
# (quoted names and versions hold no space). Walked with string.find: gmatch costs 2-3x more.
FIELDS = """
local function each_field(list, visit)
  local from = 1
  while from <= #list do
    local space = string.find(list, ' ', from, true) or #list + 1
    visit(string.sub(list, from, space - 1))
    from = space + 1
  end
end
"""

# Retention, for the scripts that prune. A member is ``<quoted ns>:<checkpoint id>`` and its
# checkpoint's key is ``records .. member``; root members start with ':'. A strategy returns
# the thread's kept and doomed members (both empty when nothing is doomed).
PRUNING = FIELDS + """
local function namespace_of(member)
  return string.sub(member, 1, string.find(member, ':', 1, true) - 1)
end

local function id_of(member)
  return string.sub(member, string.find(member, ':', 1, true) + 1)
end

-- Byte order, as Python and ZRANGEBYLEX compare (Lua's < follows the server's locale).
local function precedes(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function split(members, keeps)
  local kept, doomed = {}, {}
  for i, member in ipairs(members) do
    if keeps(i, member) then kept[#kept + 1] = member else doomed[#doomed + 1] = member end
  end
  return kept, doomed
end

local strategies = {}

function strategies.delete(index)
  return {}, redis.call('ZRANGE', index, 0, -1)
end

function strategies.keep_latest(index)
  local members = redis.call('ZRANGE', index, 0, -1)
  return split(members, function(i, member)
    return i == #members or namespace_of(members[i + 1]) ~= namespace_of(member)
  end)
end

function strategies.delete_runs(index, records, run_ids)
  local doomed_runs = {}
  for _, run_id in ipairs(run_ids) do doomed_runs[run_id] = true end
  return split(redis.call('ZRANGE', index, 0, -1), function(_, member)
    return not doomed_runs[redis.call('HGET', records .. member, 'run_id')]
  end)
end

-- Everything older than the start of the keep_turns-th newest turn, once an older turn exists.
-- Root members are split by ZRANGEBYLEX; other namespaces' (subgraphs) by their ids' bytes.
function strategies.keep_turns(index, records, options)
  local wanted, starts, oldest_kept = tonumber(options[1]), 0, nil
  local roots = redis.call('ZRANGEBYLEX', index, '[:', '(;')
  for i = #roots, 1, -1 do
    if redis.call('HGET', records .. roots[i], 'source') == 'input' then
      starts = starts + 1
      if starts == wanted then oldest_kept = roots[i] elseif starts > wanted then break end
    end
  end
  if starts <= wanted then return {}, {} end
  local kept = redis.call('ZRANGEBYLEX', index, '[' .. oldest_kept, '(;')
  local doomed = redis.call('ZRANGEBYLEX', index, '[:', '(' .. oldest_kept)
  local oldest_id = id_of(oldest_kept)
  for _, range in ipairs({{'-', '(:'}, {'(;', '+'}}) do
    for _, member in ipairs(redis.call('ZRANGEBYLEX', index, range[1], range[2])) do
      local list = precedes(id_of(member), oldest_id) and doomed or kept
      list[#list + 1] = member
    end
  end
  return kept, doomed
end

-- Drops the doomed checkpoints with their pending writes, then the values no kept one lists.
local function prune(index, blobs, records, strategy, options)
  local kept, doomed = strategies[strategy](index, records, options)
  if #doomed == 0 then return 0 end
  for _, member in ipairs(doomed) do
    redis.call('DEL', records .. member)
    redis.call('ZREM', index, member)
  end
  local listed = {}
  local function list(field) listed[field] = true end
  for _, member in ipairs(kept) do
    local fields = redis.call('HGET', records .. member, 'values')
    -- Saved before checkpoints listed their values: every value stays while it is kept.
    if not fields then return #doomed end
    each_field(fields, list)
  end
  for _, field in ipairs(redis.call('HKEYS', blobs)) do
    if not listed[field] then redis.call('HDEL', blobs, field) end
  end
  return #doomed
end
"""

# KEYS: index, blobs. ARGV: records, strategy, its options.
PRUNE = PRUNING + """
return prune(KEYS[1], KEYS[2], ARGV[1], ARGV[2], {unpack(ARGV, 3)})
"""

# KEYS: index, blobs, checkpoint. ARGV: member, records, keep_turns ('' = no pruning), the
# record's fields (checkpoint, metadata, parent, source, run_id, values), then the new values'
# field/value items.
PUT = PRUNING + """
redis.call('HSET', KEYS[3], 'checkpoint', ARGV[4], 'metadata', ARGV[5], 'parent', ARGV[6],
           'source', ARGV[7], 'run_id', ARGV[8], 'values', ARGV[9])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
for i = 10, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[3] ~= '' then prune(KEYS[1], KEYS[2], ARGV[2], 'keep_turns', {ARGV[3]}) end
return 1
"""

# KEYS: checkpoint. ARGV: how many of the items after it are set only if absent, then the
# writes' field/value items.
PUT_WRITES = """
local last_if_absent = 1 + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call(i <= last_if_absent and 'HSETNX' or 'HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"""

# KEYS: index, blobs. ARGV: records, member ('' = the newest within the lex range ARGV[3],
# ARGV[4]). Returns the member, its record, and the values its record lists, in that order.
GET = FIELDS + """
local member = ARGV[2]
if member == '' then
  member = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4], 'LIMIT', 0, 1)[1]
  if not member then return false end
end
local key = ARGV[1] .. member
local values = {}
each_field(redis.call('HGET', key, 'values') or '', function(field)
  values[#values + 1] = redis.call('HGET', KEYS[2], field)
end)
return {member, redis.call('HGETALL', key), values}
"""

# KEYS: the thread's hashes holding values (its blobs, checkpoint records). ARGV: triples of a
# key's place in KEYS, a field and its new value, set only where the field still is (a turn's
# pruning may have dropped it since it was read: no partial record is made again).
REWRITE = """
for i = 1, #ARGV, 3 do
  local key = KEYS[tonumber(ARGV[i])]
  if redis.call('HEXISTS', key, ARGV[i + 1]) == 1 then redis.call('HSET', key, ARGV[i + 1], ARGV[i + 2]) end
end
return 1
"""

SCRIPTS = (PRUNE, PUT, PUT_WRITES, GET, REWRITE)
