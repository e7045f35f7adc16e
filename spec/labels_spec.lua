-- :label(name, value): tags on the routed key from a rule's captures or a
-- function, checked in plain Lua and through the real core (the flushed
-- names a sink gets).

local route = require "switchyard.route"
local testing = require "switchyard.testing"

local BITS = { a = 1 }

local function routed(rules, key)
  local fn = route.compile(rules, BITS)
  local drop, _, _, newkey = fn(key, "c", "", "")
  assert.is_nil(drop)
  return newkey or key
end

describe("route :label", function()
  it("takes a glob's capture, after a rename", function()
    local r = route.glob "api.*.latency" :rename "api_latency" :label("endpoint", "%1") :to "a"
    assert.are.equal("api_latency;endpoint=users", routed({ r }, "api.users.latency"))
  end)

  it("takes a pattern's captures, several labels in order", function()
    local r = route.match "^svc%.(%w+)%.(%w+)%.req$" :rename "requests"
      :label("service", "%1") :label("method", "%2") :to "a"
    assert.are.equal("requests;service=auth;method=get", routed({ r }, "svc.auth.get.req"))
  end)

  it("keeps the key's own tags and replaces one of the same name", function()
    local r = route.glob "api.*.latency" :label("endpoint", "%1") :to "a"
    assert.are.equal("api.users.latency;z=1;endpoint=users", routed({ r }, "api.users.latency;z=1"))
    assert.are.equal("api.users.latency;endpoint=users;z=1",
                     routed({ r }, "api.users.latency;endpoint=old;z=1"))
  end)

  it("takes a function of the metric; an empty value removes the tag", function()
    local r = route.prefix "env." :label("env", function(m) return m.tags.region or "" end) :to "a"
    assert.are.equal("env.x;env=eu;region=eu", routed({ r }, "env.x;env=dev;region=eu"))
    assert.are.equal("env.x;a=b", routed({ r }, "env.x;env=dev;a=b"))
  end)

  it("writes a value as a key can hold it", function()
    local r = route.prefix "v." :label("path", function() return "/api v1;x=y" end) :to "a"
    assert.are.equal("v.k;path=_api_v1_x_y", routed({ r }, "v.k"))
  end)

  it("is refused at load for a bad name, a capture the pattern lacks, or no value", function()
    assert.has_error(function() route.prefix "a." :label("1x", "v") end)
    assert.has_error(function() route.prefix "a." :label("a-b", "v") end)
    assert.has_error(function() route.prefix "a." :label("x") end)
    local ok, err = pcall(route.compile, { route.glob "api.*.x" :label("e", "%2") :to "a" }, BITS)
    assert.is_false(ok)
    assert.matches("label 'e' uses %%2 but the rule's pattern has 1 capture", err)
  end)
end)

describe("route :label through the core", function()
  it("aggregates under the labelled name, one series per label value", function()
    local router = testing.load_source([[
      local route = require "switchyard.route"
      return {
        flushInterval = 1000,
        graphite = { legacyNamespace = false },
        sinks = { prom = { plugin = "console" } },
        routes = { route.glob "api.*.latency" :rename "api_latency" :label("endpoint", "%1") :to "prom" },
        checks = { { "api.users.latency", name = "api_latency;endpoint=users" } },
      }]], "labels")
    router:send("api.users.latency:5|ms\napi.users.latency:7|ms\napi.orders.latency:1|ms")
    local flush = router:flush()
    assert.are.equal(2, flush:value("prom", "stats.timers.api_latency.count;endpoint=users"))
    assert.are.equal(12, flush:value("prom", "stats.timers.api_latency.sum;endpoint=users"))
    assert.are.equal(1, flush:value("prom", "stats.timers.api_latency.count;endpoint=orders"))
    router:close()
  end)
end)
