"""Routing state in Redis, shared by several hub processes: every decision is one Lua script, so it is atomic.

The scripts implement the same rules as hub/routing/memory.py (its reference); the contract tests run both.
Keys live under one prefix; the scripts touch keys they compute, so this needs a single Redis, not a cluster.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hub.routing.types import (
    CAPACITY_CLASS,
    COUNTED,
    SCAN_LIMIT,
    AgentConfig,
    AgentId,
    AgentStats,
    Claim,
    ConversationId,
    ConversationView,
    Escalation,
    Expiry,
    FirstResponse,
    Presence,
    QueueConfig,
    QueueId,
    QueueStats,
    Release,
    Waiting,
)

_BATCH = 1000  # conversations one timeout/escalation script handles before handing back
_SHARED_AGENTS = 64  # concurrent drain_agents calls share one script up to this many agents in all

_LIB = r"""
local P = ARGV[1]
local CLASSES = {'voice', 'chat', 'email'}
local CLASS_OF = CLASS_OF_JSON
-- A number as a string that reads back exactly; a batch formats the same `now` many times, so the last is kept.
-- redis.call formats every number argument itself (a printf each), so the decision path passes strings.
local f_x, f_s
local function f(x)
  if x ~= f_x then f_x, f_s = x, string.format('%.17g', x) end
  return f_s
end
local function n(x, d) if x == nil or x == false or x == '' then return d end return tonumber(x) end
local QC = {}
local function queue(q)
  if QC[q] == nil then
    local raw = redis.call('GET', P .. 'q:' .. q)
    if raw then QC[q] = cjson.decode(raw) else QC[q] = false end
  end
  return QC[q]
end
local function hash(key)
  local h = redis.call('HGETALL', key)
  if #h == 0 then return nil end
  local t = {}
  for i = 1, #h, 2 do t[h[i]] = h[i + 1] end
  return t
end
-- An agent is read with the fields a decision needs; the rest of their hash is read when first used: their
-- settings (cfg, decoded: only scripts that need more than the plan holds), round-robin turns (rr:<queue>), and
-- last (when they were last offered or became available) and missed (offers missed in a row), which a decision
-- only writes.
local AGENT_LAZY = {__index = function(t, k)
  if k == 'cfg' then
    local c = cjson.decode(redis.call('HGET', P .. 'a:' .. t.id, 'cfg'))
    rawset(t, 'cfg', c)
    return c
  end
  if k == 'last' or k == 'missed' then
    local v = tonumber(redis.call('HGET', P .. 'a:' .. t.id, k))
    rawset(t, k, v)
    return v
  end
  if type(k) == 'string' and string.sub(k, 1, 3) == 'rr:' then
    local v = redis.call('HGET', P .. 'a:' .. t.id, k)
    rawset(t, k, v)
    return v
  end
end}
local replan
local function agent(aid)
  local h = redis.call('HMGET', P .. 'a:' .. aid, 'presence', 'load', 'wrapup', 'np', 'plan', 'n:offered')
  if not h[1] then return nil end
  local a = setmetatable({id = tostring(aid), presence = h[1], load = cjson.decode(h[2]), wrapup = tonumber(h[3]),
    np = h[4], plan = h[5] and cjson.decode(h[5]), ['n:offered'] = h[6]}, AGENT_LAZY)
  if a.plan and a.plan.q then
    a.cap, a.ex = a.plan.c, a.plan.x
  else
    replan(a)  -- written before plans, or before plans held capacity
  end
  return a
end
local function conv(cid)
  local c = hash(P .. 'c:' .. cid)
  if not c then return nil end
  c.id = tostring(cid)
  c.pri = tonumber(c.pri)
  c.enqs, c.enq = c.enq, tonumber(c.enq)  -- enqs: as stored, to hand back without formatting it again
  c.qat = tonumber(c.qat)
  c.stage = tonumber(c.stage)
  c.ln = n(c.ln, 0)
  c.cls = CLASS_OF[c.ch]
  return c
end
local function can_take(a, cls)
  if n(a.load[cls], 0) >= n(a.cap[cls], 0) then return false end
  for _, e in ipairs(a.ex) do
    if e ~= cls and n(a.load[e], 0) > 0 then return false end
  end
  return true
end
local function meets(skills, mins)
  for s, m in pairs(mins) do
    if n(skills[s], 0) < m then return false end
  end
  return true
