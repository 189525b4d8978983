"""The Lua scripts of the Redis store: every write to a session is one of them.

Each session script runs over the keys of one session, in this order (Lua counts from 1)::

    KEYS[1] meta      hash    owner, incarnation, creation time, summary and its version
    KEYS[2] turns     list    one record per turn; the list index is the turn id
    KEYS[3] vectors   hash    turn id -> float32 bytes
    KEYS[4] entities  hash    field (normalized name or its digest) -> entity record
    KEYS[5] fold      string  the fold lease: who is summarizing the session now

All five share the session's hash tag, so a script runs in one slot of a Redis Cluster. A script
that writes gets the session's TTL in ``ARGV[1]`` (milliseconds, ``0`` for none) and gives the
four data keys that expiry (the lease keeps its own).

Entity changes travel as ``n`` then ``n`` triples (field, value read, value to write): the
script writes them only if every field still holds the value read (``""``: no value), so an
entity merge computed from a read is never applied over a concurrent one (the plan reads again
and retries). A value to write of ``""`` removes the field.
"""

from __future__ import annotations

__all__ = ["SCRIPTS"]

_PRELUDE = """
local function slide()
  local ttl = tonumber(ARGV[1])
  for i = 1, 4 do
    if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
  end
end
local function incarnation()
  return redis.call('HGET', KEYS[1], 'incarnation') or ''
end
local function is_live(expected)
  return redis.call('EXISTS', KEYS[1]) == 1 and (expected == '*' or incarnation() == expected)
end
local function entities_unchanged(at)
  for i = at + 1, at + 3 * tonumber(ARGV[at]), 3 do
    if (redis.call('HGET', KEYS[4], ARGV[i]) or '') ~= ARGV[i + 1] then return false end
  end
  return true
end
local function write_entities(at)
  for i = at + 1, at + 3 * tonumber(ARGV[at]), 3 do
    if ARGV[i + 2] == '' then
      redis.call('HDEL', KEYS[4], ARGV[i])
    else
      redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 2])
    end
  end
end
local function release(holder)
  if holder ~= '' and redis.call('GET', KEYS[5]) == holder then redis.call('DEL', KEYS[5]) end
end
"""

# ARGV[2]: owner or '', [3]: creation time, [4]: incarnation of a new session, [5]: the turn
# count the entity changes were read at (-1: no entity changes), [6]: how many records (n),
# [7..6+n]: the records, [7+n..]: entity changes.
# Returns {first id, owner, incarnation, 1 if this append gave the session its owner, summary};
# {-1, owner} when the session belongs to someone else; {-2} when the entities changed since
# they were read (nothing written: read again).
_APPEND = """
local owner = redis.call('HGET', KEYS[1], 'user')
if ARGV[2] ~= '' and owner and owner ~= ARGV[2] then return {-1, owner} end
local first = redis.call('LLEN', KEYS[2])
local records = tonumber(ARGV[6])
local changes = 7 + records
if tonumber(ARGV[5]) >= 0 then
  if first ~= tonumber(ARGV[5]) or not entities_unchanged(changes) then return {-2} end
end
if redis.call('EXISTS', KEYS[1]) == 0 then  -- a new session (or a new life of an expired one)
  redis.call('HSET', KEYS[1], 'incarnation', ARGV[4], 'created', ARGV[3])
  redis.call('DEL', KEYS[5])  -- a fold lease of its last life, outliving it by its own expiry
end
for i = 7, 6 + records do redis.call('RPUSH', KEYS[2], ARGV[i]) end
local claimed = 0
if not owner and ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'user', ARGV[2])
  owner = ARGV[2]
  claimed = 1
end
if tonumber(ARGV[5]) >= 0 then write_entities(changes) end
slide()
return {first, owner or '', incarnation(), claimed, redis.call('HGET', KEYS[1], 'summary') or ''}
"""

# Returns {1, incarnation, owner, turn count, summary}, or {0} for no such session.
_HEAD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
return {1, incarnation(), redis.call('HGET', KEYS[1], 'user') or '', redis.call('LLEN', KEYS[2]),
        redis.call('HGET', KEYS[1], 'summary') or ''}
