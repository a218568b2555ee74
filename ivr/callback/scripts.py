"""The Lua scripts of the callback store, one source each, registered once by
``ivr.callback.store.CallbackStore``.

Every script gets its fixed keys in KEYS. The per-number and per-id record keys
(``ivr:cb:n:<number>``, ``ivr:cb:id:<id>``) cannot all be declared in KEYS, so
their prefixes come in ARGV (``ivr.redisdb.keys``) and the scripts build the keys:
that is why the store runs on a standalone Redis (or a Sentinel-managed one),
never on Redis Cluster.
"""

from __future__ import annotations

# Lua helpers, prepended to the scripts that need them.
SPLIT = """
local function split(s)
  local t, i = {}, 1
  while true do
    local j = string.find(s, '\t', i, true)
    if not j then t[#t + 1] = string.sub(s, i); return t end
    t[#t + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end
"""

# The ready line's order: emergencies first, then the earliest deadline. Must
# equal ivr.callback.policy.rank (tests/test_callback_scripts.py checks).
RANK = """
local function rank(kind, deadline)
  return (kind == 'emergency' and 0 or 1) * 1e10 + deadline
end
"""

# KEYS: pending ready claims seq closed ids open-by-first closed-by-first
# ARGV[1]: open record prefix; ARGV[2]: closed record prefix; ARGV[3..]: one
#   tab-separated record per missed call, in order, with the fields
#   number now started kind reason flow step wait message not_before
#   deadline_emergency deadline_courtesy deadline_ordinary misdial
# Returns (what, id, calls) per record: recorded | merged | duplicate | misdial.
RECORD = SPLIT + RANK + """
local open_prefix, closed_prefix = ARGV[1], ARGV[2]
local order = {ordinary=0, courtesy=1, emergency=2}
local function record(A)
local number, now, started = A[1], tonumber(A[2]), tonumber(A[3])
local kind, reason = A[4], A[5]
local key = open_prefix .. number
local dl = {emergency=tonumber(A[11]), courtesy=tonumber(A[12]), ordinary=tonumber(A[13])}
if A[14] == '1' then
  local id = redis.call('INCR', KEYS[4])
  redis.call('HSET', closed_prefix .. id, 'id', id, 'number', number, 'state', 'closed', 'kind', kind,
    'reason', reason, 'first_at', started, 'last_at', started, 'calls', 1, 'attempts', 0, 'flow', A[6],
    'step', A[7], 'wait_s', A[8], 'closed_at', now, 'closed_reason', 'misdial', 'deadline', started)
  redis.call('ZADD', KEYS[5], now, id)
  redis.call('ZADD', KEYS[8], started, id)
  return {'misdial', id, 1}
end
local cur = redis.call('HMGET', key, 'id', 'last_at', 'kind', 'first_at', 'state', 'calls')
if cur[1] then
  if tonumber(cur[2]) >= started then return {'duplicate', cur[1], tonumber(cur[6])} end
  local k = cur[3]
  if order[kind] > order[k] then
    -- a higher kind has a shorter deadline: it still runs from the first call
    k = kind
    local deadline = tonumber(cur[4]) + dl[k]
    redis.call('HSET', key, 'kind', k, 'deadline', deadline)
    if cur[5] == 'open' then
      local score = rank(k, deadline)
      if redis.call('ZSCORE', KEYS[2], number) then redis.call('ZADD', KEYS[2], score, number) end
      if k == 'emergency' and redis.call('ZREM', KEYS[1], number) == 1 then
        redis.call('ZADD', KEYS[2], score, number)
      end
    end
  end
  -- the count read above, written in the same HSET: one command less per merged call
  local calls = (tonumber(cur[6]) or 0) + 1
  if A[9] ~= '' then
    redis.call('HSET', key, 'last_at', started, 'last_reason', reason, 'calls', calls, 'message', A[9])
  else
    redis.call('HSET', key, 'last_at', started, 'last_reason', reason, 'calls', calls)
  end
  return {'merged', cur[1], calls}
end
local id = redis.call('INCR', KEYS[4])
local deadline = started + dl[kind]
redis.call('HSET', key, 'id', id, 'number', number, 'state', 'open', 'kind', kind, 'reason', reason,
  'first_at', started, 'last_at', started, 'calls', 1, 'attempts', 0, 'flow', A[6], 'step', A[7],
  'wait_s', A[8], 'message', A[9], 'deadline', deadline)
redis.call('HSET', KEYS[6], id, number)
redis.call('ZADD', KEYS[7], started, number)
local nb = tonumber(A[10])
if nb <= now then
  redis.call('ZADD', KEYS[2], rank(kind, deadline), number)
else
  redis.call('ZADD', KEYS[1], nb, number)
end
return {'recorded', id, 1}
end
local out = {}
for i = 3, #ARGV do
  local r = record(split(ARGV[i]))
  out[#out + 1] = r[1]; out[#out + 1] = r[2]; out[#out + 1] = r[3]
end
return out
"""

