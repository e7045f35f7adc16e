-- switchyard.route: routing rules, and the compiler that turns them into
-- the one decision function the core calls.
--
--   local route = require "switchyard.route"
--   routes = {
--     route.prefix "debug."              :drop "debug metrics stay local",
--     route.glob "api.*.latency"         :sample(0.1) :to "carbon",
--     route.match "^legacy%.(.+)$"       :rename "apps.%1" :to { "carbon", "redis" },
--     route.tag("env", "dev")            :to "console",
--     route.tag "trace"                  :passthrough "traces",
--     route.default()                    :to "carbon",
--   }
--
-- A rule is a list of conditions (all must hold) and actions.  The first
-- rule that matches decides; a key no rule matches takes the default route
-- (route.default(), or every sink when there is none).  The core asks once
-- per key (and again after a reload) and caches the answer: samples of a
-- known key never enter Lua.

local M = {}

local Rule = {}
Rule.__index = Rule

local function new_rule()
  return setmetatable({ conds = {}, sinks = nil, raw = nil }, Rule)
end

-- Globs.  `*` is any run of characters but '.', `**` any run at all, and
-- each star is a capture (for rename "%1").  A key comes from a client, so
-- a glob must cost time linear in the key whatever the glob: written as a
-- Lua pattern, `**.**.**.x` would backtrack (a 600-byte key took seconds,
-- and luaTimeout cannot stop one C call).  So a glob is matched in two
-- passes.  Backwards, row ti of `ok` marks each position from which tokens
-- ti.. can match the rest of the key.  Forwards, each star then takes the
-- capture a backtracking matcher would have found first: the longest for
-- `*` (as `([^.]*)`), the shortest for `**` (as `(.-)`), among those from
-- which the rest can still match.  O(key length x tokens), no recursion.
local DOT = 46

