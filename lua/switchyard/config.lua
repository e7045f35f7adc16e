-- switchyard.config: load, check and complete a switchyard config.
--
-- A config is a Lua file returning a table.  Option names follow Etsy
-- statsd's exampleConfig.js, so a statsd config ports line by line; the
-- statsd-only shortcuts (graphiteHost, port, servers, backends) are
-- translated into listeners and sinks.  Every error names the file, the
-- line where the key is written, and the key.

local route = require "switchyard.route"

local M = {}

-- The config `switchyard` runs with when given none.
M.default_source = [[
return {
  listen = { "udp://127.0.0.1:8125", "tcp://127.0.0.1:8125" },
  flushInterval = 10000,
  mgmt_port = 8126,
  httpAddress = "127.0.0.1:8127",
  sinks = { console = { plugin = "console" } },
}
]]

local known = {
  listen = "list", flushInterval = "number", percentThreshold = "any",
  histogram = "list", deleteIdleStats = "boolean", deleteCounters = "boolean",
  deleteTimers = "boolean", deleteSets = "boolean", deleteGauges = "boolean",
  gaugesMaxTTL = "number", flush_counts = "boolean", prefixStats = "string",
  keyNameSanitize = "boolean", calculatedTimerMetrics = "list", graphite = "table",
  sinks = "table", pluginPath = "string", timerSampleLimit = "number", setMemberLimit = "number",
  maxKeys = "number", limits = "list", ringSize = "number", shutdownTimeout = "number",
  logLevel = "string",
  routes = "list", route = "function", auth = "any", checks = "list",
  sampleSeed = "number", luaMemoryLimit = "number", luaTimeout = "number",
  mgmt_address = "string", mgmt_port = "number", httpAddress = "string", healthStatus = "string",
  traces = "table", dogstatsdEvents = "list",
  dogstatsdTimestampMaxAge = "number", dogstatsdTimestampMaxAhead = "number",
  -- statsd's own names, translated below
  graphiteHost = "string", graphitePort = "number", port = "number",
  address = "string", address_ipv6 = "boolean", servers = "list",
  backends = "list", debug = "boolean",
}

local graphite_known = {
  legacyNamespace = "boolean", globalPrefix = "string", prefixCounter = "string",
  prefixTimer = "string", prefixGauge = "string", prefixSet = "string",
  globalSuffix = "string",
}

local limit_known = { tenant = "string", prefix = "string", listener = "string", maxKeys = "number" }

local listener_known = {
  url = "string", receiveBuffer = "number", threads = "number",
  maxLineLength = "number", maxConnections = "number", idleTimeout = "number",
  mode = "any", auth = "boolean",
}