# KEYS: pending ready claims
# ARGV: now lease_until owner count open_prefix
# Moves due callbacks to the ready line, gives back claims whose holder died,
# claims up to ``count``. Returns {recovered, number...}.
CLAIM = RANK + """
local now, lease, owner, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local open_prefix = ARGV[5]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 500)
for _, number in ipairs(due) do
  local h = redis.call('HMGET', open_prefix .. number, 'kind', 'deadline')
  redis.call('ZREM', KEYS[1], number)
  if h[1] then redis.call('ZADD', KEYS[2], rank(h[1], tonumber(h[2])), number) end
end
local recovered = 0
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
for _, number in ipairs(dead) do
  local key = open_prefix .. number
  local h = redis.call('HMGET', key, 'kind', 'deadline')
  redis.call('ZREM', KEYS[3], number)
  if h[1] then
    redis.call('HSET', key, 'state', 'open', 'owner', '')
    redis.call('HINCRBY', key, 'recovered', 1)
    redis.call('ZADD', KEYS[2], rank(h[1], tonumber(h[2])), number)
    recovered = recovered + 1
  end
end
local out = {recovered}
if n <= 0 then return out end
local popped = redis.call('ZPOPMIN', KEYS[2], n)
for i = 1, #popped, 2 do
  local number = popped[i]
  redis.call('HSET', open_prefix .. number, 'state', 'assigned', 'owner', owner, 'claimed_at', now)
  redis.call('ZADD', KEYS[3], lease, number)
  table.insert(out, number)
end
return out
"""

# KEYS: claims
# ARGV: lease_until owner open_prefix number...
# Extends the lease of attempts still under way; only the owner's claims.
RENEW = """
local n = 0
for i = 4, #ARGV do
  if redis.call('HGET', ARGV[3] .. ARGV[i], 'owner') == ARGV[2] then
    n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i])
  end
end
return n
"""

# KEYS: pending claims closed ids open-by-first closed-by-first
# ARGV: number owner outcome seat now next_at('' = close) close_reason open_prefix closed_prefix
# Returns {1, 'closed' | 'rescheduled'}, or {0, ''} when ``owner`` no longer holds it.
FINISH = """
local key = ARGV[8] .. ARGV[1]
if redis.call('HGET', key, 'owner') ~= ARGV[2] then return {0, ''} end
redis.call('ZREM', KEYS[2], ARGV[1])
local attempts = ARGV[3] == 'seat_no_answer' and tonumber(redis.call('HGET', key, 'attempts'))
  or redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'last_outcome', ARGV[3], 'last_seat', ARGV[4], 'last_attempt_at', ARGV[5], 'owner', '')
redis.call('HDEL', key, 'call_channel', 'call_seat')
if redis.call('HGET', key, 'first_callback_at') == false and ARGV[3] ~= 'seat_no_answer' then
  redis.call('HSET', key, 'first_callback_at', ARGV[5])
end
if ARGV[6] == '' then
  local id = redis.call('HGET', key, 'id')
  redis.call('HSET', key, 'state', 'closed', 'closed_at', ARGV[5], 'closed_reason', ARGV[7])
  redis.call('ZADD', KEYS[6], redis.call('HGET', key, 'first_at') or ARGV[5], id)
  redis.call('RENAME', key, ARGV[9] .. id)
  redis.call('ZADD', KEYS[3], ARGV[5], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZREM', KEYS[5], ARGV[1])
  return {1, 'closed'}
end
redis.call('HSET', key, 'state', 'open')
redis.call('ZADD', KEYS[1], ARGV[6], ARGV[1])
return {1, 'rescheduled'}
"""