local function glob_tokens(glob)
  local toks, lit, i = {}, {}, 1
  local function flush()
    if #lit > 0 then toks[#toks + 1] = table.concat(lit); lit = {} end
  end
  while i <= #glob do
    local c = glob:sub(i, i)
    if c == "*" then
      flush()
      if glob:sub(i + 1, i + 1) == "*" then
        toks[#toks + 1] = 2
        i = i + 1
      else
        toks[#toks + 1] = 1
      end
    else
      lit[#lit + 1] = c
    end
    i = i + 1
  end
  flush()
  return toks
end

-- The captures of glob tokens `toks` on `s` (a list, empty when the glob
-- has no star), or nil when it does not match.
local function glob_captures(toks, s)
  local n, m = #s, #toks
  -- Cheap refusals first: most rules do not match most keys.
  local first, last = toks[1], toks[m]
  if type(first) == "string" and s:sub(1, #first) ~= first then return nil end
  if type(last) == "string" and (#last > n or s:sub(n - #last + 1) ~= last) then return nil end
  if m == 1 and type(first) == "string" then return #first == n and {} or nil end
  local at = 1 -- every literal must occur, in order, wherever the stars fall
  for ti = 1, m do
    local t = toks[ti]
    if type(t) == "string" then
      local p = s:find(t, at, true)
      if not p then return nil end
      at = p + #t
    end
  end

  local ok = {}
  local nxt = { [n + 1] = true }
  ok[m + 1] = nxt
  for ti = m, 1, -1 do
    local t, row = toks[ti], {}
    if type(t) == "string" then
      local len = #t
      local p = s:find(t, 1, true)
      while p do
        if nxt[p + len] then row[p] = true end
        p = s:find(t, p + 1, true)
      end
    elseif t == 1 then
      local reach = nxt[n + 1]
      row[n + 1] = reach
      for si = n, 1, -1 do
        reach = nxt[si] or (reach and s:byte(si) ~= DOT) or nil
        row[si] = reach
      end
    else
      local reach = nxt[n + 1]
      row[n + 1] = reach
      for si = n, 1, -1 do
        reach = nxt[si] or reach
        row[si] = reach
      end
    end
    ok[ti] = row
    nxt = row
  end
  if not ok[1][1] then return nil end

  local caps, si = {}, 1
  for ti = 1, m do
    local t, after = toks[ti], ok[ti + 1]
    if type(t) == "string" then
      si = si + #t
    elseif t == 1 then
      local e = si
      while e <= n and s:byte(e) ~= DOT do e = e + 1 end
      while not after[e] do e = e - 1 end
      caps[#caps + 1] = s:sub(si, e - 1)
      si = e
    else
      local e = si
      while not after[e] do e = e + 1 end
      caps[#caps + 1] = s:sub(si, e - 1)
      si = e
    end
  end
  return caps
end
M.glob_captures = function(glob, s) return glob_captures(glob_tokens(glob), s) end

-- A rename template with %0-%9 filled in as string.gsub fills them: %0 is
-- the whole name (as is %1 when there are no captures), %% a '%'.
local function expand(template, whole, caps)
  return (template:gsub("%%(.)", function(c)
    if c == "0" or (c == "1" and #caps == 0) then return whole end
    local d = tonumber(c)
    if d then return caps[d] end
    return c
  end))
end

-- IPv4 address text -> number, or nil.
local function ipv4(s)
  local a, b, c, d = tostring(s):match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function cidr_matcher(spec)
  local addr, bits = spec:match("^([^/]+)/(%d+)$")
  addr = addr or spec
  local base = ipv4(addr)
  if not base then
    -- IPv6 and anything else: compare the text
    return function(m) return m.sender == addr end
  end
  bits = tonumber(bits or 32)
  if bits < 0 or bits > 32 then error("bad prefix length in '" .. spec .. "'", 3) end
  local size = 2 ^ (32 - bits)
  local lo = base - base % size
  return function(m)
    local ip = ipv4(m.sender)
    return ip ~= nil and ip >= lo and ip < lo + size
  end
end

-- Conditions.  Each is available as route.X(...) to start a rule and as
-- rule:X(...) to narrow one.
local conds = {}

function conds.prefix(p)
  assert(type(p) == "string", "prefix needs a string")
  return function(m) return m.name:sub(1, #p) == p end
end

-- glob and match also return what rename needs: the number of captures
-- and how to fill a template from the name.
function conds.glob(g)
  assert(type(g) == "string", "glob needs a string")
  local toks, stars = glob_tokens(g), 0
  for _, t in ipairs(toks) do
    if type(t) == "number" then stars = stars + 1 end
  end
  if stars <= 1 then
    -- One star cannot backtrack far (it is tried at each length of one
    -- run), so the faster Lua pattern is safe here.
    local pat = { "^" }
    for _, t in ipairs(toks) do
      pat[#pat + 1] = t == 1 and "([^.]*)" or t == 2 and "(.-)" or t:gsub("%p", "%%%0")
    end
    pat = table.concat(pat) .. "$"
    return function(m) return m.name:match(pat) ~= nil end,
      { captures = stars,
        rename = function(name, template) return expand(template, name, stars == 1 and { name:match(pat) } or {}) end }
  end
  return function(m) return glob_captures(toks, m.name) ~= nil end,
    { captures = stars,
      rename = function(name, template) return expand(template, name, glob_captures(toks, name)) end }
end

function conds.match(pat)
  assert(type(pat) == "string", "match needs a Lua pattern")
  local ok, err = pcall(string.find, "", pat)
  if not ok then error("bad Lua pattern '" .. pat .. "': " .. tostring(err), 3) end
  return function(m) return m.name:match(pat) ~= nil end,
    { captures = M.count_captures(pat),
      rename = function(name, template) return (name:gsub(pat, template, 1)) end }
end

-- tag("env") holds when the tag is present; tag("env", "prod") when it has
-- that value; tag("env", {"prod", "stage"}) when it has one of them.
function conds.tag(name, value)
  assert(type(name) == "string", "tag needs a tag name")
  if value == nil then
    return function(m) return m.tags[name] ~= nil end
  elseif type(value) == "table" then
    local set = {}
    for _, v in ipairs(value) do set[tostring(v)] = true end
    return function(m) return set[m.tags[name]] == true end
  end
  value = tostring(value)
  return function(m) return m.tags[name] == value end
end

-- listener("tcp") matches the kind (udp, tcp, unix, unixgram) or the whole
-- listen URL.
function conds.listener(l)
  assert(type(l) == "string", "listener needs a kind or a URL")
  return function(m) return m.listener == l or m.listener:match("^(%a+)://") == l end
end

function conds.sender(spec)
  assert(type(spec) == "string", "sender needs an address or CIDR block")
  return cidr_matcher(spec)
end

local type_names = { c = "c", counter = "c", g = "g", gauge = "g", ms = "ms", timer = "ms",
                     h = "ms", d = "ms", s = "s", set = "s" }

-- The type name rules see ("c", "g", "ms", "s") for any accepted spelling.
function M.type_name(t) return type_names[t] end
function conds.type(t)
  local want = type_names[t]
  if not want then error("unknown metric type '" .. tostring(t) .. "'", 3) end
  return function(m) return m.type == want end
end

function conds.when(fn)
  assert(type(fn) == "function", "when needs a function(m)")
  return fn
end

-- Rules with these conditions depend on where a sample came from, so their
-- decisions are cached per sender instead of per key.
local by_origin = { listener = true, sender = true, when = true }

for name, make in pairs(conds) do
  Rule[name] = function(self, ...)
    local fn, pat = make(...)
    self.conds[#self.conds + 1] = fn
    if pat then self.pattern = pat end -- captures for rename
    if by_origin[name] then self.uses_origin = true end
    return self
  end
  M[name] = function(...) return Rule[name](new_rule(), ...) end
end

function M.default()
  local r = new_rule()
  r.is_default = true
  return r
end

local function names(...)
  local list = select("#", ...) == 1 and type((...)) == "table" and (...) or { ... }
  for _, n in ipairs(list) do
    if type(n) ~= "string" then error("sink names must be strings", 3) end
  end
  return list
end

-- Actions.
function Rule:to(...) self.sinks = names(...); return self end
function Rule:passthrough(...) self.raw = names(...); return self end
function Rule:drop(reason) self.dropped = reason or "dropped by a rule"; return self end
function Rule:sample(p)
  if type(p) ~= "number" or p <= 0 or p > 1 then error("sample needs a fraction in (0, 1]", 2) end
  self.rate = p
  return self
end
-- rename("apps.%1") uses the captures of the rule's glob/match; a function
-- gets the metric and returns the new name.
function Rule:rename(x)
  if type(x) ~= "string" and type(x) ~= "function" then error("rename needs a string or function", 2) end
  self.new_name = x
  return self
end

-- label("endpoint", "%1"): a tag on the routed key (";endpoint=users",
-- a Prometheus label at the prometheus and remote_write sinks), its value
-- a template filled from the rule's captures as rename's is, or a function
-- of the metric.  A tag the key already has by that name is replaced; an
-- empty value removes it.  Labels accumulate: :label("a", "%1") :label("b", "%2").
function Rule:label(name, value)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    error("label needs a name of letters, digits and '_', not starting with a digit", 2)
  end
  if type(value) ~= "string" and type(value) ~= "function" then
    error("label needs a value: a template such as \"%1\", or a function(m)", 2)
  end
  self.labels = self.labels or {}
  self.labels[#self.labels + 1] = { name = name, value = value }
  return self
end

-- How many captures a Lua pattern has (escapes and sets skipped).
local function count_captures(pat)
  local n, i = 0, 1
  while i <= #pat do
    local c = pat:sub(i, i)
    if c == "%" then
      i = i + 1
    elseif c == "[" then
      i = i + 1
      if pat:sub(i, i) == "^" then i = i + 1 end
      if pat:sub(i, i) == "]" then i = i + 1 end
      while i <= #pat and pat:sub(i, i) ~= "]" do
        if pat:sub(i, i) == "%" then i = i + 1 end
        i = i + 1
      end
    elseif c == "(" and pat:sub(i + 1, i + 1) ~= ")" then
      n = n + 1
    end
    i = i + 1
  end
  return n
end
M.count_captures = count_captures
function Rule:addprefix(p)
  assert(type(p) == "string", "addprefix needs a string")
  self.name_prefix = p
  return self
end

M.Rule = Rule

-- Graphite-style tags of a key ("name;k=v;flag") as a table.
local function split_key(key)
  local name, rest = key:match("^([^;]*)(.*)$")
  local tags = {}
  for part in rest:gmatch(";([^;]*)") do
    local k, v = part:match("^([^=]*)=(.*)$")
    if k then tags[k] = v else tags[part] = true end
  end
  return name, tags
end
M.split_key = split_key

-- A label's value as it can stand in a key: the bytes a sanitised key
-- keeps, others as '_' (';' and '=' would split the tag, a space the
-- Graphite line).
local function label_value(v)
  return (tostring(v):gsub("[^%w_.%-]", "_"))
end

-- The key's tag text (";k=v;flag") with the rule's labels set.
local function set_tag(tagtext, k, v)
  local out, found = {}, false
  for part in tagtext:gmatch(";([^;]*)") do
    if (part:match("^([^=]*)=") or part) == k then
      if not found and v ~= "" then out[#out + 1] = k .. "=" .. v end
      found = true
    else
      out[#out + 1] = part
    end
  end
  if not found and v ~= "" then out[#out + 1] = k .. "=" .. v end
  return #out > 0 and ";" .. table.concat(out, ";") or ""
end

local function with_labels(tagtext, c, m)
  for _, l in ipairs(c.labels) do
    local v
    if type(l.value) == "function" then
      v = l.value(m)
      if type(v) ~= "string" and type(v) ~= "number" then
        error("label '" .. l.name .. "': the function must return a string or a number")
      end
    elseif c.pattern then
      v = c.pattern.rename(m.name, l.value)
    else
      v = l.value
    end
    tagtext = set_tag(tagtext, l.name, label_value(v))
  end
  return tagtext
end

--[[
Compile the rules into decide(key, type, listener, sender), which returns

  drop_reason (nil to keep), sinks_mask, raw_mask, new_key (nil: same), rate

and, as a second result, whether any rule looks at the listener or sender.

`sink_bits` maps each sink name to its bit (a power of two).  Unknown sink
names are errors here, at load time, not when a metric first arrives.
]]
function M.compile(rules, sink_bits, where)
  where = where or "routes"
  local all = 0
  for _, bit in pairs(sink_bits) do all = all + bit end
  local function mask(list, i)
    if not list then return 0 end
    local m = 0
    for _, n in ipairs(list) do
      local bit = sink_bits[n]
      if not bit then
        error(string.format("%s[%d]: no sink named '%s'", where, i, n), 0)
      end
      m = m + bit
    end
    return m
  end

  local compiled, default, uses_origin = {}, nil, false
  for i, r in ipairs(rules) do
    if getmetatable(r) ~= Rule then
      error(string.format("%s[%d]: not a rule (build rules with route.prefix, route.glob, ...)", where, i), 0)
    end
    if not (r.sinks or r.raw or r.dropped) then
      error(string.format("%s[%d]: a rule needs :to(...), :passthrough(...) or :drop()", where, i), 0)
    end
    uses_origin = uses_origin or r.uses_origin or false
    local function check_template(t, what)
      if type(t) ~= "string" then return end
      local have = r.pattern and r.pattern.captures or 0
      for d in t:gmatch("%%(%d)") do
        if tonumber(d) > have and not (tonumber(d) == 0 and r.pattern) then
          error(string.format("%s[%d]: %s uses %%%s but the rule's pattern has %d capture%s",
                              where, i, what, d, have, have == 1 and "" or "s"), 0)
        end
      end
    end
    check_template(r.new_name, "rename")
    for _, l in ipairs(r.labels or {}) do check_template(l.value, "label '" .. l.name .. "'") end
    local c = { conds = r.conds, pattern = r.pattern, dropped = r.dropped,
                sinks = mask(r.sinks, i), raw = mask(r.raw, i), rate = r.rate or 1,
                new_name = r.new_name, name_prefix = r.name_prefix, labels = r.labels }
    if r.is_default then
      if default then error(string.format("%s[%d]: a second route.default()", where, i), 0) end
      default = c
    else
      compiled[#compiled + 1] = c
    end
  end
  default = default or { conds = {}, sinks = all, raw = 0, rate = 1 }

  local function apply(c, m)
    if c.dropped then return c.dropped, 0, 0, nil, 1 end
    local name = m.name
    if c.new_name then
      if type(c.new_name) == "function" then
        name = c.new_name(m)
        if type(name) ~= "string" or name == "" then error("rename function must return a name") end
      elseif c.pattern then
        name = c.pattern.rename(m.name, c.new_name)
      else
        name = c.new_name
      end
    end
    if c.name_prefix then name = c.name_prefix .. name end
    local tagtext = m.tagtext
    if c.labels then tagtext = with_labels(tagtext, c, m) end
    local key = nil
    if name ~= m.name or tagtext ~= m.tagtext then key = name .. tagtext end
    return nil, c.sinks, c.raw, key, c.rate
  end

  return function(key, mtype, listener, sender)
    local name, tags = split_key(key)
    local m = { key = key, name = name, tags = tags, tagtext = key:sub(#name + 1),
                type = mtype, listener = listener or "", sender = sender or "" }
    for _, c in ipairs(compiled) do
      local ok = true
      for _, cond in ipairs(c.conds) do
        if not cond(m) then ok = false; break end
      end
      if ok then return apply(c, m) end
    end
    return apply(default, m)
  end, uses_origin
end

--[[
Compile the auth setting into authorize(token, sender, listener), which
returns true and an optional namespace, or false.

  auth = { tokens = { abc123 = true, t1key = "tenant1",
                      k9 = { namespace = "t9", senders = { "10.0.0.0/8" } } } }
  auth = function(token, sender, listener) return true, "ns" end
]]
function M.compile_auth(auth)
  if auth == nil then return nil end
  if type(auth) == "function" then return auth end
  if type(auth) ~= "table" or type(auth.tokens) ~= "table" then
    error("auth must be a function(token, sender, listener) or { tokens = { ... } }", 0)
  end
  local entries = {}
  for token, v in pairs(auth.tokens) do
    if type(token) ~= "string" or token == "" or token:find("[.:|]") then
      error("auth.tokens: '" .. tostring(token) .. "' cannot be a token (no '.', ':' or '|')", 0)
    end
    local e = { namespace = nil, senders = nil }
    if type(v) == "string" then
      e.namespace = v
    elseif type(v) == "table" then
      e.namespace = v.namespace
      if v.senders then
        e.senders = {}
        for _, s in ipairs(v.senders) do e.senders[#e.senders + 1] = cidr_matcher(s) end
      end
    elseif v ~= true then
      error("auth.tokens." .. token .. ": must be true, a namespace or a table", 0)
    end
    entries[token] = e
  end
  return function(token, sender)
    local e = entries[token]
    if not e then return false end
    if e.senders then
      local m = { sender = sender }
      local ok = false
      for _, match in ipairs(e.senders) do
        if match(m) then ok = true; break end
      end
      if not ok then return false end
    end
    return true, e.namespace
  end
end

return M