"""

# ARGV[2]: incarnation ('*': any), [3..]: entity changes.
# Returns {1, owner} when written, {0} when the session is gone or another incarnation, {-2}
# when the entities changed since they were read.
_MERGE_ENTITIES = """
if not is_live(ARGV[2]) then return {0} end
if not entities_unchanged(3) then return {-2} end
write_entities(3)
slide()
return {1, redis.call('HGET', KEYS[1], 'user') or ''}
"""

# ARGV[2]: incarnation ('*': any), [3]: expected version, [4]: new version, [5]: summary
# record, [6]: lease holder to release ('' none), [7..]: entity changes.
# Returns {1, owner} when written; {0} when the version, session or incarnation differs; {-2}
# when the entities changed since they were read (nothing written, the lease kept).
_SET_SUMMARY = """
if not is_live(ARGV[2]) then return {0} end
local current = tonumber(redis.call('HGET', KEYS[1], 'summary_version') or '0')
if current ~= tonumber(ARGV[3]) then
  release(ARGV[6])
  return {0}
end
if not entities_unchanged(7) then return {-2} end
redis.call('HSET', KEYS[1], 'summary', ARGV[5], 'summary_version', ARGV[4])
write_entities(7)
release(ARGV[6])
slide()
return {1, redis.call('HGET', KEYS[1], 'user') or ''}
"""

# ARGV[1]: incarnation, [2]: holder, [3]: lease in milliseconds. Returns 1 when taken.
_ACQUIRE_FOLD = """
if not is_live(ARGV[1]) then return 0 end
if redis.call('SET', KEYS[5], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

# ARGV[1]: holder, [2]: milliseconds to keep it (0: release).
_RELEASE_FOLD = """
if redis.call('GET', KEYS[5]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[5], ARGV[2])
else
  redis.call('DEL', KEYS[5])
end
return 1
"""

# ARGV[2]: incarnation ('*': any), [3..]: turn id, vector, ... (a turn keeps its first vector).
# Returns {1, owner} when the session exists (and is that incarnation), else {0}.
_PUT_VECTORS = """
if not is_live(ARGV[2]) then return {0} end
for i = 3, #ARGV, 2 do redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) end
slide()
return {1, redis.call('HGET', KEYS[1], 'user') or ''}
"""

# ARGV[1]: the owner the session must have, or '' for any; ARGV[2]: the incarnation it must
# be, or '*' for any. Returns {1, turns, vectors, summaries, entities, owner} when deleted; {0}
# when there is no such session (or it is another incarnation), {0, owner} when it has another
# owner ('': none yet).
_DELETE = """
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) == 0 then return {0} end
local owner = redis.call('HGET', KEYS[1], 'user') or ''
if ARGV[1] ~= '' and owner ~= ARGV[1] then return {0, owner} end
if ARGV[2] ~= '*' and (redis.call('HGET', KEYS[1], 'incarnation') or '') ~= ARGV[2] then
  return {0}
end
local version = tonumber(redis.call('HGET', KEYS[1], 'summary_version') or '0')
local counts = {1, redis.call('LLEN', KEYS[2]), redis.call('HLEN', KEYS[3]),
                version > 0 and 1 or 0, redis.call('HLEN', KEYS[4]), owner}
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return counts
"""

# Key rotation replaces a value only if it is still the one read, and never changes a key's
# expiry. KEYS[1]: a list; ARGV: index, old value, new value, ... Returns how many it replaced.
_REENCRYPT_LIST = """
local replaced = 0
for i = 1, #ARGV, 3 do
  if redis.call('LINDEX', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('LSET', KEYS[1], ARGV[i], ARGV[i + 2])
    replaced = replaced + 1
  end
end
return replaced
"""

# KEYS[1]: a hash; ARGV: field, old value, new field, new value, ... A value moving to another
# field does not replace one already there (written later, under the newest key).
_REENCRYPT_HASH = """
local replaced = 0
for i = 1, #ARGV, 4 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    if ARGV[i + 2] == ARGV[i] then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 3])
    else
      redis.call('HSETNX', KEYS[1], ARGV[i + 2], ARGV[i + 3])
      redis.call('HDEL', KEYS[1], ARGV[i])
    end
    replaced = replaced + 1
  end
end
return replaced
"""

# KEYS[1]: the key check; ARGV[1]: the value read, ARGV[2]: the re-encrypted one.
_REENCRYPT_STRING = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

#: Every script by name; session scripts are prefixed with the shared functions.
SCRIPTS = {
    "append": _PRELUDE + _APPEND,
    "head": _PRELUDE + _HEAD,
    "merge_entities": _PRELUDE + _MERGE_ENTITIES,
    "set_summary": _PRELUDE + _SET_SUMMARY,
    "acquire_fold": _PRELUDE + _ACQUIRE_FOLD,
    "release_fold": _RELEASE_FOLD,
    "put_vectors": _PRELUDE + _PUT_VECTORS,
    "delete": _DELETE,
    "reencrypt_list": _REENCRYPT_LIST,
    "reencrypt_hash": _REENCRYPT_HASH,
    "reencrypt_string": _REENCRYPT_STRING,
}