# KEYS: pending ready claims closed ids open-by-first closed-by-first
# ARGV: number now reason open_prefix closed_prefix
# Returns {1, id} when closed; {0, 'assigned'} when being dialled (closed after
# the attempt); {0, ''} when there is no open callback for the number.
CLOSE = """
local key = ARGV[4] .. ARGV[1]
local st = redis.call('HGET', key, 'state')
if not st then return {0, ''} end
if st == 'assigned' then
  redis.call('HSET', key, 'close_after_attempt', ARGV[3])
  return {0, 'assigned'}
end
local id = redis.call('HGET', key, 'id')
redis.call('ZREM', KEYS[1], ARGV[1]); redis.call('ZREM', KEYS[2], ARGV[1]); redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', key, 'state', 'closed', 'closed_at', ARGV[2], 'closed_reason', ARGV[3])
redis.call('ZADD', KEYS[7], redis.call('HGET', key, 'first_at') or ARGV[2], id)
redis.call('RENAME', key, ARGV[5] .. id)
redis.call('ZADD', KEYS[4], ARGV[2], id)
redis.call('HDEL', KEYS[5], id)
redis.call('ZREM', KEYS[6], ARGV[1])
return {1, id}
"""

# KEYS: - ; ARGV: number owner channel seat open_prefix
# The attempt's call is up (the seat answered): where it is, so a leader that
# takes the claim over can ask Asterisk before dialling the citizen again.
IN_CALL = """
local key = ARGV[5] .. ARGV[1]
if redis.call('HGET', key, 'owner') ~= ARGV[2] then return 0 end
redis.call('HSET', key, 'call_channel', ARGV[3], 'call_seat', ARGV[4])
return 1
"""

# KEYS: pending ready claims closed ids open-by-first closed-by-first
# ARGV: number answered_at now reason open_prefix closed_prefix
# The PBX saw this number answered at ``answered_at``: its open callback is
# closed when every missed call merged into it came before (last_at <= answered_at).
# One step against CLAIM: either it is closed before any scheduler claims it (nobody
# dials), or it is being dialled already and closes after that attempt.
# Returns {1, id} closed; {0, 'assigned', id} being dialled (closed after the
# attempt); {0, 'later', id} a missed call after the answer keeps it open;
# {0, ''} no open callback.
CLOSE_ANSWERED = """
local key = ARGV[5] .. ARGV[1]
local h = redis.call('HMGET', key, 'state', 'last_at', 'id')
if not h[1] then return {0, ''} end
if tonumber(h[2]) > tonumber(ARGV[2]) then return {0, 'later', h[3]} end
if h[1] == 'assigned' then
  redis.call('HSET', key, 'close_after_attempt', ARGV[4])
  return {0, 'assigned', h[3]}
end
local id = h[3]
redis.call('ZREM', KEYS[1], ARGV[1]); redis.call('ZREM', KEYS[2], ARGV[1]); redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', key, 'state', 'closed', 'closed_at', ARGV[3], 'closed_reason', ARGV[4])
redis.call('ZADD', KEYS[7], redis.call('HGET', key, 'first_at') or ARGV[3], id)
redis.call('RENAME', key, ARGV[6] .. id)
redis.call('ZADD', KEYS[4], ARGV[3], id)
redis.call('HDEL', KEYS[5], id)
redis.call('ZREM', KEYS[6], ARGV[1])
return {1, id}
"""

# KEYS: open-by-first ; ARGV: open_prefix number...
# Adds the open callbacks among ``number...`` to the index by first call, with
# the record's own first_at (one step: a callback closed meanwhile has no record
# and is not added). Run on start over every line, a page at a time, for
# callbacks opened before the index existed. Returns how many were added.
INDEX_OPEN = """
local n = 0
for i = 2, #ARGV do
  local h = redis.call('HMGET', ARGV[1] .. ARGV[i], 'state', 'first_at')
  if h[1] and h[1] ~= 'closed' and h[2] then
    n = n + redis.call('ZADD', KEYS[1], 'NX', h[2], ARGV[i])
  end
end
return n
"""

# KEYS: ids
# ARGV: id rating seat at call open_prefix closed_prefix
# The survey after callback ``id``'s conversation: kept on its record, closed
# (ivr:cb:id:<id>) or still open (its outcome not written yet: the fields go
# with it when it is closed). Returns {1, number}; {0, 'duplicate'} when this
# call's answer is there already (a summary read twice); {0, ''} no such callback.
SURVEY = """
local key = ARGV[7] .. ARGV[1]
if redis.call('EXISTS', key) == 0 then
  local number = redis.call('HGET', KEYS[1], ARGV[1])
  if not number then return {0, ''} end
  key = ARGV[6] .. number
  if redis.call('HGET', key, 'id') ~= ARGV[1] then return {0, ''} end
end
if redis.call('HGET', key, 'survey_call') == ARGV[5] then return {0, 'duplicate'} end
redis.call('HSET', key, 'survey', ARGV[2], 'survey_seat', ARGV[3], 'survey_at', ARGV[4], 'survey_call', ARGV[5])
return {1, redis.call('HGET', key, 'number')}
"""