end
-- The agent's plan: what a decision needs to know of the agent and their queues, so that it decodes no settings
-- and reads no queue: c = capacity, x = exclusive classes, and q = for each of their queues that exists,
-- {queue, {stage line whose skills they meet, ...}, meets the queue's floor, the queue's strategy, skill match,
-- direct, sla_wait, offer_timeout, number of stages}.
-- put_agent and put_queue (the only changes of settings) rebuild it for every agent they touch.
replan = function(a)
  local cfg = a.cfg
  local qs = {}
  for _, q in ipairs(cfg.queues) do
    local qc = queue(q)
    if qc then
      local lns = {}
      for ln = 0, #qc.levels - 1 do
        if meets(cfg.skills, qc.levels[ln + 1]) then table.insert(lns, ln) end
      end
      local match = 0
      for sk, _ in pairs(qc.skills) do match = match + n(cfg.skills[sk], 0) end
      table.insert(qs, {q, lns, meets(cfg.skills, qc.floor), qc.strategy, match, qc.direct, qc.sla_wait,
        qc.offer_timeout, #qc.stages})
    end
  end
  a.plan = {c = cfg.capacity, x = cfg.exclusive, q = qs}
  a.cap, a.ex = cfg.capacity, cfg.exclusive
  redis.call('HSET', P .. 'a:' .. a.id, 'plan', cjson.encode(a.plan))
end
local function is_ready(a, now)
  if a.presence ~= 'available' or now < a.wrapup then return false end
  for cls, _ in pairs(a.cap) do
    if can_take(a, cls) then return true end
  end
  return false
end
local function score(a, q, strategy, match)
  if strategy == 'longest_idle' then return a.last end
  if strategy == 'least_occupied' then
    local load, cap = 0, 0
    for _, v in pairs(a.load) do load = load + v end
    for _, v in pairs(a.cap) do cap = cap + v end
    if cap == 0 then return 1.0 end
    return load / cap
  end
  if strategy == 'round_robin' then return n(a['rr:' .. q], 0) end
  return -match * 1e10 + a.last
end
-- In the ready index of each of their queues whose floor they meet while ready; out of every one otherwise.
local function reindex(a, now)
  local ready = is_ready(a, now)
  for _, p in ipairs(a.plan.q) do
    if ready and p[3] then
      redis.call('ZADD', P .. 'r:' .. p[1], f(score(a, p[1], p[4], p[5])), a.id)
    else
      redis.call('ZREM', P .. 'r:' .. p[1], a.id)
    end
  end
end
local function eligible(a, c, mins, now)
  return a.presence == 'available' and now >= a.wrapup and can_take(a, c.cls) and meets(a.cfg.skills, mins)
end
local function wscore(c) return -c.pri * 1e10 + c.enq end
-- A waiting line is (queue, class, stage line): everyone in one line needs the same skills, so only its head is
-- worth trying, and a skilled head never blocks a widened conversation in another line.
local function line_key(q, cls, ln) return P .. 'w:' .. q .. ':' .. cls .. ':' .. ln end
-- A line's member carries what a claim needs besides the line itself (its queue, class and stage line):
-- 'id channel enq customer stage', so the conversation that wins an agent is taken without reading it.
-- The separator sorts below every digit, so members tie-break by id as bare ids do (as the memory backend does).
-- Members written before this are bare ids: member_id() and from_line() read both.
local function member_id(m) return string.match(m, '^%S+') end
local function from_line(m, q, cls, ln)
  local id, ch, enqs, cust, stage = string.match(m, '^(%S+) (%S+) (%S+) (%S*) (%S+)$')
  if not id then return conv(m) end
  return {id = id, q = q, ch = ch, cls = cls, ln = ln, st = 'waiting', enqs = enqs, enq = tonumber(enqs),
    cust = cust, stage = tonumber(stage), lm = m}
end
-- Every change of which conversations the state holds, or of one's state, agent or priority, counts in 'v', and
-- names its conversation in 'chg' (scored by that version): the reconciler compares only what changed since its
-- last pass (RedisState.changes).
local function bump(cid) redis.call('ZADD', P .. 'chg', redis.call('INCR', P .. 'v'), cid) end
local function put_waiting(c)
  bump(c.id)
  c.st = 'waiting'
  local qc = queue(c.q)
  local stages = qc and #qc.stages or 0
  c.ln = math.min(c.stage, stages)
  c.lm = c.id .. ' ' .. c.ch .. ' ' .. (c.enqs or f(c.enq)) .. ' ' .. c.cust .. ' ' .. c.stage
  redis.call('HSET', P .. 'c:' .. c.id, 'st', 'waiting', 'ag', '', 'until', '0', 'q', c.q,
    'stage', c.stage, 'ln', c.ln, 'qat', f(c.qat), 'skip', c.skip, 'lm', c.lm)
  redis.call('ZADD', line_key(c.q, c.cls, c.ln), wscore(c), c.lm)
  if c.stage < stages then redis.call('ZADD', P .. 'g:' .. c.q .. ':' .. c.stage, c.qat, c.id) end
end
local function park(c, aid, untl)
  bump(c.id)
  c.st = 'parked'
  redis.call('HSET', P .. 'c:' .. c.id, 'st', 'parked', 'ag', aid, 'until', f(untl), 'q', c.q,
    'stage', c.stage, 'qat', f(c.qat), 'skip', c.skip)
  redis.call('ZADD', P .. 'p:' .. aid, wscore(c), c.id)
  redis.call('HINCRBY', P .. 'a:' .. aid, 'np', 1)
  redis.call('ZADD', P .. 'pu', untl, c.id)
  redis.call('ZADD', P .. 'pk:' .. c.q, c.enq, c.id)  -- the queue's parked ones by age, for its stats
end
-- nstages: the queue's number of stages, when the caller knows it (else it is read).
local function take_out(c, nstages)
  if c.st == 'waiting' then
    redis.call('ZREM', line_key(c.q, c.cls, c.ln), c.lm or c.id)
    -- Only a conversation with a stage ahead was put in the age index (see put_waiting).
    if not nstages then
      local qc = queue(c.q)
      nstages = qc and #qc.stages or math.huge
    end
    if c.stage < nstages then
      redis.call('ZREM', P .. 'g:' .. c.q .. ':' .. c.stage, c.id)
    end
  elseif c.st == 'parked' then
    redis.call('ZREM', P .. 'p:' .. c.ag, c.id)
    redis.call('HINCRBY', P .. 'a:' .. c.ag, 'np', -1)
    redis.call('ZREM', P .. 'pu', c.id)
    redis.call('ZREM', P .. 'pk:' .. c.q, c.id)
  elseif c.st == 'offered' then
    redis.call('ZREM', P .. 'offers', c.id)
  end
end
local function set_load(a, cls, delta)
  a.load[cls] = math.max(0, n(a.load[cls], 0) + delta)
  redis.call('HSET', P .. 'a:' .. a.id, 'load', cjson.encode(a.load))
end
-- One counter per outcome, so a decision costs one HINCRBY: `how` is direct or accepted, and the queue stats add
-- them up (offered = offered + direct_*, answered = direct_* + accepted_*, answered_in_sla = *_in_sla).
local function answered(c, aid, now, sla_wait, how)
  local within = now - c.enq <= sla_wait and '_in_sla' or '_late'
  redis.call('HINCRBY', P .. 's:' .. c.q, how .. within, '1')
  if c.cust ~= '' then redis.call('SET', P .. 'last:' .. c.cust, aid) end
end
-- p: the agent's plan entry for the conversation's queue, when the caller has it: then no queue is read.
local function claim(c, a, now, p)
  local direct, sla_wait, offer_timeout, strategy, nstages
  if p then
    direct, sla_wait, offer_timeout, strategy, nstages = p[6], p[7], p[8], p[4], p[9]
  else
    local qc = queue(c.q)
    direct, sla_wait, offer_timeout, strategy, nstages = qc.direct, qc.sla_wait, qc.offer_timeout, qc.strategy,
      #qc.stages
  end
  local akey = P .. 'a:' .. a.id
  take_out(c, nstages)
  a.last = now
  a.load[c.cls] = n(a.load[c.cls], 0) + 1
  a['n:offered'] = n(a['n:offered'], 0) + 1  -- agent() read it: written with the rest, no HINCRBY needed
  redis.call('HSET', akey, 'last', f(now), 'load', cjson.encode(a.load), 'n:offered', a['n:offered'])
  if strategy == 'round_robin' then
    local r = redis.call('INCR', P .. 'rr:' .. c.q)
    a['rr:' .. c.q] = r
    redis.call('HSET', akey, 'rr:' .. c.q, r)
  end
  local dl = ''
  bump(c.id)
  if direct then
    redis.call('HSET', P .. 'c:' .. c.id, 'st', 'assigned', 'ag', a.id, 'until', '0')
    answered(c, a.id, now, sla_wait, 'direct')
  else
    redis.call('HINCRBY', P .. 's:' .. c.q, 'offered', '1')
    local d = now + offer_timeout
    dl = f(d)
    redis.call('HSET', P .. 'c:' .. c.id, 'st', 'offered', 'ag', a.id, 'until', dl)
    redis.call('ZADD', P .. 'offers', d, c.id)
  end
  reindex(a, now)
  return {c.id, a.id, c.q, c.ch, direct and 0 or 1, dl, c.enqs or f(c.enq)}
end
local function requeue(c, a, now)
  take_out(c)
  set_load(a, c.cls, -1)
  c.skip = c.skip .. a.id .. ','
  put_waiting(c)
  reindex(a, now)
end
"""

_PUT_QUEUE = r"""
local q, now = ARGV[2], tonumber(ARGV[4])
local old = queue(q)
local refile = {}
if old and #old.levels ~= #cjson.decode(ARGV[3]).levels then
  -- The plan has another number of stages: take the waiting conversations out of their lines, to put them back.
  for _, cls in ipairs(CLASSES) do
    for ln = 0, #old.levels - 1 do
      for _, m in ipairs(redis.call('ZRANGE', line_key(q, cls, ln), 0, -1)) do
        local c = conv(member_id(m))
        take_out(c)
        table.insert(refile, c)
      end
    end
  end
end
redis.call('SET', P .. 'q:' .. q, ARGV[3])
QC[q] = nil
-- State written before the parked index: its age index held every waiting and parked conversation of the queue.
for _, cid in ipairs(redis.call('ZRANGE', P .. 'o:' .. q, 0, -1)) do
  local c = conv(cid)
  if c and c.st == 'parked' then redis.call('ZADD', P .. 'pk:' .. q, c.enq, cid) end
end
redis.call('DEL', P .. 'o:' .. q)
for _, c in ipairs(refile) do put_waiting(c) end
redis.call('SADD', P .. 'queues', q)
redis.call('DEL', P .. 'r:' .. q)
for _, aid in ipairs(redis.call('SORT', P .. 'm:' .. q)) do
  local a = agent(aid)
  replan(a)
  reindex(a, now)
end
return 1
"""

_PUT_AGENT = r"""
local aid, cfg, now = ARGV[2], cjson.decode(ARGV[3]), tonumber(ARGV[4])
local key = P .. 'a:' .. aid
local old = redis.call('HGET', key, 'cfg')
if old then
  local keep = {}
  for _, q in ipairs(cfg.queues) do keep[q] = true end
  for _, q in ipairs(cjson.decode(old).queues) do
    if not keep[q] then
      redis.call('SREM', P .. 'm:' .. q, aid)
      redis.call('ZREM', P .. 'r:' .. q, aid)
    end
  end
else
  redis.call('HSET', key, 'presence', 'offline', 'load', '{}', 'wrapup', '0', 'last', f(now), 'missed', '0')
end
redis.call('HSET', key, 'cfg', ARGV[3], 'np', redis.call('ZCARD', P .. 'p:' .. aid))
for _, q in ipairs(cfg.queues) do redis.call('SADD', P .. 'm:' .. q, aid) end
local a = agent(aid)
replan(a)
reindex(a, now)
return 1
"""

_SET_PRESENCE = r"""
local a, presence, now = agent(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if not a then return 0 end
local key = P .. 'a:' .. a.id
if presence == 'available' and a.presence ~= 'available' then
  a.missed, a.last = 0, now
  redis.call('HSET', key, 'missed', '0', 'last', f(now))
end
a.presence = presence
redis.call('HSET', key, 'presence', presence)
reindex(a, now)
return 1
"""

_ENQUEUE = r"""
local cid, q, ch = ARGV[2], ARGV[3], ARGV[4]
local now, sticky, respond_by = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
if redis.call('EXISTS', P .. 'c:' .. cid) == 1 then return redis.error_reply('conversation already routed') end
if not queue(q) then return redis.error_reply('unknown queue ' .. q) end
local c = {id = cid, q = q, ch = ch, cls = CLASS_OF[ch], pri = tonumber(ARGV[5]), enq = tonumber(ARGV[6]),
  enqs = ARGV[6], cust = ARGV[7], qat = now, stage = 0, skip = ','}
redis.call('HSET', P .. 'c:' .. cid, 'ch', ch, 'pri', ARGV[5], 'enq', ARGV[6], 'cust', ARGV[7])
if respond_by > 0 then
  -- Awaiting its first reply: the member names the conversation, the queue whose target it is and its age, so a
  -- breach is still counted (and reported) after the conversation itself is gone.
  redis.call('HSET', P .. 'c:' .. cid, 'rb', ARGV[10], 'rq', q)
  redis.call('ZADD', P .. 'fr', respond_by, cid .. ':' .. q .. ':' .. f(c.enq))
end
if sticky > 0 and c.cust ~= '' then
  local last = redis.call('GET', P .. 'last:' .. c.cust)
  if last then
    local a = agent(last)
    if a and a.presence == 'available' then
      park(c, a.id, now + sticky)
      return tonumber(a.id)
    end
  end
end
put_waiting(c)
return 0
"""

_DECIDE = r"""
local function dispatch_queue(q, now, limit)
  local qc = queue(q)
  if not qc then return nil end
  local heads = {}
  for _, cls in ipairs(CLASSES) do
    for ln = 0, #qc.levels - 1 do
      local h = redis.call('ZRANGE', line_key(q, cls, ln), '0', '0', 'WITHSCORES')
      if #h > 0 then table.insert(heads, {id = h[1], score = tonumber(h[2])}) end
    end
  end
  table.sort(heads, function(x, y)
    if x.score ~= y.score then return x.score < y.score end
    return x.id < y.id
  end)
  -- (class, level) pairs no ready agent can take: every head needing the same fails alike.
  local failed = {}
  local ready = nil
  for _, h in ipairs(heads) do
    local c = conv(member_id(h.id))
    local lv = math.min(c.stage, #qc.levels - 1)
    if not failed[c.cls .. ':' .. lv] then
      local mins = qc.levels[lv + 1]
      local declined = nil
      ready = ready or redis.call('ZRANGE', P .. 'r:' .. q, 0, limit - 1)
      for _, aid in ipairs(ready) do
        local a = agent(aid)
        if a and eligible(a, c, mins, now) then
          if not string.find(c.skip, ',' .. a.id .. ',', 1, true) then return claim(c, a, now) end
          declined = declined or a
        end
      end
      if declined then return claim(c, declined, now) end
      failed[c.cls .. ':' .. lv] = true
    end
  end
  return nil
end
-- `a` is the agent as agent() read it; claim() keeps it current, so a caller deciding again for the same agent
-- passes it back instead of reading it again.
local function dispatch_agent(a, now, limit)
  if not a or a.presence ~= 'available' or now < a.wrapup then return nil end
  local open = {}
  for _, cls in ipairs(CLASSES) do
    if can_take(a, cls) then table.insert(open, cls) end
  end
  if #open == 0 then return nil end  -- full: nothing to read, parked or queued
  if n(a.np, 1) > 0 then  -- np: how many are parked for the agent (kept by park and take_out)
    for _, cid in ipairs(redis.call('ZRANGE', P .. 'p:' .. a.id, 0, limit - 1)) do
      local c = conv(cid)
      if can_take(a, c.cls) then return claim(c, a, now) end
    end
  end
  local best, best_score, best_p, best_cls, best_ln = nil, nil, nil, nil, nil
  for _, p in ipairs(a.plan.q) do
    local q = p[1]
    for _, cls in ipairs(open) do
      -- Only the lines whose skills the agent meets (the plan); only the winner's member is read further.
      for _, ln in ipairs(p[2]) do
        local h = redis.call('ZRANGE', line_key(q, cls, ln), '0', '0', 'WITHSCORES')
        if #h > 0 then
          local s = tonumber(h[2])
          if best == nil or s < best_score or (s == best_score and h[1] < best) then
            best, best_score, best_p, best_cls, best_ln = h[1], s, p, cls, ln
          end
        end
      end
    end
  end
  if best then return claim(from_line(best, best_p[1], best_cls, best_ln), a, now, best_p) end
  return nil
end
"""

_DISPATCH_QUEUE = r"""
return dispatch_queue(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])) or false
"""

# Several decisions in one script, so one round trip: every conversation the queue can hand out now, or every slot of
# each listed agent that can be filled now (up to `most` in all). Each decision is still atomic; so is the whole batch.
_DRAIN_QUEUE = r"""
local q, now, limit, most = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
while #out < most do
  local r = dispatch_queue(q, now, limit)
  if not r then break end
  table.insert(out, r)
end
return out
"""

# Several drain_agents calls in one script, in order: ARGV is limit, then per call `now, most, agents` (the agents'
# ids joined by commas: one argument to send, not one per agent); the answer is one list of claims per call. Each
# call decides exactly as it would alone.
_DRAIN_AGENTS = r"""
local limit = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 3 do
  local now, most = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local claims = {}
  for aid in string.gmatch(ARGV[i + 2], '[^,]+') do
    local a = agent(aid)
    while #claims < most do
      local r = dispatch_agent(a, now, limit)
      if not r then break end
      table.insert(claims, r)
    end
  end
  table.insert(out, claims)
end
return out
"""

_ACCEPT = r"""
local c, aid, now = conv(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if not c or c.st ~= 'offered' or c.ag ~= aid then return false end
take_out(c)
bump(c.id)
redis.call('HSET', P .. 'c:' .. c.id, 'st', 'assigned', 'until', '0')
redis.call('HSET', P .. 'a:' .. aid, 'missed', '0')
redis.call('HINCRBY', P .. 'a:' .. aid, 'n:accepted', 1)
answered(c, aid, now, queue(c.q).sla_wait, 'accepted')
return {c.id, aid, c.q, c.ch, 0, '', f(c.enq)}
"""

_REJECT = r"""
local c, aid, now = conv(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if not c or c.st ~= 'offered' or c.ag ~= aid then return false end
local a = agent(aid)
redis.call('HSET', P .. 'a:' .. aid, 'missed', '0')
redis.call('HINCRBY', P .. 'a:' .. aid, 'n:rejected', 1)
redis.call('HINCRBY', P .. 's:' .. c.q, 'rejected', 1)
requeue(c, a, now)
return {c.id, aid, c.q, c.ch, 1, '', f(c.enq)}
"""

_EXPIRE = r"""
local now, limit, max_missed = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for _, cid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'offers', '-inf', ARGV[2], 'LIMIT', 0, limit)) do
  local c = conv(cid)
  local a = agent(c.ag)
  local key = P .. 'a:' .. a.id
  a.missed = a.missed + 1
  redis.call('HSET', key, 'missed', a.missed)
  redis.call('HINCRBY', key, 'n:timed_out', 1)
  redis.call('HINCRBY', P .. 's:' .. c.q, 'timed_out', 1)
  local away = 0
  if a.missed >= max_missed and a.presence == 'available' then
    a.presence, away = 'away', 1
    redis.call('HSET', key, 'presence', 'away')
  end
  requeue(c, a, now)
  table.insert(out, {c.id, a.id, c.q, away})
end
return out
"""

_RESOLVE = r"""
local c, now = conv(ARGV[2]), tonumber(ARGV[3])
if not c then return false end
take_out(c)
bump(c.id)
redis.call('DEL', P .. 'c:' .. c.id)
local rb = n(c.rb, 0)
if rb > 0 and now <= rb then
  -- Resolved before its first-response deadline without a reply: no outcome. Past it, the sweep counts a breach.
  redis.call('ZREM', P .. 'fr', c.id .. ':' .. c.rq .. ':' .. f(c.enq))
end
if c.st == 'waiting' or c.st == 'parked' then
  redis.call('HINCRBY', P .. 's:' .. c.q, 'abandoned', 1)
  return {c.q, '', ''}
end
local a = agent(c.ag)
set_load(a, c.cls, -1)
local untl = ''
if c.st == 'assigned' and n(a.cfg.wrapup, 0) > 0 then
  a.wrapup = now + a.cfg.wrapup
  untl = f(a.wrapup)
  redis.call('HSET', P .. 'a:' .. a.id, 'wrapup', untl)
  redis.call('ZADD', P .. 'wu', a.wrapup, a.id)
end
reindex(a, now)
return {c.q, a.id, untl}
"""

_TRANSFER = r"""
local c, now, to_q, to_a, untl = conv(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
if not c then return false end
if to_q ~= '' and not queue(to_q) then return redis.error_reply('unknown queue ' .. to_q) end
if to_a ~= '' and redis.call('EXISTS', P .. 'a:' .. to_a) == 0 then
  return redis.error_reply('unknown agent ' .. to_a)
end
local old_q, old_a = c.q, ''
take_out(c)
if c.st == 'offered' or c.st == 'assigned' then
  old_a = c.ag
  local a = agent(c.ag)
  set_load(a, c.cls, -1)
  reindex(a, now)
end
if to_q ~= '' and to_q ~= c.q then c.q, c.stage, c.qat = to_q, 0, now end
c.skip = ','
redis.call('HINCRBY', P .. 's:' .. old_q, 'transferred', 1)
if to_a ~= '' then park(c, to_a, untl) else put_waiting(c) end
return {old_q, old_a}
"""

_HOLD = r"""
local cid, q, ch, aid, dl, now = ARGV[2], ARGV[3], ARGV[4], ARGV[8], ARGV[9], tonumber(ARGV[10])
local respond_by = tonumber(ARGV[11])
if redis.call('EXISTS', P .. 'c:' .. cid) == 1 then return 0 end
local a = agent(aid)
if not a then return 0 end
if not queue(q) then return redis.error_reply('unknown queue ' .. q) end
local st, untl = 'assigned', '0'
if dl ~= '' then st, untl = 'offered', dl end
bump(cid)
redis.call('HSET', P .. 'c:' .. cid, 'ch', ch, 'pri', ARGV[5], 'enq', ARGV[6], 'cust', ARGV[7], 'q', q,
  'stage', '0', 'ln', '0', 'qat', f(now), 'skip', ',', 'st', st, 'ag', a.id, 'until', untl)
if dl ~= '' then redis.call('ZADD', P .. 'offers', dl, cid) end
if respond_by > 0 then  -- its first-response clock, as _ENQUEUE starts it
  redis.call('HSET', P .. 'c:' .. cid, 'rb', ARGV[11], 'rq', q)
  redis.call('ZADD', P .. 'fr', respond_by, cid .. ':' .. q .. ':' .. f(tonumber(ARGV[6])))
end
set_load(a, CLASS_OF[ch], 1)
reindex(a, now)
return 1
"""

# The conversations changed after version ARGV[2], with the version now; false when no longer known: trimmed past
# it, or the version went back (a wiped Redis counts from 0 again).
_CHANGES = r"""
local since = tonumber(ARGV[2])
local v = tonumber(redis.call('GET', P .. 'v') or '0')
if since < tonumber(redis.call('GET', P .. 'chg:trim') or '0') or since > v then return false end
return {v, redis.call('ZRANGEBYSCORE', P .. 'chg', '(' .. ARGV[2], '+inf')}
"""

_TRIM_CHANGES = r"""
local below = math.min(tonumber(ARGV[2]), tonumber(redis.call('GET', P .. 'v') or '0'))
if below > tonumber(redis.call('GET', P .. 'chg:trim') or '0') then
  redis.call('SET', P .. 'chg:trim', below)
  redis.call('ZREMRANGEBYSCORE', P .. 'chg', '-inf', below)
end
return 1
"""

_RESTORE_COUNTS = r"""
local key = P .. 's:' .. ARGV[2]
redis.call('DEL', key)
if #ARGV > 2 then redis.call('HSET', key, unpack(ARGV, 3)) end
return 1
"""

_SET_PRIORITY = r"""
local c = conv(ARGV[2])
if not c then return 0 end
c.pri = tonumber(ARGV[3])
bump(c.id)
redis.call('HSET', P .. 'c:' .. c.id, 'pri', ARGV[3])
-- A new score in the same index, the member unchanged: its age (enq in the score, qat in the age index) is kept.
-- XX: only a member that is there (a line's member is what put_waiting wrote, or a bare id from before).
if c.st == 'waiting' then
  redis.call('ZADD', line_key(c.q, c.cls, c.ln), 'XX', wscore(c), c.lm or c.id)
elseif c.st == 'parked' then
  redis.call('ZADD', P .. 'p:' .. c.ag, 'XX', wscore(c), c.id)
end
return 1
"""

_END_WRAPUPS = r"""
local now = tonumber(ARGV[2])
local out = {}
for _, aid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'wu', '-inf', ARGV[2])) do
  redis.call('ZREM', P .. 'wu', aid)
  local a = agent(aid)
  if a then
    reindex(a, now)
    table.insert(out, aid)
  end
end
return out
"""

_RELEASE_PARKED = r"""
local now = tonumber(ARGV[2])
local out = {}
for _, cid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'pu', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))) do
  local c = conv(cid)
  take_out(c)
  put_waiting(c)
  table.insert(out, {c.id, c.q, c.ch, c.pri, f(c.enq), c.cust})
