-- switchyard.testing itself: loading, sending, the clock, and what a
-- flush answers.

local testing = require "switchyard.testing"

testing.log_level("error") -- a bad line is sent on purpose

local CONFIG = [[
local route = require "switchyard.route"
return {
  listen = { "udp://127.0.0.1:8125", "tcp://127.0.0.1:8125", "unix:///tmp/sy-spec.sock" },
  flushInterval = 5000,
  graphite = { legacyNamespace = false },
  sinks = { a = { plugin = "console" }, b = { plugin = "console" }, raw = { plugin = "console" } },
  routes = {
    route.listener "tcp"       :to "b",
    route.sender "10.0.0.0/8"  :to "b",
    route.tag "span"           :passthrough "raw",
    route.default()            :to "a",
  },
}
]]

describe("switchyard.testing", function()
  local router

  before_each(function() router = testing.load_source(CONFIG, "spec.lua") end)
  after_each(function() router:close() end)

  describe("load", function()
    it("finds the library and the Lua modules", function()
      local lib, path = testing.library()
      assert.is_not_nil(lib)
      assert.are.equal("string", type(path))
      assert.is_truthy(io.open(testing.lua_dir .. "/switchyard/config.lua")):close()
    end)

    it("reports a missing file", function()
      assert.has_error(function() testing.load("/nonexistent/sy.lua") end,
                       "/nonexistent/sy.lua: No such file or directory")
    end)

    it("names a config given as text by the name given", function()
      assert.has_error(function() testing.load_source("return {\n  port = 'x',\n}", "mine.lua") end,
                       "mine.lua:2: port: must be a number, not string")
    end)

    it("keeps the normalised config", function()
      assert.are.equal(5000, router.config.flushInterval)
      assert.are.same({ "a", "b", "raw" }, router.config.sink_order)
    end)
  end)

  describe("send", function()
    it("takes one packet or a list of them", function()
      router:send("x:1|c\nx:2|c")
      router:send({ "x:4|c", "x:8|c" })
      local flush = router:flush()
      assert.are.equal(15, flush:value("a", "stats.counters.x.count"))
      assert.are.equal(3, flush:value("a", "stats.counters.statsd.packets_received.count"))
    end)

    it("takes a listener by URL or by kind; the first one by default", function()
      router:send("x:1|c", { listener = "tcp://127.0.0.1:8125" })
      assert.are.same({ "b" }, router:flush():where("stats.counters.x.count"))
      router:send("y:1|c", { listener = "tcp" })
      assert.are.same({ "b" }, router:flush():where("stats.counters.y.count"))
      router:send("z:1|c", { listener = "unix" })
      router:send("z:1|c")
      assert.are.same({ "a" }, router:flush():where("stats.counters.z.count"))
    end)

    it("refuses what it cannot deliver", function()
      assert.has_error(function() router:send("x:1|c", { listener = "unixgram" }) end)
      assert.has_error(function() router:send("x:1|c", { sender = "host.example" }) end,
                       "sender must be an IP address, not 'host.example'")
      assert.has_error(function() router:send(42) end, "send needs a string or a list of strings")
    end)

    it("passes the sender to the rules", function()
      router:send("x:1|c", { sender = "10.1.2.3" })
      assert.are.same({ "b" }, router:flush():where("stats.counters.x.count"))
    end)
  end)

  describe("flush", function()
    it("moves the clock by flushInterval, or as told", function()
      assert.are.equal(testing.START + 5, router:flush().at)
      assert.are.equal(testing.START + 12, router:flush({ after = 7 }).at)
      assert.are.equal(1800000000, router:flush({ at = 1800000000 }).at)
      assert.are.equal(1800000005, router:flush().at)
    end)

    it("answers names, values, sums and where each name went", function()
      router:send({ "x:1|c", "y:3|g", "x:1|c", "s:a|s" })
      local flush = router:flush()
      assert.are.equal(2, flush:value("a", "stats.counters.x.count"))
      assert.are.equal(0.4, flush:value("a", "stats.counters.x.rate"))
      assert.is_nil(flush:value("b", "stats.counters.x.count"))
      assert.are.same({ "stats.counters.x.count", "stats.counters.x.rate" }, flush:names("a", "%.x%."))
      assert.are.same({}, flush:names("b"))
      assert.are.equal(3, flush:sink("a")["stats.gauges.y"])
      assert.are.equal(3, flush:sum("a", "^stats%.%a+%.[xs]%.count$")) -- x.count + s.count
      assert.are.same({ "a" }, flush:where("stats.sets.s.count"))
      assert.are.same({}, flush:where("stats.sets.nope.count"))
      assert.is_truthy(tostring(flush):find("a stats.gauges.y 3", 1, true))
    end)

    it("hands out raw samples once, in arrival order, with their text and tags", function()
      router:send({ "t:1.50|ms|@0.25|#span,k:v", "t:2|c|#span", "g:-3|g|#span", "s:abc|s|#span" })
      local flush = router:flush()
      assert.are.same({
        { name = "t;span;k=v", value = "1.50", type = "ms", rate = 0.25, tags = "span,k:v" },
        { name = "t;span", value = "2", type = "c", rate = 1, tags = "span" },
        { name = "g;span", value = "-3", type = "g", rate = 1, tags = "span" },
        { name = "s;span", value = "abc", type = "s", rate = 1, tags = "span" },
      }, flush:raw("raw"))
      assert.are.same({}, flush:raw("a"))
      assert.are.same({}, router:flush():raw("raw"))
    end)

    -- Fails with core/testing.c as of this writing: it keeps the raw
    -- samples of at most 1024 packets between two flushes and silently
    -- frees the rest.
    it("keeps the raw samples of every packet", function()
      for i = 1, 1500 do router:send("t:" .. i .. "|ms|#span") end
      assert.are.equal(1500, #router:flush():raw("raw"))
    end)

    it("refuses a sink the config does not have", function()
      local flush = router:flush()
      assert.has_error(function() flush:names("c") end, "no sink named 'c' (the config has: a, b, raw)")
    end)
  end)

  describe("stats and close", function()
    it("reads the core's counters", function()
      router:send({ "x:1|c", "bad", "x:1|c:2|c" })
      assert.are.equal(1, router:stat("bad_lines"))
      assert.are.equal(3, router:stat("samples"))
      local all = router:stats()
      for _, k in ipairs(testing.STATS) do assert.are.equal("number", type(all[k])) end
      assert.has_error(function() router:stat("nope") end)
    end)

    it("routers are independent", function()
      local other = testing.load_source(CONFIG)
      other:send("x:5|c")
      router:send("x:1|c")
      assert.are.equal(5, other:flush():value("a", "stats.counters.x.count"))
      assert.are.equal(1, router:flush():value("a", "stats.counters.x.count"))
      other:close()
    end)

    it("close frees the router; using it after is an error, closing again is not", function()
      local r = testing.load_source(CONFIG)
      r:close()
      r:close()
      assert.has_error(function() r:send("x:1|c") end, "this router was closed")
      assert.has_error(function() r:flush() end, "this router was closed")
    end)
  end)
end)
