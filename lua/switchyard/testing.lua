-- switchyard.testing: run a config through the real core, for specs.
--
--   local testing = require "switchyard.testing"
--   local router = testing.load("lua/switchyard/examples/routing.lua")
--   router:send("api.req:1|c", { listener = "tcp", sender = "10.1.2.3" })
--   local flush = router:flush()
--   assert(flush:value("carbon", "stats.counters.api.req.count") == 1)
--   router:close()
--
-- Lines go through the daemon's own parser, routing cache, aggregator and
-- flush code (libswitchyard.so, loaded through the FFI); only the sockets,
-- threads and sink plugins are left out.  Each sink is replaced by a
-- recorder, so a flush tells what every sink would have received: the
-- metric names exactly as Graphite would get them, and their values.
-- Pass-through sinks also get the raw samples routed to them.
--
-- Time is the caller's: flush() advances a clock by flushInterval (it
-- starts at testing.START, a fixed second, so results are reproducible).
--
-- The library is looked up in this order: $SWITCHYARD_LIB; the build tree
-- this module lives in (<repo>/lua/switchyard/testing.lua next to
-- <repo>/build/libswitchyard.so, made by `make`); the system's library
-- path (libswitchyard.so); PREFIX/lib when this module was installed in
-- PREFIX/share/switchyard/lua; /usr/local/lib and /usr/lib.

local ffi = require "ffi"
local config = require "switchyard.config"

local M = {}

M.START = 1700000000 -- the clock before the first flush, in seconds

ffi.cdef [[
typedef struct sy_test sy_test;
sy_test *sy_test_new(const char *config_file, const char *lua_dir, char *err, size_t errlen);
void sy_test_free(sy_test *t);
int sy_test_feed(sy_test *t, const char *data, size_t len, const char *listener, const char *sender);
int sy_test_flush(sy_test *t, int64_t now_s);
size_t sy_test_result_count(const sy_test *t);
int sy_test_result(const sy_test *t, size_t i, const char **sink, const char **name, double *value);
size_t sy_test_raw_count(const sy_test *t);
int sy_test_raw(const sy_test *t, size_t i, const char **sink, const char **name, const char **text,
                int *type, double *rate, const char **tags);
double sy_test_stat(const sy_test *t, const char *name);
char *getcwd(char *buf, size_t size);
extern int sy_log_level;
]]

local C = ffi.C

-- The stats sy_test_stat knows.
M.STATS = { "bad_lines", "keys_too_long", "sets_estimated", "samples", "dropped", "sampled_out", "auth_rejected", "route_errors", "keys" }

local raw_types = { [string.byte("c")] = "c", [string.byte("g")] = "g",
                    [string.byte("t")] = "ms", [string.byte("s")] = "s" }

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local buf = ffi.new("char[?]", 4096)
  if C.getcwd(buf, 4096) == nil then return path end
  local cwd = ffi.string(buf)
  path = path:gsub("^%./", "")
  return cwd .. "/" .. path
end

