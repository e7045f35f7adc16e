-- The token cache in the real core: an auth decision is cached per token
-- and per everything the auth hook is given (listener, address family,
-- sender), so a decision made for one is never reused for another.

local testing = require "switchyard.testing"

testing.log_level("error") -- refused tokens are expected here

local LISTEN = [[
  listen = { { url = "tcp://127.0.0.1:19001", auth = true },
             { url = "udp://127.0.0.1:19001", auth = true },
             { url = "tcp://127.0.0.1:19002", auth = true } },
  sinks = { c = { plugin = "console" } },
]]

local function load(auth)
  return testing.load_source("return {\n" .. LISTEN .. auth .. "\n}", "auth_cache")
end

describe("the token cache", function()
  local router
  after_each(function() if router then router:close() end end)

  local HOOK = [[
    auth = function(token, sender, listener)
      if token == "tcponly" then
        return listener:find("tcp://127.0.0.1:19001", 1, true) ~= nil, "ns"
      end
      if token == "perlistener" then
        return true, (listener:gsub("[^%d]", ""))
      end
      return false
    end,]]

  local A, U, B = "tcp://127.0.0.1:19001", "udp://127.0.0.1:19001", "tcp://127.0.0.1:19002"

  it("does not reuse an acceptance on listener A for UDP on A's port or for listener B", function()
    router = load(HOOK)
    router:send("tcponly.a:1|c", { listener = A, sender = "127.0.0.1" })
    router:send("tcponly.u:1|c", { listener = U, sender = "127.0.0.1" })
    router:send("tcponly.b:1|c", { listener = B, sender = "127.0.0.1" })
    local flush = router:flush()
    assert.are.equal(1, flush:value("c", "stats_counts.ns.a"))
    assert.is_nil(flush:value("c", "stats_counts.ns.u"))
    assert.is_nil(flush:value("c", "stats_counts.ns.b"))
    assert.are.equal(2, router:stat("auth_rejected"))
  end)

  it("does not reuse a refusal on listener B for listener A", function()
    router = load(HOOK)
    router:send("tcponly.b:1|c", { listener = B, sender = "127.0.0.1" })
    router:send("tcponly.u:1|c", { listener = U, sender = "127.0.0.1" })
    router:send("tcponly.a:1|c", { listener = A, sender = "127.0.0.1" })
    local flush = router:flush()
    assert.are.equal(1, flush:value("c", "stats_counts.ns.a"))
    assert.are.equal(2, router:stat("auth_rejected"))
  end)

  it("takes a namespace computed from the listener from that listener", function()
    router = load(HOOK)
    for _ = 1, 2 do
      router:send("perlistener.k:1|c", { listener = A, sender = "127.0.0.1" })
      router:send("perlistener.k:1|c", { listener = B, sender = "127.0.0.1" })
    end
    local flush = router:flush()
    assert.are.equal(2, flush:value("c", "stats_counts.12700119001.k"))
    assert.are.equal(2, flush:value("c", "stats_counts.12700119002.k"))
  end)

  local SENDERS = [[
    auth = { tokens = { v4 = { namespace = "v4", senders = { "127.0.0.1" } } } },]]

  it("keeps IPv4 a.b.c.d apart from the IPv6 address AABB:CCDD:: (accepted first)", function()
    router = load(SENDERS)
    router:send("v4.k:1|c", { listener = A, sender = "127.0.0.1" })
    router:send("v4.k:10|c", { listener = A, sender = "7f00:1::" })
    local flush = router:flush()
    assert.are.equal(1, flush:value("c", "stats_counts.v4.k"))
    assert.are.equal(1, router:stat("auth_rejected"))
  end)

  it("keeps IPv4 a.b.c.d apart from the IPv6 address AABB:CCDD:: (refused first)", function()
    router = load(SENDERS)
    router:send("v4.k:10|c", { listener = A, sender = "7f00:1::" })
    router:send("v4.k:1|c", { listener = A, sender = "127.0.0.1" })
    local flush = router:flush()
    assert.are.equal(1, flush:value("c", "stats_counts.v4.k"))
    assert.are.equal(1, router:stat("auth_rejected"))
  end)

  it("keeps the routing cache's sender keys apart by family too", function()
    router = testing.load_source([[
      local route = require "switchyard.route"
      return {
        listen = { "udp://127.0.0.1:19001" },
        sinks = { v4 = { plugin = "console" }, other = { plugin = "console" } },
        routes = {
          route.sender "127.0.0.1/32" :to "v4",
          route.default() :to "other",
        },
      }]], "route_cache")
    router:send("k:1|c", { sender = "127.0.0.1" })
    router:send("k:10|c", { sender = "7f00:1::" })
    local flush = router:flush()
    assert.are.equal(1, flush:value("v4", "stats_counts.k"))
    assert.are.equal(10, flush:value("other", "stats_counts.k"))
  end)
end)
