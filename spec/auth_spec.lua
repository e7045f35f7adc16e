-- examples/auth.lua through the real core: token acceptance, refusal,
-- sender restrictions and namespaces.

local testing = require "switchyard.testing"

testing.log_level("error") -- bad lines and refused tokens are expected here

local EXAMPLE = testing.lua_dir .. "/switchyard/examples/auth.lua"

describe("examples/auth.lua", function()
  local router

  before_each(function() router = testing.load(EXAMPLE) end)
  after_each(function() router:close() end)

  local function tcp(lines, sender)
    return router:send(lines, { listener = "tcp", sender = sender or "203.0.113.5" })
  end

  it("accepts a token and puts its namespace in front of the name", function()
    tcp("k-shop-77c1.orders.placed:3|c")
    local flush = router:flush()
    assert.are.equal(3, flush:value("carbon", "stats.counters.shop.orders.placed.count"))
    assert.is_nil(flush:value("carbon", "stats.counters.orders.placed.count"))
    assert.are.equal(0, router:stat("auth_rejected"))
  end)

  it("a token without a namespace keeps the names as sent", function()
    tcp("k-ops-3f9a.deploys:1|c\r\n") -- a CRLF line end too
    local flush = router:flush()
    assert.are.equal(1, flush:value("carbon", "stats.counters.deploys.count"))
  end)

  it("refuses unknown, missing and malformed tokens, and counts them", function()
    tcp({ "k-nope.orders:1|c", "orders:1|c", ".orders:1|c", "orders.x:1|c" })
    local flush = router:flush()
    assert.are.equal(4, router:stat("auth_rejected"))
    assert.are.same({}, flush:names("carbon", "orders"))
    assert.are.same({}, flush:names("carbon", "^stats%.counters%.x"))
    -- refused lines are not metrics, nor bad lines
    assert.are.equal(0, flush:value("carbon", "stats.counters.statsd.metrics_received.count"))
    assert.are.equal(0, router:stat("bad_lines"))
    assert.are.equal(4, flush:value("carbon", "stats.counters.statsd.packets_received.count"))
  end)

  it("judges each line of a packet on its own", function()
    tcp("k-ops-3f9a.a:1|c\nwrong.b:1|c\nk-shop-77c1.c:1|c")
    local flush = router:flush()
    assert.are.equal(1, flush:value("carbon", "stats.counters.a.count"))
    assert.are.equal(1, flush:value("carbon", "stats.counters.shop.c.count"))
    assert.is_nil(flush:value("carbon", "stats.counters.b.count"))
    assert.are.equal(1, router:stat("auth_rejected"))
  end)

  it("limits the billing token to its senders", function()
    tcp("k-billing-19be.invoices.sent:1|c", "10.20.5.6")       -- in 10.20.0.0/16
    tcp("k-billing-19be.invoices.sent:10|c", "192.168.1.7")    -- the admin host
    tcp("k-billing-19be.invoices.sent:100|c", "10.21.0.1")     -- outside
    tcp("k-billing-19be.invoices.sent:1000|c", "192.168.1.8")  -- outside
    router:send("k-billing-19be.invoices.sent:10000|c", { listener = "tcp" }) -- no sender address
    local flush = router:flush()
    assert.are.equal(11, flush:value("carbon", "stats.counters.billing.invoices.sent.count"))
    assert.are.equal(11, flush:value("redis", "stats.counters.billing.invoices.sent.count"))
    assert.are.equal(3, router:stat("auth_rejected"))
  end)

  it("remembers answers per token and sender, not per token alone", function()
    tcp("k-billing-19be.x:1|c", "10.20.0.1")
    tcp("k-billing-19be.x:1|c", "10.30.0.1")
    tcp("k-billing-19be.x:1|c", "10.20.0.1")
    tcp("k-billing-19be.x:1|c", "10.30.0.1")
    assert.are.equal(2, router:flush():value("carbon", "stats.counters.billing.x.count"))
    assert.are.equal(2, router:stat("auth_rejected"))
  end)

  it("routes by the name with its namespace", function()
    tcp({ "k-shop-77c1.debug.cart:1|c", "k-shop-77c1.cart:1|c" })
    local flush = router:flush()
    assert.are.same({}, flush:names("carbon", "debug"))
    assert.are.equal(1, flush:value("carbon", "stats.counters.shop.cart.count"))
    assert.is_nil(flush:value("redis", "stats.counters.shop.cart.count"))
    assert.are.equal(1, router:stat("dropped"))
    assert.are.equal(0, router:stat("auth_rejected"))
  end)

  it("a namespace cannot be escaped by writing another team's prefix", function()
    tcp("k-shop-77c1.billing.invoices.sent:1|c")
    local flush = router:flush()
    assert.is_nil(flush:value("carbon", "stats.counters.billing.invoices.sent.count"))
    assert.are.equal(1, flush:value("carbon", "stats.counters.shop.billing.invoices.sent.count"))
  end)

  it("the UDP listener takes lines without tokens", function()
    router:send({ "orders:1|c", "k-shop-77c1.orders:1|c" }, { listener = "udp", sender = "127.0.0.1" })
    local flush = router:flush()
    assert.are.equal(1, flush:value("carbon", "stats.counters.orders.count"))
    -- without auth a token is just part of the name
    assert.are.equal(1, flush:value("carbon", "stats.counters.k-shop-77c1.orders.count"))
    assert.are.equal(0, router:stat("auth_rejected"))
  end)
end)