-- Where a key is written: the first line that assigns it, searching from
-- `from` on.  Good enough to point at the right line of a config.
local function line_of(source, key, from)
  if not source or not key then return nil end
  local n = 0
  local pat = "%f[%w_]" .. key:gsub("%p", "%%%0") .. "%f[^%w_]%s*="
  local qpat = "%[%s*[\"']" .. key:gsub("%p", "%%%0") .. "[\"']%s*%]%s*="
  for line in (source .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if n >= (from or 1) and (line:find(pat) or line:find(qpat)) then return n end
  end
  return nil
end

local Checker = {}
Checker.__index = Checker

function Checker:fail(path, msg)
  local leaf = path:match("([%w_]+)$")
  local parent = path:match("^([%w_]+)%.")
  local from = parent and line_of(self.source, parent) or 1
  local line = line_of(self.source, leaf, from) or line_of(self.source, leaf)
  error({ where = self.file .. (line and (":" .. line) or ""), key = path, msg = msg }, 0)
end

function Checker:type(path, v, want)
  if want == "any" or v == nil then return v end
  if want == "list" then
    if type(v) ~= "table" then self:fail(path, "must be a list") end
    for k in pairs(v) do
      if type(k) ~= "number" then self:fail(path, "must be a list (found key '" .. tostring(k) .. "')") end
    end
    return v
  end
  if type(v) ~= want then
    self:fail(path, "must be a " .. want .. ", not " .. type(v))
  end
  return v
end

-- Levenshtein distance between two short names.
local function distance(a, b)
  if #a > 64 or #b > 64 then return math.huge end
  local row = {}
  for j = 0, #b do row[j] = j end
  for i = 1, #a do
    local diag, ca = row[0], a:byte(i)
    row[0] = i
    for j = 1, #b do
      local up = row[j]
      row[j] = math.min(up + 1, row[j - 1] + 1, diag + (ca == b:byte(j) and 0 or 1))
      diag = up
    end
  end
  return row[#b]
end

-- The known name closest to a misspelt one, or nil when none is close: at
-- most two edits, and fewer edits than the name has letters.  Ties go to
-- the first in sorted order, so the hint does not depend on table order.
local function closest(name, spec)
  local names = {}
  for k in pairs(spec) do names[#names + 1] = k end
  table.sort(names)
  local best, best_d = nil, 3
  for _, k in ipairs(names) do
    local d = distance(name, k)
    if d < best_d and d < #name then best, best_d = k, d end
  end
  return best
end
M.closest = closest

function Checker:known(path, t, spec)
  for k, v in pairs(t) do
    if type(k) ~= "string" then self:fail(path, "keys must be names") end
    local p = (path ~= "" and (path .. ".") or "") .. k
    if not spec[k] then
      local hint = closest(k, spec)
      self:fail(p, "unknown option" .. (hint and ("; did you mean " .. hint .. "?") or ""))
    end
    self:type(p, v, spec[k])
  end
end

-- Integers the core stores in fixed-size C types: each has a ceiling
-- (2^31 - 1 unless given), so no value can overflow the conversion.
function Checker:positive_int(path, v, allow_zero, max)
  if v == nil then return end
  max = max or 2147483647
  if type(v) ~= "number" or v % 1 ~= 0 or v < 0 or (v == 0 and not allow_zero) then
    self:fail(path, "must be a " .. (allow_zero and "non-negative" or "positive") .. " integer")
  end
  if v > max then self:fail(path, "must be at most " .. string.format("%.0f", max)) end
end

local function default(v, d) if v == nil then return d end return v end

-- Translate statsd's shortcuts into switchyard's listeners and sinks.
local function translate_statsd(c, t)
  local listen = t.listen and { unpack(t.listen) } or nil
  if t.servers then
    listen = listen or {}
    for i, s in ipairs(t.servers) do
      if type(s) ~= "table" then c:fail("servers", "entries must be tables") end
      local proto = (s.server and s.server:find("tcp")) and "tcp" or "udp"
      if s.socket then
        listen[#listen + 1] = { url = "unix://" .. s.socket, mode = s.socket_mod }
      else
        local host = s.address or (s.address_ipv6 and "::" or "0.0.0.0")
        if host:find(":") then host = "[" .. host .. "]" end
        listen[#listen + 1] = proto .. "://" .. host .. ":" .. (s.port or 8125)
      end
    end
  elseif t.port or t.address then
    listen = listen or {}
    local host = t.address or (t.address_ipv6 and "::" or "0.0.0.0")
    if host:find(":") then host = "[" .. host .. "]" end
    listen[#listen + 1] = "udp://" .. host .. ":" .. (t.port or 8125)
  end
  local sinks = t.sinks
  if not sinks and (t.graphiteHost or t.backends) then
    sinks = {}
    local backends = t.backends or { "./backends/graphite" }
    for _, b in ipairs(backends) do
      local name = tostring(b):match("([%w_]+)$")
      if name == "graphite" then
        if t.graphiteHost then
          sinks.graphite = { plugin = "graphite", host = t.graphiteHost, port = t.graphitePort or 2003 }
        end
      elseif name == "console" then
        sinks.console = { plugin = "console" }
      else
        c:fail("backends", "statsd backend '" .. tostring(b) .. "' has no switchyard sink; use sinks = { ... }")
      end
    end
  end
  return listen, sinks
end

-- Check the user's table and return a complete one with every default.
function M.normalize(t, file, source)
  local c = setmetatable({ file = file or "config", source = source }, Checker)
  if type(t) ~= "table" then
    error({ where = c.file, key = "(config)", msg = "the config must return a table" }, 0)
  end
  c:known("", t, known)

  local out = {}
  local listen, sinks = translate_statsd(c, t)
  out.listen = {}
  for i, l in ipairs(listen or { "udp://0.0.0.0:8125" }) do
    local p = "listen"
    if type(l) == "string" then
      out.listen[i] = { url = l }
    elseif type(l) == "table" then
      c:known(p, l, listener_known)
      if type(l.url) ~= "string" then c:fail(p, "entry " .. i .. " needs a url") end
      c:positive_int(p .. ".receiveBuffer", l.receiveBuffer, false, 2 ^ 31)
      c:positive_int(p .. ".threads", l.threads, false, 64)
      c:positive_int(p .. ".maxLineLength", l.maxLineLength, false, 2 ^ 30)
      c:positive_int(p .. ".maxConnections", l.maxConnections, false, 1000000)
      c:positive_int(p .. ".idleTimeout", l.idleTimeout, true)
      local mode = l.mode
      if type(mode) == "string" then mode = tonumber(mode, 8) end
      if l.mode ~= nil and (type(mode) ~= "number" or mode < 0 or mode > 4095 or mode % 1 ~= 0) then
        c:fail(p .. ".mode", "must be an octal string like \"0660\"")
      end
      out.listen[i] = { url = l.url, receiveBuffer = l.receiveBuffer, threads = l.threads,
                        maxLineLength = l.maxLineLength, maxConnections = l.maxConnections,
                        idleTimeout = l.idleTimeout, mode = mode, auth = l.auth or false }
    else
      c:fail(p, "entries must be URLs or tables")
    end
    local scheme = out.listen[i].url:match("^(%a+)://")
    if not (scheme == "udp" or scheme == "tcp" or scheme == "unix" or scheme == "unixgram") then
      c:fail(p, "'" .. out.listen[i].url .. "': the scheme must be udp://, tcp://, unix:// or unixgram://")
    end
  end

  out.flushInterval = default(t.flushInterval, 10000)
  c:positive_int("flushInterval", out.flushInterval)

  local pct = default(t.percentThreshold, 90)
  if type(pct) == "number" then pct = { pct } end
  if type(pct) ~= "table" then c:fail("percentThreshold", "must be a number or a list of numbers") end
  out.percentThreshold = {}
  for i, p in ipairs(pct) do
    local n = tonumber(p)
    if not n or n ~= n or n == math.huge or n == -math.huge or n > 100 or n < -100 then
      c:fail("percentThreshold", "entries must be numbers between -100 and 100")
    end
    out.percentThreshold[i] = n
  end

  out.histogram = {}
  for i, h in ipairs(t.histogram or {}) do
    if type(h) ~= "table" or type(h.metric) ~= "string" or type(h.bins) ~= "table" then
      c:fail("histogram", "entries must be { metric = \"...\", bins = { ... } }")
    end
    local bins = {}
    local last = -math.huge
    for j, b in ipairs(h.bins) do
      local v = (b == "inf") and math.huge or tonumber(b)
      if not v then c:fail("histogram", "bins must be numbers or \"inf\"") end
      if v <= last then c:fail("histogram", "bins of '" .. h.metric .. "' must increase") end
      last = v
      bins[j] = v
    end
    out.histogram[i] = { metric = h.metric, bins = bins }
  end

  -- statsd: deleteIdleStats switches the four on unless each is set.
  out.deleteIdleStats = default(t.deleteIdleStats, false)
  for _, k in ipairs({ "deleteCounters", "deleteTimers", "deleteSets", "deleteGauges" }) do
    out[k] = default(t[k], out.deleteIdleStats)
  end
  -- statsd forces gaugesMaxTTL to 1 unless it is an integer above 1.
  local ttl = t.gaugesMaxTTL
  out.gaugesMaxTTL = (type(ttl) == "number" and ttl % 1 == 0 and ttl > 1 and ttl < 2 ^ 31) and ttl or 1
  out.flush_counts = default(t.flush_counts, true)
  out.prefixStats = default(t.prefixStats, "statsd")
  out.keyNameSanitize = default(t.keyNameSanitize, true)
  out.calculatedTimerMetrics = {}
  for i, m in ipairs(t.calculatedTimerMetrics or {}) do
    if type(m) ~= "string" then c:fail("calculatedTimerMetrics", "entries must be strings") end
    out.calculatedTimerMetrics[i] = m
  end

  local g = t.graphite or {}
  c:known("graphite", g, graphite_known)
  out.graphite = {
    legacyNamespace = default(g.legacyNamespace, true),
    globalPrefix = default(g.globalPrefix, "stats"),
    prefixCounter = default(g.prefixCounter, "counters"),
    prefixTimer = default(g.prefixTimer, "timers"),
    prefixGauge = default(g.prefixGauge, "gauges"),
    prefixSet = default(g.prefixSet, "sets"),
    globalSuffix = g.globalSuffix,
  }

  out.sinks = {}
  out.sink_lines = {}
  for name, s in pairs(sinks or {}) do
    local p = "sinks." .. tostring(name)
    if type(name) ~= "string" or not name:match("^[%w_%-]+$") then
      c:fail("sinks", "sink names must be words (letters, digits, _ and -)")
    end
    if type(s) ~= "table" then c:fail(p, "must be a table") end
    if type(s.plugin) ~= "string" then c:fail(p .. ".plugin", "must name a plugin") end
    local settings = {}
    for k, v in pairs(s) do
      if type(k) ~= "string" then c:fail(p, "setting names must be strings") end
      local tv = type(v)
      if k == "spool" and tv == "table" then
        -- the host's disk spool: its keys become "spool.<key>" settings
        for sk, sv in pairs(v) do
          local st = type(sv)
          if type(sk) ~= "string" or (st ~= "string" and st ~= "number" and st ~= "boolean") then
            c:fail(p .. ".spool", "must be a table of named strings and numbers, e.g. "
              .. "spool = { dir = \"/var/lib/switchyard/spool\", maxBytes = \"4GiB\" }")
          end
          settings["spool." .. sk] = sv
        end
        v = nil
      elseif tv == "table" then
        for _, e in ipairs(v) do
          if type(e) ~= "string" and type(e) ~= "number" then
            c:fail(p .. "." .. k, "lists may hold only strings and numbers")
          end
        end
      elseif tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
        c:fail(p .. "." .. k, "must be a string, number, boolean or list")
      end
      if v ~= nil then settings[k] = v end
    end
    out.sinks[name] = settings
    -- where each key is written, so errors found later (a missing plugin,
    -- an unknown setting) can name the line too
    local at = line_of(source, name, line_of(source, "sinks")) or 0
    local lines = { [""] = at }
    for k in pairs(settings) do lines[k] = line_of(source, k, at) or at end
    out.sink_lines[name] = lines
  end
  if next(out.sinks) == nil then
    c:fail("sinks", "no sinks: add one, e.g. sinks = { out = { plugin = \"console\" } }")
  end

  out.pluginPath = t.pluginPath
  out.timerSampleLimit = default(t.timerSampleLimit, 100000)
  c:positive_int("timerSampleLimit", out.timerSampleLimit, true, 2 ^ 31)
  out.setMemberLimit = default(t.setMemberLimit, 100000)
  c:positive_int("setMemberLimit", out.setMemberLimit, true, 2 ^ 31)
  out.dogstatsdTimestampMaxAge = default(t.dogstatsdTimestampMaxAge, 600)
  c:positive_int("dogstatsdTimestampMaxAge", out.dogstatsdTimestampMaxAge, true, 10 * 365 * 86400)
  out.dogstatsdTimestampMaxAhead = default(t.dogstatsdTimestampMaxAhead, 60)
  c:positive_int("dogstatsdTimestampMaxAhead", out.dogstatsdTimestampMaxAhead, true, 86400)
  out.maxKeys = default(t.maxKeys, 0)
  c:positive_int("maxKeys", out.maxKeys, true, 2 ^ 40)
  out.limits = M.check_limits(c, t.limits, out.listen)
  out.ringSize = default(t.ringSize, 64 * 1024 * 1024)
  c:positive_int("ringSize", out.ringSize, false, 2 ^ 40)
  if out.ringSize < 256 * 1024 then c:fail("ringSize", "must be at least 262144 bytes") end
  out.shutdownTimeout = default(t.shutdownTimeout, 10000)
  c:positive_int("shutdownTimeout", out.shutdownTimeout, true)
  out.logLevel = default(t.logLevel, t.debug and "debug" or "info")
  if not ({ error = 1, warn = 1, info = 1, debug = 1 })[out.logLevel] then
    c:fail("logLevel", "must be one of error, warn, info, debug")
  end
  out.sampleSeed = t.sampleSeed
  c:positive_int("sampleSeed", out.sampleSeed, true, 2 ^ 53)
  -- statsd's management console: off unless a port is given (several
  -- routers on one host would otherwise fight over 8126).
  out.mgmt_address = default(t.mgmt_address, "127.0.0.1")
  out.mgmt_port = t.mgmt_port
  if out.mgmt_port ~= nil then c:positive_int("mgmt_port", out.mgmt_port, true, 65535) end
  out.httpAddress = t.httpAddress
  if out.httpAddress ~= nil and not out.httpAddress:match("^[%w%.%-:%[%]]*:%d+$") then
    c:fail("httpAddress", "must be HOST:PORT, e.g. \"127.0.0.1:8127\"")
  end
  if out.httpAddress ~= nil and tonumber(out.httpAddress:match(":(%d+)$")) > 65535 then
    c:fail("httpAddress", "the port must be at most 65535")
  end
  out.healthStatus = default(t.healthStatus, "up")
  if out.healthStatus ~= "up" and out.healthStatus ~= "down" then
    c:fail("healthStatus", "must be \"up\" or \"down\"")
  end
  -- The /traces dashboard reads the memcached that a memcache_traces sink
  -- writes to: traces = { memcached = "HOST:PORT", prefix = "..." }.
  if t.traces ~= nil then
    if type(t.traces.memcached) ~= "string" then c:fail("traces.memcached", "must be HOST:PORT") end
    out.traces = { memcached = t.traces.memcached, prefix = t.traces.prefix }
  end
  -- DogStatsD events and service checks: counted always, and forwarded
  -- as received to the sinks named here (their plugin must take raw lines,
  -- which the core checks when it loads the plugins).
  out.dogstatsdEvents = {}
  for i, name in ipairs(t.dogstatsdEvents or {}) do
    if type(name) ~= "string" or out.sinks[name] == nil then
      c:fail("dogstatsdEvents", "entry " .. i .. ": no sink named '" .. tostring(name) .. "'")
    end
    out.dogstatsdEvents[i] = name
  end
  out.luaMemoryLimit = default(t.luaMemoryLimit, 64 * 1024 * 1024)
  c:positive_int("luaMemoryLimit", out.luaMemoryLimit, false, 2 ^ 40)
  out.luaTimeout = default(t.luaTimeout, 200)
  c:positive_int("luaTimeout", out.luaTimeout)

  M.compile_routing(c, t, out)
  return out
end

-- Series budgets: limits = { { tenant = "t1", maxKeys = 10000 },
-- { prefix = "debug.", maxKeys = 1000 }, { listener = "udp://...", maxKeys = N } }.
-- Each entry names one tenant (a token's namespace), name prefix or
-- listener (one of `listen`), and a positive maxKeys.  Returned as
-- { kind = ..., value = ..., maxKeys = ... } for the core.
function M.check_limits(c, limits, listen)
  local out, seen = {}, {}
  if limits == nil then return out end
  if #limits > 64 then c:fail("limits", "at most 64 budgets, not " .. #limits) end
  for i, l in ipairs(limits) do
    local p = "limits"
    if type(l) ~= "table" then c:fail(p, "entry " .. i .. " must be { tenant|prefix|listener = \"...\", maxKeys = N }") end
    c:known(p, l, limit_known)
    local kind, value
    for _, k in ipairs({ "tenant", "prefix", "listener" }) do
      if l[k] ~= nil then
        if kind then c:fail(p, "entry " .. i .. " names both " .. kind .. " and " .. k .. "; give one") end
        kind, value = k, l[k]
      end
    end
    if not kind then c:fail(p, "entry " .. i .. " needs one of tenant, prefix or listener") end
    if value == "" or value:find("%z") or #value > 1024 then
      c:fail(p .. "." .. kind, "entry " .. i .. ": must be a non-empty string of at most 1024 bytes without NUL")
    end
    if l.maxKeys == nil then c:fail(p, "entry " .. i .. " (" .. kind .. " '" .. value .. "') needs maxKeys") end
    c:positive_int(p .. ".maxKeys", l.maxKeys, false, 2 ^ 40)
    if kind == "listener" then
      local found = false
      for _, li in ipairs(listen) do if li.url == value then found = true end end
      if not found then
        local urls = {}
        for _, li in ipairs(listen) do urls[#urls + 1] = li.url end
        c:fail(p .. ".listener", "entry " .. i .. ": '" .. value .. "' is not a listener (listen = { "
               .. table.concat(urls, ", ") .. " })")
      end
    end
    local label = kind .. "=" .. value
    if seen[label] then c:fail(p, "entry " .. i .. ": a second budget for " .. label) end
    seen[label] = true
    out[#out + 1] = { kind = kind, value = value, maxKeys = l.maxKeys }
  end
  return out
end

-- Sinks get bits in name order, so the same config always gives the same
-- masks.  The core reads them from out.sink_order.
local function sink_bits(sinks)
  local order = {}
  for name in pairs(sinks) do order[#order + 1] = name end
  table.sort(order)
  if #order > 52 then error({ where = "config", key = "sinks", msg = "at most 52 sinks" }, 0) end
  local bits = {}
  for i, name in ipairs(order) do bits[name] = 2 ^ (i - 1) end
  return bits, order
end

-- A custom route(m) function answers with a table; adapt it to the
-- decide() signature the core calls.
local function wrap_route_fn(fn, bits)
  local function mask(list)
    local m = 0
    for _, n in ipairs(list or {}) do
      local b = bits[n]
      if not b then error("route(): no sink named '" .. tostring(n) .. "'") end
      m = m + b
    end
    return m
  end
  local all = 0
  for _, b in pairs(bits) do all = all + b end
  return function(key, mtype, listener, sender)
    local name, tags = route.split_key(key)
    local m = { key = key, name = name, tags = tags, type = mtype,
                listener = listener or "", sender = sender or "" }
    local d = fn(m)
    if d == nil then return nil, all, 0, nil, 1 end
    if d == false or (type(d) == "table" and d.drop) then
      return (type(d) == "table" and type(d.drop) == "string") and d.drop or "dropped by route()", 0, 0, nil, 1
    end
    if type(d) ~= "table" then error("route() must return a table, false or nil") end
    local newkey = nil
    if d.name and d.name ~= name then newkey = d.name .. key:sub(#name + 1) end
    local rate = d.sample or 1
    if type(rate) ~= "number" or rate <= 0 or rate > 1 then error("route(): sample must be in (0, 1]") end
    return nil, d.sinks and mask(d.sinks) or (d.passthrough and 0 or all), mask(d.passthrough), newkey, rate
  end
end

local function mask_names(mask, order)
  local list = {}
  for i, name in ipairs(order) do
    if math.floor(mask / 2 ^ (i - 1)) % 2 == 1 then list[#list + 1] = name end
  end
  return list
end
M.mask_names = mask_names

local function same_list(a, b)
  table.sort(a); table.sort(b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- Self-checks, run at every load and reload: a config that routes its own
-- examples wrongly is refused and the old one keeps running.
--   checks = { { "debug.x", drop = true }, { "api.a.latency", to = { "carbon" } },
--              { "legacy.x", type = "ms", name = "apps.x" } }
local function run_checks(c, checks, decide, order)
  for i, chk in ipairs(checks or {}) do
    local p = "checks"
    if type(chk) ~= "table" or type(chk[1]) ~= "string" then
      c:fail(p, "entry " .. i .. " must be { \"key\", to = {...} | drop = true | name = \"...\" }")
    end
    local key = chk[1]
    local mtype = route.type_name(chk.type or "c")
    if not mtype then c:fail(p, "entry " .. i .. ": unknown metric type '" .. tostring(chk.type) .. "'") end
    local ok, drop, sinks, raw, newkey = pcall(decide, key, mtype, chk.listener or "", chk.sender or "")
    if not ok then c:fail(p, "entry " .. i .. " ('" .. key .. "'): " .. tostring(drop)) end
    local function bad(msg) c:fail(p, "entry " .. i .. " ('" .. key .. "'): " .. msg) end
    if chk.drop ~= nil and (drop ~= nil) ~= (chk.drop and true or false) then
      bad(drop and ("dropped (" .. drop .. ") but expected to be kept") or "kept but expected to be dropped")
    end
    if chk.to and not drop then
      local got = mask_names(sinks, order)
      if not same_list(got, { unpack(chk.to) }) then
        bad("goes to {" .. table.concat(got, ", ") .. "}, expected {" .. table.concat(chk.to, ", ") .. "}")
      end
    end
    if chk.passthrough and not drop then
      local got = mask_names(raw, order)
      if not same_list(got, { unpack(chk.passthrough) }) then
        bad("passes through to {" .. table.concat(got, ", ") .. "}, expected {" .. table.concat(chk.passthrough, ", ") .. "}")
      end
    end
    if chk.name and not drop and (newkey or key) ~= chk.name then
      bad("is named '" .. (newkey or key) .. "', expected '" .. chk.name .. "'")
    end
  end
end

-- Compile routes/route/auth into out.decide and out.authorize (nil when
-- the config has none: the core then skips Lua entirely).
function M.compile_routing(c, t, out)
  local bits, order = sink_bits(out.sinks)
  out.sink_order = order
  if t.routes and t.route then c:fail("routes", "give either routes = { ... } or route = function, not both") end
  if t.routes then
    local ok, res, uses_origin = pcall(route.compile, t.routes, bits, "routes")
    if not ok then c:fail("routes", tostring(res)) end
    out.decide = res
    out.route_uses_origin = uses_origin
  elseif t.route then
    out.decide = wrap_route_fn(t.route, bits)
    out.route_uses_origin = true -- a function may look at anything
  end
  -- Sinks with passthrough = true get every kept sample raw (as if each
  -- rule also said :passthrough to them) and no flushed values.
  local rawbits = {}
  for name, s in pairs(out.sinks) do
    if s.passthrough == true then rawbits[#rawbits + 1] = bits[name] end
  end
  if #rawbits > 0 then
    local inner = out.decide
    if not inner then
      local agg = {}
      for name, b in pairs(bits) do
        if out.sinks[name].passthrough ~= true then agg[name] = b end
      end
      inner = route.compile({}, agg)
      out.route_uses_origin = false
    end
    local function has(mask, b) return math.floor(mask / b) % 2 == 1 end
    out.decide = function(key, mtype, listener, sender)
      local drop, sinks, raw, newkey, rate = inner(key, mtype, listener, sender)
      if drop ~= nil then return drop, sinks, raw, newkey, rate end
      for _, b in ipairs(rawbits) do
        if has(sinks, b) then sinks = sinks - b end
        if not has(raw, b) then raw = raw + b end
      end
      return nil, sinks, raw, newkey, rate
    end
  end
  if t.auth ~= nil then
    local ok, res = pcall(route.compile_auth, t.auth)
    if not ok then c:fail("auth", tostring(res)) end
    out.authorize = res
  end
  if t.checks then
    local decide = out.decide or route.compile({}, bits)
    run_checks(c, t.checks, decide, order)
  end
end

-- Load a config file (or the default when file is nil).  Returns the
-- complete table, or nil and "file:line: key: message".
function M.load(file, chunkname_prefix)
  local source, chunk, err
  if file then
    local f, ferr = io.open(file, "rb")
    if not f then return nil, ferr end
    source = f:read("*a")
    f:close()
    -- Text only: LuaJIT does not verify precompiled bytecode, and bad
    -- bytecode can crash the process that loads it.
    if source:byte(1) == 27 then
      return nil, file .. ": precompiled Lua bytecode is not accepted as a config"
    end
    chunk, err = load(source, "@" .. file, "t")
  else
    source = M.default_source
    chunk, err = loadstring(source, "=default config")
  end
  if not chunk then return nil, err end
  local ok, t = pcall(chunk)
  if not ok then
    local msg = tostring(t)
    local where = file or "default config"
    if msg:sub(1, #where) ~= where then msg = where .. ": " .. msg end
    return nil, msg
  end
  local ok2, res = pcall(M.normalize, t, file or "default config", source)
  if not ok2 then
    if type(res) == "table" then
      return nil, res.where .. ": " .. res.key .. ": " .. res.msg
    end
    return nil, tostring(res)
  end
  return res
end

return M