end
return out
"""

_ESCALATE = r"""
local q, stage, now, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
local step = queue(q).stages[stage]
local out = {}
local key = P .. 'g:' .. q .. ':' .. (stage - 1)
for _, cid in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[4], 'LIMIT', 0, limit)) do
  local c = conv(cid)
  take_out(c)
  c.skip = ','
  if step.action == 'overflow' then
    c.q, c.stage, c.qat = step.overflow, 0, now
    put_waiting(c)
    table.insert(out, {c.id, 'overflow', step.overflow})
  elseif step.action == 'callback' and c.cls == 'voice' then
    bump(c.id)
    redis.call('DEL', P .. 'c:' .. c.id)
    table.insert(out, {c.id, 'callback', ''})
  else
    c.stage = stage
    put_waiting(c)
    table.insert(out, {c.id, 'widen', ''})
  end
end
return out
"""

_RESPONDED = r"""
local cid, now = ARGV[2], tonumber(ARGV[3])
local key = P .. 'c:' .. cid
local h = redis.call('HMGET', key, 'rb', 'rq', 'enq')
local rb = n(h[1], 0)
if rb <= 0 then return false end
local q, enq = h[2], f(tonumber(h[3]))
local sk = P .. 's:' .. q
redis.call('HINCRBY', sk, 'responded', 1)
local noticed = '0'
if redis.call('ZREM', P .. 'fr', cid .. ':' .. q .. ':' .. enq) == 1 then  -- else the sweep counted its breach
  if now <= rb then
    redis.call('HINCRBY', sk, 'responded_in_sla', 1)
  else
    redis.call('HINCRBY', sk, 'response_breached', 1)
    noticed = '1'
  end
