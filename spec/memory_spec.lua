-- luaMemoryLimit (and the config's setup limit, 256 MiB) hold at each
-- allocation: the config state's allocator refuses a piece that would pass
-- the limit, so even one huge allocation made by a single C call
-- (string.rep) fails at once instead of being made and noticed afterwards
-- by the instruction hook.
--
-- Through switchyard.testing, i.e. the core in build/libswitchyard.so, whose
-- config loader creates the state with that allocator (core/engine/router.c).
-- The witness is this process's peak RSS: a 1 GiB string made and then
-- refused would raise it by 1 GiB.

local testing = require "switchyard.testing"

testing.log_level("error") -- the failing hook is logged at "warn"

local GIB = 2 ^ 30

local function peak_kb()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmHWM:%s+(%d+)")
    if v then return tonumber(v) end
  end
  error("no VmHWM in /proc/self/status")
end

local function config(body)
  return [[
local route = require "switchyard.route"
return {
  listen = { "udp://127.0.0.1:8125" },
  flushInterval = 1000,
  luaTimeout = 2000,
  luaMemoryLimit = 16 * 1024 * 1024,
  graphite = { legacyNamespace = false },
  sinks = { a = { plugin = "console" }, b = { plugin = "console" } },
]] .. body .. "\n}\n"
end

describe("the Lua memory limit", function()
  it("refuses one huge string.rep in a route function at once", function()
    local router = testing.load_source(config([[
  route = function(m)
    if m.name == "big" then
      local s = string.rep("x", ]] .. GIB .. [[)
      return { sinks = { "a" }, name = "big" .. #s }
    end
    return { sinks = { "b" } }
  end,]]), "bigrep.lua")
    local before = peak_kb()
    router:send({ "big:1|c", "small:1|c" })
    local grew = peak_kb() - before
    assert.is_true(grew < 256 * 1024, string.format("peak RSS grew by %d MiB", math.floor(grew / 1024)))
    assert.are.equal(1, router:stat("route_errors"))
    local f = router:flush()
    -- a failed decision is the core's default route: every sink
    assert.are.same({ "a", "b" }, f:where("stats.counters.big.count"))
    assert.are.same({ "b" }, f:where("stats.counters.small.count"))
    router:close()
  end)

  it("refuses a huge allocation in a config's setup, and says so", function()
    local src = config([[
  routes = { route.default() :to "b" },
  sampleSeed = #string.rep("x", ]] .. GIB .. [[),]])
    local before = peak_kb()
    local ok, err = pcall(testing.load_source, src, "setup.lua")
    local grew = peak_kb() - before
    assert.is_false(ok)
    assert.matches("too much memory", tostring(err))
    assert.is_true(grew < 256 * 1024, string.format("peak RSS grew by %d MiB", math.floor(grew / 1024)))
  end)
end)