-- The directory holding switchyard/*.lua: the one this file was loaded from.
local function own_lua_dir()
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) ~= "@" then return nil end
  local path = src:sub(2)
  local dir = path:match("^(.*)/switchyard/testing%.lua$")
  if not dir and path == "switchyard/testing.lua" then dir = "." end
  return dir and absolute(dir) or nil
end

M.lua_dir = own_lua_dir()

local lib, lib_path -- loaded once per require of this module

-- Load libswitchyard.so (see the top of this file for where it is looked
-- for).  Returns the FFI namespace and the path or name it came from.
function M.library()
  if lib then return lib, lib_path end
  local tried = {}
  local function try(what)
    local ok, l = pcall(ffi.load, what)
    if ok then lib, lib_path = l, what return true end
    tried[#tried + 1] = what .. " (" .. tostring(l):gsub("\n.*", "") .. ")"
    return false
  end
  local env = os.getenv("SWITCHYARD_LIB")
  if env and env ~= "" then
    if try(env) then return lib, lib_path end
    error("SWITCHYARD_LIB: cannot load " .. tried[1], 2)
  end
  if M.lua_dir then
    local built = M.lua_dir .. "/../build/libswitchyard.so"
    if file_exists(built) and try(built) then return lib, lib_path end
  end
  if try("switchyard") then return lib, lib_path end
  -- installed by `make install`: PREFIX/share/switchyard/lua beside PREFIX/lib
  local prefixes = { "/usr/local", "/usr" }
  local own = M.lua_dir and M.lua_dir:match("^(.*)/share/switchyard/lua$")
  if own then table.insert(prefixes, 1, own) end
  for _, prefix in ipairs(prefixes) do
    local p = prefix .. "/lib/libswitchyard.so"
    if file_exists(p) and try(p) then return lib, lib_path end
  end
  error("switchyard.testing: cannot find libswitchyard.so; run `make` in the source tree, "
        .. "or set SWITCHYARD_LIB to its path (tried: " .. table.concat(tried, "; ") .. ")", 2)
end

local log_levels = { error = 0, warn = 1, info = 2, debug = 3 }

-- What the core logs to stderr (bad lines, refused tokens, failing rules):
-- "error", "warn", "info" (the default) or "debug".  For the whole process.
function M.log_level(level)
  local n = log_levels[level]
  if not n then error("log level must be one of error, warn, info, debug", 2) end
  M.library().sy_log_level = n
end

---------------------------------------------------------------------------
-- A flush: what each sink received.

local Flush = {}
Flush.__index = Flush

local function sink_error(self, sink)
  error(string.format("no sink named '%s' (the config has: %s)", tostring(sink),
                      table.concat(self.sink_order, ", ")), 3)
end

local function sink_of(self, sink)
  local s = self.by_sink[sink]
  if not s then sink_error(self, sink) end
  return s
end

-- The value `sink` received for `name`, or nil.
function Flush:value(sink, name)
  return sink_of(self, sink).values[name]
end

-- The names `sink` received, sorted; only those matching the Lua pattern
-- when one is given.
function Flush:names(sink, pattern)
  local list = {}
  for name in pairs(sink_of(self, sink).values) do
    if not pattern or name:find(pattern) then list[#list + 1] = name end
  end
  table.sort(list)
  return list
end

-- { [name] = value } of everything `sink` received (a copy).
function Flush:sink(sink)
  local copy = {}
  for k, v in pairs(sink_of(self, sink).values) do copy[k] = v end
  return copy
end

-- The raw samples routed to `sink` by :passthrough since the last flush,
-- in arrival order: { name =, value = (text as sent), type = "c", "ms",
-- "g" or "s", rate =, tags = (DogStatsD tags as sent, "" when none) }.
function Flush:raw(sink)
  local list = {}
  for i, r in ipairs(sink_of(self, sink).raw) do
    list[i] = { name = r.name, value = r.value, type = r.type, rate = r.rate, tags = r.tags }
  end
  return list
end

-- The sinks that received `name`, sorted.
function Flush:where(name)
  local list = {}
  for _, sink in ipairs(self.sink_order) do
    if self.by_sink[sink].values[name] ~= nil then list[#list + 1] = sink end
  end
  return list
end

-- The sum of the values `sink` received for names matching `pattern`.
function Flush:sum(sink, pattern)
  local total = 0
  for name, v in pairs(sink_of(self, sink).values) do
    if name:find(pattern) then total = total + v end
  end
  return total
end

-- Every sink's lines as "sink name value", for failure messages.
function Flush:__tostring()
  local out = {}
  for _, sink in ipairs(self.sink_order) do
    for _, name in ipairs(self:names(sink)) do
      out[#out + 1] = string.format("%s %s %.17g", sink, name, self.by_sink[sink].values[name])
    end
    for _, r in ipairs(self.by_sink[sink].raw) do
      out[#out + 1] = string.format("%s raw %s:%s|%s@%g|#%s", sink, r.name, r.value, r.type, r.rate, r.tags)
    end
  end
  return table.concat(out, "\n")
end

---------------------------------------------------------------------------
-- A router: one loaded config and its aggregator.

local Router = {}
Router.__index = Router

local function handle(self)
  if self.t == nil then error("this router was closed", 3) end
  return self.t
end

local function looks_like_ip(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    return tonumber(a) < 256 and tonumber(b) < 256 and tonumber(c) < 256 and tonumber(d) < 256
  end
  return s:find(":", 1, true) ~= nil and s:match("^[%x:.]+$") ~= nil
end

-- A listener given as its URL or its kind ("udp", "tcp", ...): the URL.
function Router:listener(l)
  if l == nil then return nil end
  local urls = {}
  for _, entry in ipairs(self.config.listen) do
    if entry.url == l then return l end
    urls[#urls + 1] = entry.url
  end
  for _, url in ipairs(urls) do
    if url:match("^(%a+)://") == l then return url end
  end
  error(string.format("no listener '%s' in the config (it has: %s)", tostring(l),
                      table.concat(urls, ", ")), 3)
end

-- Feed StatsD data as if it arrived on a listener from a sender.  `data` is
-- one packet (a string, lines separated by "\n") or a list of packets.
-- opts.listener: a listen URL of the config or a kind ("tcp"); the first
-- listener by default.  opts.sender: an IPv4 or IPv6 address; none by
-- default (rules on senders then see "", and tokens limited to senders
-- are refused).
function Router:send(data, opts)
  local t = handle(self)
  opts = opts or {}
  local listener = self:listener(opts.listener)
  local sender = opts.sender
  if sender ~= nil and (type(sender) ~= "string" or not looks_like_ip(sender)) then
    error("sender must be an IP address, not '" .. tostring(sender) .. "'", 2)
  end
  -- A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; the
  -- daemon's readers make them plain IPv4 again.
  sender = sender and (sender:lower():match("^::ffff:(%d+%.%d+%.%d+%.%d+)$") or sender)
  if type(data) == "string" then data = { data } end
  if type(data) ~= "table" then error("send needs a string or a list of strings", 2) end
  for i = 1, #data do
    local packet = data[i]
    if type(packet) ~= "string" then error("send: entry " .. i .. " is not a string", 2) end
    self.lib.sy_test_feed(t, packet, #packet, listener, sender)
  end
  return self
end

-- Flush, as the daemon does every flushInterval.  With no argument the
-- clock moves on by flushInterval; opts.at sets it (seconds since the
-- epoch), opts.after moves it by that many seconds.  Returns a Flush.
function Router:flush(opts)
  local t = handle(self)
  opts = opts or {}
  if opts.at then
    self.now = opts.at
  else
    self.now = self.now + (opts.after or self.config.flushInterval / 1000)
  end
  if self.lib.sy_test_flush(t, math.floor(self.now)) ~= 0 then error("flush failed (out of memory)", 2) end

  local f = setmetatable({ at = math.floor(self.now), sink_order = self.config.sink_order, by_sink = {} },
                         Flush)
  for _, name in ipairs(self.config.sink_order) do f.by_sink[name] = { values = {}, raw = {} } end
  local sink, name, text, tags = ffi.new("const char *[1]"), ffi.new("const char *[1]"),
                                 ffi.new("const char *[1]"), ffi.new("const char *[1]")
  local value, rate, mtype = ffi.new("double[1]"), ffi.new("double[1]"), ffi.new("int[1]")
  local n = tonumber(self.lib.sy_test_result_count(t))
  for i = 0, n - 1 do
    self.lib.sy_test_result(t, i, sink, name, value)
    f.by_sink[ffi.string(sink[0])].values[ffi.string(name[0])] = value[0]
  end
  n = tonumber(self.lib.sy_test_raw_count(t))
  for i = 0, n - 1 do
    self.lib.sy_test_raw(t, i, sink, name, text, mtype, rate, tags)
    local list = f.by_sink[ffi.string(sink[0])].raw
    list[#list + 1] = { name = ffi.string(name[0]), value = ffi.string(text[0]),
                        type = raw_types[mtype[0]] or string.char(mtype[0]), rate = rate[0],
                        tags = ffi.string(tags[0]) }
  end
  return f
end

-- One of the aggregator's counters (see testing.STATS), since the start.
function Router:stat(name)
  local v = self.lib.sy_test_stat(handle(self), tostring(name))
  if v < 0 then
    error("unknown stat '" .. tostring(name) .. "' (one of: " .. table.concat(M.STATS, ", ") .. ")", 2)
  end
  return v
end

-- All of them, as a table.
function Router:stats()
  local out = {}
  for _, k in ipairs(M.STATS) do out[k] = self:stat(k) end
  return out
end

-- Free the core's state now rather than at garbage collection.
function Router:close()
  if self.t ~= nil then
    local t = self.t
    self.t = nil
    ffi.gc(t, nil)
    self.lib.sy_test_free(t)
  end
end

-- Load a config file.  Errors with the config's own message (the one
-- `switchyard --check` prints) when it does not load.  opts.start sets
-- the clock before the first flush (default testing.START).
function M.load(file, opts)
  opts = opts or {}
  if type(file) ~= "string" then error("testing.load needs a config file name", 2) end
  local l = M.library()
  local lua_dir = opts.lua_dir or M.lua_dir
  if not lua_dir then error("switchyard.testing: cannot tell where the switchyard Lua modules are", 2) end
  local err = ffi.new("char[4096]")
  local t = l.sy_test_new(file, lua_dir, err, 4096)
  if t == nil then error(ffi.string(err), 2) end
  t = ffi.gc(t, function(p) l.sy_test_free(p) end)
  -- The same config, read again here for what the core does not tell:
  -- the flush interval, the listeners and the sink names.
  local c, cerr = config.load(file)
  if not c then
    l.sy_test_free(ffi.gc(t, nil))
    error(cerr, 2)
  end
  return setmetatable({ t = t, lib = l, config = c, file = file, now = opts.start or M.START }, Router)
end

-- Load a config given as source text; errors name it `name` ("config"
-- unless given) instead of the temporary file it is written to.
function M.load_source(source, name, opts)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(source)
  f:close()
  local ok, res = pcall(M.load, path, opts)
  os.remove(path)
  if not ok then
    local msg = tostring(res):gsub((path:gsub("%p", "%%%0")), ((name or "config"):gsub("%%", "%%%%")))
    error(msg, 2)
  end
  res.file = name or "config"
  return res
end

return M