end
redis.call('HSET', key, 'rb', '0')
return {cid, q, enq, f(rb), noticed}
"""

_RESPONSE_BREACHES = r"""
local limit = tonumber(ARGV[3])
local out = {}
-- Strictly past the deadline: a reply at the deadline is in time.
local rows = redis.call('ZRANGEBYSCORE', P .. 'fr', '-inf', '(' .. ARGV[2], 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #rows, 2 do
  local m = rows[i]
  redis.call('ZREM', P .. 'fr', m)
  local cid, q, enq = string.match(m, '^([^:]+):([^:]+):(.+)$')
  redis.call('HINCRBY', P .. 's:' .. q, 'response_breached', 1)
  table.insert(out, {cid, q, enq, rows[i + 1]})
end
return out
"""

_QUEUE_STATS = r"""
local q, now = ARGV[2], tonumber(ARGV[3])
local qc = queue(q)
-- Waiting: the lines and the parked ones. The oldest: a line is in (priority, age) order, so the oldest of a line is
-- the first of one of its priority bands (score = -priority * 1e10 + age), found with one read per band present.
-- Stats pay these reads so that a decision does not keep a separate age index.
local waiting = redis.call('ZCARD', P .. 'pk:' .. q)
local first = redis.call('ZRANGE', P .. 'pk:' .. q, 0, 0, 'WITHSCORES')
local oldest = #first > 0 and tonumber(first[2]) or nil
for _, cls in ipairs(CLASSES) do
  for ln = 0, (qc and #qc.levels or 1) - 1 do
    local key = line_key(q, cls, ln)
    local n_in = redis.call('ZCARD', key)
    waiting = waiting + n_in
    local h = n_in > 0 and redis.call('ZRANGE', key, 0, 0, 'WITHSCORES') or {}
    while #h > 0 do
      local pri = math.ceil(-tonumber(h[2]) / 1e10)
      local enq = tonumber(redis.call('HGET', P .. 'c:' .. member_id(h[1]), 'enq'))
      if not oldest or enq < oldest then oldest = enq end
      h = redis.call('ZRANGE', key, f((1 - pri) * 1e10), '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
    end
  end
end
local busy = 0
for _, aid in ipairs(redis.call('SMEMBERS', P .. 'm:' .. q)) do
  local load = redis.call('HGET', P .. 'a:' .. aid, 'load')
  if load then
    for _, v in pairs(cjson.decode(load)) do
      if v > 0 then busy = busy + 1; break end
    end
  end
end
local wait = '0'
if oldest then wait = f(math.max(0, now - oldest)) end
return {waiting, wait, redis.call('ZCARD', P .. 'r:' .. q), busy,
  redis.call('HGETALL', P .. 's:' .. q)}
"""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _claim(r: Any) -> Claim | None:
    if not r:
        return None
    # int() and float() read bytes as they are: only the texts need decoding (one of these per decision)
    cid, aid, q, ch, offered, deadline, enq = r
    dl = float(deadline) if deadline else None
    return Claim(int(cid), int(aid), _text(q), _text(ch), int(offered) == 1, dl, float(enq))


def _queue_json(q: QueueConfig) -> str:
    return json.dumps(
        {
            "strategy": q.strategy.value,
            "skills": q.skills,
            "levels": q.levels,
            "floor": q.floor,
            "offer_timeout": q.offer_timeout,
            "direct": q.direct,
            "sla_wait": q.sla_wait,
            "stages": [{"action": s.action, "overflow": s.overflow or ""} for s in q.stages],
        }
    )


class RedisState:
    def __init__(self, client: Redis, prefix: str = "hub:routing:") -> None:
        self.client = client
        self.prefix = prefix
        lib = _LIB.replace("CLASS_OF_JSON", "cjson.decode('" + json.dumps(CAPACITY_CLASS) + "')")

        def script(body: str) -> Any:
            return client.register_script(lib + body)

        self._put_queue = script(_PUT_QUEUE)
        self._put_agent = script(_PUT_AGENT)
        self._set_presence = script(_SET_PRESENCE)
        self._enqueue = script(_ENQUEUE)
        self._dispatch_queue = script(_DECIDE + _DISPATCH_QUEUE)
        self._drain_queue = script(_DECIDE + _DRAIN_QUEUE)
        self._drain_agents = script(_DECIDE + _DRAIN_AGENTS)
        self._accept = script(_ACCEPT)
        self._reject = script(_REJECT)
        self._expire = script(_EXPIRE)
        self._resolve = script(_RESOLVE)
        self._transfer = script(_TRANSFER)
        self._set_priority = script(_SET_PRIORITY)
        self._end_wrapups = script(_END_WRAPUPS)
        self._hold = script(_HOLD)
        self._restore_counts = script(_RESTORE_COUNTS)
        self._changes = script(_CHANGES)
        self._trim_changes = script(_TRIM_CHANGES)
        self._release_parked = script(_RELEASE_PARKED)
        self._escalate = script(_ESCALATE)
        self._queue_stats = script(_QUEUE_STATS)
        self._responded = script(_RESPONDED)
        self._response_breaches = script(_RESPONSE_BREACHES)
        # drain_agents calls waiting for the script call in flight, and the task that makes those calls.
        self._waiting: list[tuple[Sequence[AgentId], float, int, asyncio.Future[list[Claim]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def _run(self, script: Any, *args: object) -> Any:
        return await script(keys=[], args=[self.prefix, *(repr(a) if isinstance(a, float) else a for a in args)])

    async def clear(self) -> int:
        """Delete every key under the prefix (tests, benchmarks, a reset)."""
        deleted = 0
        async for batch in self._scan_batches():
            deleted += await self.client.unlink(*batch)
        return deleted

    async def _scan_batches(self) -> Any:
        batch: list[Any] = []
        async for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                yield batch
                batch = []
        if batch:
            yield batch

    async def put_queue(self, queue: QueueConfig, now: float) -> None:
        await self._run(self._put_queue, queue.id, _queue_json(queue), now)

    async def put_agent(self, agent: AgentConfig, now: float) -> None:
        cfg = {
            "queues": list(agent.queues),
            "capacity": agent.capacity,
            "skills": agent.skills,
            "wrapup": agent.wrapup,
            "exclusive": sorted(agent.exclusive),
        }
        await self._run(self._put_agent, agent.id, json.dumps(cfg), now)

    async def set_presence(self, agent: AgentId, presence: Presence, now: float) -> bool:
        return bool(await self._run(self._set_presence, agent, presence.value, now))

    def _enqueue_args(self, item: Waiting, now: float, sticky_for: float) -> list[object]:
        if item.channel not in CAPACITY_CLASS:
            raise KeyError(f"unknown channel {item.channel!r}")
        customer = "" if item.customer is None else str(item.customer)
        return [self.prefix, item.id, item.queue, item.channel, item.priority, repr(float(item.enqueued_at)), customer,
                repr(float(now)), repr(float(sticky_for)), repr(float(item.respond_by))]

    async def enqueue(self, item: Waiting, now: float, sticky_for: float) -> AgentId | None:
        args = self._enqueue_args(item, now, sticky_for)
        try:
            r = await self._enqueue(keys=[], args=args)
        except ResponseError as e:
            raise KeyError(f"conversation {item.id}: {e}") from None
        return int(r) or None

    async def enqueue_many(
        self, items: Sequence[tuple[Waiting, float]], now: float
    ) -> list[tuple[bool, AgentId | None]]:
        if not items:
            return []
        pipe = self.client.pipeline(transaction=False)
        for item, sticky_for in items:
            await self._enqueue(keys=[], args=self._enqueue_args(item, now, sticky_for), client=pipe)
        out: list[tuple[bool, AgentId | None]] = []
        for r in await pipe.execute(raise_on_error=False):
            if isinstance(r, ResponseError):
                out.append((False, None))  # already routed
            elif isinstance(r, Exception):
                raise r
            else:
                out.append((True, int(r) or None))
        return out

    async def dispatch_queue(self, queue: QueueId, now: float) -> Claim | None:
        return _claim(await self._run(self._dispatch_queue, queue, now, SCAN_LIMIT))

    async def dispatch_agent(self, agent: AgentId, now: float) -> Claim | None:
        claims = await self.drain_agents([agent], now, 1)  # one decision for the agent: the same thing
        return claims[0] if claims else None

    async def drain_queue(self, queue: QueueId, now: float, most: int) -> list[Claim]:
        rows = await self._run(self._drain_queue, queue, now, SCAN_LIMIT, most)
        return [c for c in map(_claim, rows) if c is not None]

    async def drain_agents(self, agents: Sequence[AgentId], now: float, most: int) -> list[Claim]:
        """Calls made while another is in flight (many handlers of this process at once) go together in the next
        script call: each still decides atomically and as if alone, and one round trip serves them all, so a
        process is not held to one decision per round trip."""
        if not agents:
            return []
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Claim]] = loop.create_future()
        if self._sender is not None and self._sender.get_loop() is not loop:  # left pending by a closed loop
            self._sender, self._waiting = None, []
        self._waiting.append((agents, now, most, done))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_drains())
        return await done

    async def _send_drains(self) -> None:
        batch: list[tuple[Sequence[AgentId], float, int, asyncio.Future[list[Claim]]]] = []
        try:
            while self._waiting:
                size = 0
                for n, call in enumerate(self._waiting):
                    size += len(call[0])
                    if n > 0 and size > _SHARED_AGENTS:
                        break
                else:
                    n = len(self._waiting)
                batch, self._waiting = self._waiting[:n], self._waiting[n:]
                args: list[object] = []
                for agents, now, most, _ in batch:
                    args += [now, most, ",".join(map(str, agents))]
                try:
                    answers = await self._run(self._drain_agents, SCAN_LIMIT, *args)
                except Exception as e:  # each caller gets the error, as from their own call
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(e)
                    continue
                for (*_, done), rows in zip(batch, answers, strict=True):
                    if not done.done():
                        done.set_result([c for c in map(_claim, rows) if c is not None])
            batch = []
        finally:
            self._sender = None
            for *_, done in batch + self._waiting:  # only when this task itself was cancelled: no caller hangs
                done.cancel()
            self._waiting = []

    async def accept(self, conversation: ConversationId, agent: AgentId, now: float) -> Claim | None:
        return _claim(await self._run(self._accept, conversation, agent, now))

    async def reject(self, conversation: ConversationId, agent: AgentId, now: float) -> Claim | None:
        return _claim(await self._run(self._reject, conversation, agent, now))

    async def expire_offers(self, now: float, missed_limit: int) -> list[Expiry]:
        out: list[Expiry] = []
        while True:
            rows = await self._run(self._expire, now, _BATCH, missed_limit)
            for cid, aid, q, away in rows:
                out.append(Expiry(int(cid), int(aid), _text(q), int(away) == 1))
            if len(rows) < _BATCH:
                return out

    async def resolve(self, conversation: ConversationId, now: float) -> Release | None:
        r = await self._run(self._resolve, conversation, now)
        if not r:
            return None
        q, aid, until = (_text(x) for x in r)
        return Release(conversation, q, int(aid) if aid else None, float(until) if until else None)

    async def transfer(
        self,
        conversation: ConversationId,
        now: float,
        *,
        queue: QueueId | None = None,
        agent: AgentId | None = None,
        until: float = 0.0,
    ) -> Release | None:
        try:
            r = await self._run(
                self._transfer, conversation, now, queue or "", "" if agent is None else agent, float(until)
            )
        except ResponseError as e:
            raise KeyError(str(e)) from None
        if not r:
            return None
        q, aid = (_text(x) for x in r)
        return Release(conversation, q, int(aid) if aid else None)

    async def set_priority(self, conversation: ConversationId, priority: int) -> bool:
        return bool(await self._run(self._set_priority, conversation, int(priority)))

    async def end_wrapups(self, now: float) -> list[AgentId]:
        return [int(a) for a in await self._run(self._end_wrapups, now)]

    async def release_parked(self, now: float) -> list[Waiting]:
        out: list[Waiting] = []
        while True:
            rows = await self._run(self._release_parked, now, _BATCH)
            for cid, q, ch, pri, enq, cust in rows:
                c = _text(cust)
                out.append(Waiting(int(cid), _text(q), _text(ch), int(pri), float(enq), int(c) if c else None))
            if len(rows) < _BATCH:
                return out

    async def escalate(self, queue: QueueId, stage: int, older_than: float, now: float) -> list[Escalation]:
        out: list[Escalation] = []
        while True:
            rows = await self._run(self._escalate, queue, stage, older_than, now, _BATCH)
            for cid, action, target in rows:
                t = _text(target)
                out.append(Escalation(int(cid), queue, stage, _text(action), t or None))
            if len(rows) < _BATCH:
                return out

    async def responded(self, conversation: ConversationId, now: float) -> FirstResponse | None:
        r = await self._run(self._responded, conversation, now)
        if not r:
            return None
        cid, q, enq, due, noticed = (_text(x) for x in r)
        return FirstResponse(int(cid), q, float(enq), float(due), noticed == "1")

    async def response_breaches(self, now: float) -> list[FirstResponse]:
        out: list[FirstResponse] = []
        while True:
            rows = await self._run(self._response_breaches, now, _BATCH)
            for cid, q, enq, due in rows:
                out.append(FirstResponse(int(cid), _text(q), float(_text(enq)), float(_text(due))))
            if len(rows) < _BATCH:
                return out

    def _hold_args(self, item: Waiting, agent: AgentId, deadline: float | None, now: float) -> list[object]:
        if item.channel not in CAPACITY_CLASS:
            raise KeyError(f"unknown channel {item.channel!r}")
        customer = "" if item.customer is None else str(item.customer)
        return [self.prefix, item.id, item.queue, item.channel, item.priority, repr(float(item.enqueued_at)),
                customer, agent, "" if deadline is None else repr(float(deadline)), repr(float(now)),
                repr(float(item.respond_by))]

    async def hold(self, item: Waiting, agent: AgentId, deadline: float | None, now: float) -> bool:
        args = self._hold_args(item, agent, deadline, now)
        try:
            r = await self._hold(keys=[], args=args)
        except ResponseError as e:
            raise KeyError(str(e)) from None
        return bool(r)

    async def hold_many(self, holds: Sequence[tuple[Waiting, AgentId, float | None]], now: float) -> list[bool]:
        if not holds:
            return []
        pipe = self.client.pipeline(transaction=False)
        for item, agent, deadline in holds:
            await self._hold(keys=[], args=self._hold_args(item, agent, deadline, now), client=pipe)
        out: list[bool] = []
        for r in await pipe.execute(raise_on_error=False):
            if isinstance(r, ResponseError):
                raise KeyError(str(r))
            if isinstance(r, Exception):
                raise r
            out.append(bool(r))
        return out

    async def restore_counts(self, queue: QueueId, counts: Mapping[str, int]) -> None:
        # The plain names only: queue_stats adds the per-outcome counters a decision increments to them.
        flat = [x for k, v in counts.items() if k in COUNTED and v for x in (k, v)]
        await self._run(self._restore_counts, queue, *flat)

    async def version(self) -> int:
        return int(await self.client.get(self.prefix + "v") or 0)

    async def changes(self, since: int) -> tuple[int, list[ConversationId]] | None:
        r = await self._run(self._changes, since)
        return (int(r[0]), [int(cid) for cid in r[1]]) if r else None

    async def trim_changes(self, below: int) -> None:
        await self._run(self._trim_changes, below)

    async def routed(self) -> list[ConversationId]:
        out: list[ConversationId] = []
        start = len(self.prefix) + 2
        async for key in self.client.scan_iter(match=self.prefix + "c:*", count=1000):
            tail = _text(key)[start:]
            if tail.isdigit():
                out.append(int(tail))
        return out

    async def conversation(self, conversation: ConversationId) -> ConversationView | None:
        return _view(conversation, await self.client.hgetall(self.prefix + f"c:{conversation}"))

    async def read_conversations(self, ids: Sequence[ConversationId]) -> dict[ConversationId, ConversationView]:
        if not ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(self.prefix + f"c:{cid}")
        views = zip(ids, await pipe.execute(), strict=True)
        return {cid: v for cid, raw in views if (v := _view(cid, raw)) is not None}

    async def queue_stats(self, queue: QueueId, now: float) -> QueueStats:
        waiting, wait, available, busy, flat = await self._run(self._queue_stats, queue, now)
        counts = {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        offered = counts.get("offered", 0)
        direct = counts.get("direct_in_sla", 0) + counts.get("direct_late", 0)
        accepted_in_sla, accepted_late = counts.get("accepted_in_sla", 0), counts.get("accepted_late", 0)
        return QueueStats(
            queue=queue,
            waiting=int(waiting),
            longest_wait=float(_text(wait)),
            available_agents=int(available),
            busy_agents=int(busy),
            offered=offered + direct,
            accepted=counts.get("accepted", 0) + accepted_in_sla + accepted_late,
            rejected=counts.get("rejected", 0),
            timed_out=counts.get("timed_out", 0),
            # "answered", "answered_in_sla" and "accepted": the counters of state written before the split
            answered=counts.get("answered", 0) + direct + accepted_in_sla + accepted_late,
            answered_in_sla=counts.get("answered_in_sla", 0) + counts.get("direct_in_sla", 0) + accepted_in_sla,
            abandoned=counts.get("abandoned", 0),
            responded=counts.get("responded", 0),
            responded_in_sla=counts.get("responded_in_sla", 0),
            response_breached=counts.get("response_breached", 0),
        )

    async def agent_stats(self, agent: AgentId) -> AgentStats | None:
        return _agent_stats(agent, await self.client.hgetall(self.prefix + f"a:{agent}"))

    async def read_agents(self, ids: Sequence[AgentId]) -> dict[AgentId, AgentStats]:
        if not ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for aid in ids:
            pipe.hgetall(self.prefix + f"a:{aid}")
        stats = zip(ids, await pipe.execute(), strict=True)
        return {aid: s for aid, raw in stats if (s := _agent_stats(aid, raw)) is not None}


def _view(conversation: ConversationId, raw: Mapping[Any, Any]) -> ConversationView | None:
    h = {_text(k): _text(v) for k, v in raw.items()}
    if not h:
        return None
    return ConversationView(
        id=conversation,
        queue=h["q"],
        channel=h["ch"],
        priority=int(h["pri"]),
        enqueued_at=float(h["enq"]),
        state=h["st"],
        agent=int(h["ag"]) if h.get("ag") else None,
        stage=int(h["stage"]),
        until=float(h.get("until") or 0),
    )


def _agent_stats(agent: AgentId, raw: Mapping[Any, Any]) -> AgentStats | None:
    h = {_text(k): _text(v) for k, v in raw.items()}
    if not h:
        return None
    cfg = json.loads(h["cfg"])
    return AgentStats(
        agent=agent,
        presence=Presence(h["presence"]),
        load={k: v for k, v in json.loads(h["load"]).items() if v},
        capacity=cfg["capacity"],
        wrapup_until=float(h["wrapup"]),
        missed_in_row=int(h["missed"]),
        offered=int(h.get("n:offered", 0)),
        accepted=int(h.get("n:accepted", 0)),
        rejected=int(h.get("n:rejected", 0)),
        timed_out=int(h.get("n:timed_out", 0)),
    )