# -- follow-up calls (ivr.callback.followup) ------------------------------------------

# KEYS: batch_seq seq pending batches
# ARGV: now by share of day kind item_prefix batch_prefix, then one tab-separated
#   item per citizen: number source source_seat source_kind source_at
# One batch and its items, each due at once (the caller waits for calling hours
# and calm queues). Returns {batch id, first item id, count}.
FOLLOWUP_CREATE = SPLIT + """
local bid = redis.call('INCR', KEYS[1])
local n = #ARGV - 8
local first = redis.call('INCRBY', KEYS[2], n) - n + 1
local items = ARGV[8] .. bid .. ':items'
for i = 1, n do
  local A = split(ARGV[8 + i])
  local id = first + i - 1
  redis.call('HSET', ARGV[7] .. id, 'id', id, 'kind', 'followup', 'batch', bid, 'number', A[1], 'source', A[2],
    'source_seat', A[3], 'source_kind', A[4], 'source_at', A[5], 'state', 'open', 'attempts', 0,
    'created_at', ARGV[1], 'next_at', ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[1], id)
  redis.call('RPUSH', items, id)
end
redis.call('HSET', ARGV[8] .. bid, 'id', bid, 'created_at', ARGV[1], 'by', ARGV[2], 'share', ARGV[3],
  'of', ARGV[4], 'day', ARGV[5], 'kind', ARGV[6], 'count', n)
redis.call('ZADD', KEYS[4], ARGV[1], bid)
return {bid, first, n}
"""

# KEYS: pending claims
# ARGV: now lease_until owner count item_prefix callback_open_prefix postpone_s
# Lapsed claims (their process died) go back to pending; then up to ``count``
# due follow-ups are claimed. One whose citizen has an open callback is put off
# (a callback is owed first: the citizen is never dialled by both). Returns
# {recovered, id...}.
FOLLOWUP_CLAIM = """
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(lapsed) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], ARGV[1], id)
  redis.call('HSET', ARGV[5] .. id, 'state', 'open', 'owner', '')
end
local out = {#lapsed}
local want = tonumber(ARGV[4])
if want <= 0 then return out end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, want * 4)
for _, id in ipairs(due) do
  if #out > want then break end
  local number = redis.call('HGET', ARGV[5] .. id, 'number')
  if number and redis.call('EXISTS', ARGV[6] .. number) == 1 then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[7]), id)
  elseif number then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    redis.call('HSET', ARGV[5] .. id, 'state', 'assigned', 'owner', ARGV[3])
    out[#out + 1] = id
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: pending claims closed
# ARGV: id owner outcome now next_at('' = close) close_reason item_prefix
# Returns {1, 'closed' | 'rescheduled', attempts}, or {0, '', 0} when ``owner`` no longer holds it.
FOLLOWUP_FINISH = """
local key = ARGV[7] .. ARGV[1]
if redis.call('HGET', key, 'owner') ~= ARGV[2] then return {0, '', 0} end
redis.call('ZREM', KEYS[2], ARGV[1])
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'last_outcome', ARGV[3], 'last_attempt_at', ARGV[4], 'owner', '')
if ARGV[5] == '' then
  redis.call('HSET', key, 'state', 'closed', 'closed_at', ARGV[4], 'closed_reason', ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  return {1, 'closed', attempts}
end
redis.call('HSET', key, 'state', 'open', 'next_at', ARGV[5])
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
return {1, 'rescheduled', attempts}
"""

# KEYS: -
# ARGV: id heard rating comment at call seat item_prefix
# What the citizen said on follow-up ``id``: kept once per call. Returns {1, number};
# {0, 'duplicate'} already kept; {0, ''} no such follow-up.
FOLLOWUP_ANSWER = """
local key = ARGV[8] .. ARGV[1]
if redis.call('EXISTS', key) == 0 then return {0, ''} end
if redis.call('HGET', key, 'answer_call') == ARGV[6] then return {0, 'duplicate'} end
redis.call('HSET', key, 'heard', ARGV[2], 'survey', ARGV[3], 'comment', ARGV[4], 'answered_at', ARGV[5],
  'answer_call', ARGV[6], 'survey_seat', ARGV[7])
return {1, redis.call('HGET', key, 'number')}
"""
