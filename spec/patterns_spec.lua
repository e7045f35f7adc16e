-- Lua patterns in routing rules are bounded by luaTimeout (core/engine/lpattern.c
-- replaces string.find/match/gmatch/gsub in the config's Lua state): a
-- backtracking pattern against a hostile key from a client fails like any
-- slow rule, the key takes the default route, and routing goes on.
--
-- Through switchyard.testing, i.e. the core in build/libswitchyard.so, whose
-- config loader installs the bounded functions.  (LuaJIT's own pattern
-- functions would take minutes on these keys: see tests/unit/test_lpattern.c
-- for the matcher compared with them.)

local testing = require "switchyard.testing"

testing.log_level("error") -- the failing rule is logged at "warn"

local HOSTILE_PATTERN = "^(.-)%.(.-)%.(.-)%.(.-)%.x$"
local HOSTILE_KEY = string.rep("a.", 300) -- 600 bytes of dots, no final x

local function config(routes)
  return [[
local route = require "switchyard.route"
return {
  listen = { "udp://127.0.0.1:8125" },
  flushInterval = 1000,
  luaTimeout = 50,
  graphite = { legacyNamespace = false },
  sinks = { deep = { plugin = "console" }, rest = { plugin = "console" } },
]] .. routes .. "\n}\n"
end

local function timed(fn)
  local t0 = os.clock()
  fn()
  return os.clock() - t0
end

local function check_bounded(router)
  local took = timed(function() router:send(HOSTILE_KEY .. ":1|c") end)
  assert.is_true(took < 2, string.format("the hostile key took %.2f s (luaTimeout 50 ms)", took))
  assert.are.equal(1, router:stat("route_errors"))
  router:send({ "a.b.c.d.x:1|c", "plain:1|c" })
  assert.are.equal(1, router:stat("route_errors"))
  local f = router:flush()
  local name = "stats.counters." .. HOSTILE_KEY .. ".count"
  -- a failed decision is the core's default route: every sink
  assert.are.same({ "deep", "rest" }, f:where(name))
  assert.are.same({ "deep" }, f:where("stats.counters.a.b.c.d.x.count"))
  assert.are.same({ "rest" }, f:where("stats.counters.plain.count"))
end

describe("patterns in routing rules", function()
  it("route.match: a backtracking pattern stops at luaTimeout", function()
    local router = testing.load_source(config([[
  routes = {
    route.match "]] .. HOSTILE_PATTERN .. [[" :to "deep",
    route.default() :to "rest",
  },]]), "match.lua")
    check_bounded(router)
    router:close()
  end)

  it("route = function(m): m.name:match, :find, :gsub and :gmatch are bounded too", function()
    for _, call in ipairs({
      "m.name:match(P)", "m.name:find(P)", "string.match(m.name, P)",
      "select(2, m.name:gsub(P, '')) > 0",
      "m.name:gmatch(P:sub(2))() ~= nil", -- gmatch takes '^' literally

    }) do
      local router = testing.load_source(config([[
  route = function(m)
    local P = "]] .. HOSTILE_PATTERN .. [["
    if ]] .. call .. [[ then return { sinks = { "deep" } } end
    return { sinks = { "rest" } }
  end,]]), "fn.lua")
      check_bounded(router)
      router:close()
    end
  end)

  it("a config's own setup is bounded the same way (5 s)", function()
    -- 1600 bytes: the match would take minutes (O(n^4)), so it is the 5 s
    -- bound that stops it on a fast idle machine too (with the 600-byte
    -- key it finished in under 5 s there, and the check failed)
    local src = config([[
  routes = { route.default() :to "rest" },
  sampleSeed = (("]] .. string.rep("a.", 800) .. [["):match("]] .. HOSTILE_PATTERN .. [[") and 1 or 2),]])
    local t0 = os.clock()
    local ok, err = pcall(testing.load_source, src, "setup.lua")
    local took = os.clock() - t0
    assert.is_false(ok)
    assert.matches("pattern ran too long %(over 5000 ms%)", tostring(err))
    assert.is_true(took < 10, string.format("setup took %.2f s", took))
  end)

  it("ordinary patterns still work as LuaJIT's", function()
    local router = testing.load_source(config [[
  routes = {
    route.match "^api%.([^.]+)%.(.+)$" :rename "svc.%1.%2" :to "deep",
    route.default() :to "rest",
  },]], "ok.lua")
    router:send({ "api.web01.requests:1|c", "other.x:2|c" })
    local f = router:flush()
    assert.are.equal(1, f:value("deep", "stats.counters.svc.web01.requests.count"))
    assert.are.equal(2, f:value("rest", "stats.counters.other.x.count"))
    assert.are.equal(0, router:stat("route_errors"))
    router:close()
  end)
end)
